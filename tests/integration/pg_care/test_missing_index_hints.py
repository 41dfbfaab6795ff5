"""Missing-index hints from real scans over a window kept in a state file, on a real PostgreSQL 15 cluster.

Between two reviews, ``lookups`` (no index on ``code``) is read by four
sequential scans looking for one code: a missing index. ``catalogue`` is only
read by the three ``CREATE INDEX`` that build its indexes, which PostgreSQL
counts as sequential scans too: maintenance, no hint. Without a state file the
counters since the reset list both and hint at neither.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.harness.playbook import run_tasks
from tests.integration.pg_care.conftest import connection_options, flush_and_close

DB = 'truth_scans'
ROWS = 20000


@pytest.fixture
def scans_db(truth_pg):
    pg = truth_pg
    pg.execute('DROP DATABASE IF EXISTS %s' % DB)
    pg.create_database(DB)
    for table in ('lookups', 'catalogue'):
        pg.execute("CREATE TABLE %s (id int, code text, price int)" % table, dbname=DB)
        pg.execute("INSERT INTO %s SELECT g, 'c' || g, g FROM generate_series(1, %d) g" % (table, ROWS), dbname=DB)
    return pg


def review(name, pg, check=False, **args):
    task = {'name': name, 'ignore_errors': True, 'engineroom.maintenance.pg_insight': dict(
        connection_options(pg, DB), sections=['seq_scans'], **args)}
    if check:
        task['check_mode'] = True
    return task


def test_hints_come_from_the_window_and_leave_index_builds_out(scans_db, tmp_path):
    pg = scans_db
    state_file = str(tmp_path / 'scans.json')
    first = run_tasks([review('first', pg, state_file=state_file, seq_scan_window_s=0)]).result('first')
    assert 'failed' not in first, first.get('msg')
    assert first['seq_scans'] == [] and os.path.exists(state_file)
    with open(state_file) as handle:
        recorded = json.load(handle)
    assert recorded['schema_version'] == 1 and 'public.lookups' in recorded['databases'][DB]

    conn = pg.connect(DB)
    with conn.cursor() as cursor:
        for code in ('c1', 'c2', 'c3', 'c4'):
            cursor.execute('SELECT count(*) FROM lookups WHERE code = %s', (code,))
        for column in ('code', 'price', 'id'):
            cursor.execute('CREATE INDEX ON catalogue (%s)' % column)
    flush_and_close(conn)

    run = run_tasks([review('checked', pg, check=True, state_file=state_file, seq_scan_window_s=0),
                     review('second', pg, state_file=state_file, seq_scan_window_s=0),
                     review('too soon', pg, state_file=state_file, seq_scan_window_s=3600),
                     review('no window', pg)])
    with open(state_file) as handle:
        kept = json.load(handle)
    second = run.result('second')
    hints = dict((r['table'], r) for r in second['seq_scans'])
    assert set(hints) == {'lookups'}, second['seq_scans']
    assert hints['lookups']['seq_scans'] == 4 and hints['lookups']['seq_rows_read'] == 4 * ROWS
    assert hints['lookups']['index_builds_discounted'] == 0 and hints['lookups']['window_s'] >= 0
    assert any('lookups' in f and 'an index is probably missing' in f for f in second['findings'])
    assert not any('catalogue' in f for f in second['findings'])
    checked = [dict(r, window_s=None) for r in run.result('checked')['seq_scans']]
    assert checked == [dict(r, window_s=None) for r in second['seq_scans']]  # check mode reads the same window...
    assert kept['databases'][DB]['public.catalogue']['indexes'] == 3  # ...and only the real run moved it on
    assert kept['taken_at'] >= recorded['taken_at']

    assert run.result('too soon')['seq_scans'] == []  # the window since "second" is far shorter than an hour
    cumulative = dict((r['table'], r) for r in run.result('no window')['seq_scans'])
    assert cumulative['catalogue']['seq_scans'] >= 3  # the index builds, counted since the reset...
    assert not any('sequential scans' in f for f in run.result('no window')['findings'])  # ...hint at nothing

"""TOAST bloat, judged by pgstattuple on a real PostgreSQL 15 cluster.

``docs`` has 1,000 rows; 20 of them carry a 200 kB body stored out of line
(about 100 TOAST chunks each). Rewriting those 20 bodies leaves the heap 2 %
dead (20 tuples, under every threshold) while the TOAST table is a third
dead (2,000 chunks). Both modules must see it: pg_insight reports heap and
TOAST separately, measured by pgstattuple_approx (installed here), and counts
the table as a candidate; pg_vacuum selects it, counts the TOAST tuples it
removed, and a second run has nothing left to do. ``toast.autovacuum_enabled``
is off and must be reported.
"""

from __future__ import annotations

import pytest

from tests.harness.playbook import run_tasks
from tests.integration.pg_care.conftest import connection_options, flush_and_close, pgstattuple

DB = 'truth_toast'
BIG_ROWS = 20


def care(module, name, **args):
    return {'name': name, 'engineroom.maintenance.' + module: args, 'ignore_errors': True}


@pytest.fixture
def toast_db(truth_pg):
    truth_pg.execute('DROP DATABASE IF EXISTS %s' % DB)
    truth_pg.create_database(DB)
    conn = truth_pg.connect(DB)
    with conn.cursor() as cursor:
        cursor.execute('CREATE TABLE docs (id int PRIMARY KEY, title text, body text) '
                       'WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)')
        cursor.execute('ALTER TABLE docs ALTER body SET STORAGE EXTERNAL')
        cursor.execute("INSERT INTO docs SELECT g, 't' || g, CASE WHEN g <= %s THEN repeat(md5(g::text), 6400) "
                       "ELSE repeat(md5(g::text), 100) END FROM generate_series(1, 1000) g", (BIG_ROWS,))
    flush_and_close(conn)
    truth_pg.execute('VACUUM ANALYZE docs', dbname=DB)
    conn = truth_pg.connect(DB)
    with conn.cursor() as cursor:
        cursor.execute("UPDATE docs SET body = repeat(md5((id + 1)::text), 6400) WHERE id <= %s", (BIG_ROWS,))
    flush_and_close(conn)
    return truth_pg


def test_insight_reports_heap_and_toast_separately_with_pgstattuple_figures(toast_db):
    pg = toast_db
    heap_live, heap_dead = pgstattuple(pg, DB, 'docs')
    toast_live, toast_dead = pgstattuple(pg, DB, 'docs', toast=True)
    assert heap_dead == BIG_ROWS and toast_dead > 1000 and toast_dead > 0.3 * (toast_live + toast_dead)

    run = run_tasks([care('pg_insight', 'review', sections=['bloat', 'autovacuum_disabled'],
                          **connection_options(pg, DB))])
    result = run.result('review')
    assert 'failed' not in result, result.get('msg')
    row = dict(('%s.%s' % (r['schema'], r['table']), r) for r in result['bloat'])['public.docs']
    assert row['source'] == 'pgstattuple_approx'
    # Dead tuples exact (every page holding one is read); live tuples estimated for the all-visible pages.
    assert row['dead_tuples'] == heap_dead and row['toast_dead_tuples'] == toast_dead
    assert abs(row['live_tuples'] - heap_live) <= 0.1 * heap_live
    assert abs(row['toast_live_tuples'] - toast_live) <= 0.1 * toast_live
    assert row['toast_bytes'] > row['heap_bytes'] > 0 and row['toast_dead_bytes'] > 0
    assert row['candidate'] is True and row['candidate_by'] == ['toast']
    assert result['metrics']['bloat_candidates'] == 1
    assert any('public.docs' in f and 'TOAST' in f for f in result['findings']), result['findings']

    settings = dict(('%s.%s' % (r['schema'], r['table']), r) for r in result['autovacuum_disabled'])['public.docs']
    assert settings['autovacuum_enabled'] is False and settings['toast_autovacuum_enabled'] is False
    assert any('TOAST' in f and 'autovacuum is off' in f for f in result['findings']), result['findings']


def test_insight_falls_back_to_statistics_and_says_so(toast_db):
    pg = toast_db
    pg.execute('DROP EXTENSION pgstattuple', dbname=DB)
    run = run_tasks([care('pg_insight', 'review', sections=['bloat'], **connection_options(pg, DB))])
    row = run.result('review')['bloat'][0]
    assert row['table'] == 'docs' and row['source'] == 'statistics'
    assert row['toast_dead_tuples'] > 1000 and row['candidate'] is True


def test_vacuum_selects_by_toast_counts_toast_tuples_and_is_idempotent(toast_db):
    pg = toast_db
    toast_dead = pgstattuple(pg, DB, 'docs', toast=True)[1]
    run = run_tasks([care('pg_vacuum', 'vacuum', **connection_options(pg, DB)),
                     care('pg_vacuum', 'again', **connection_options(pg, DB))])
    first = run.result('vacuum')
    assert 'failed' not in first, first.get('msg')
    entry = dict((e['table'], e) for e in first['tables'])['docs']
    assert entry['status'] == 'done' and 'TOAST' in entry['reason'], entry
    assert entry['dead_tuples_before'] == BIG_ROWS and entry['toast_dead_tuples_before'] == toast_dead
    assert entry['toast_dead_tuples_after'] == 0
    assert first['dead_tuples_removed'] == BIG_ROWS + toast_dead
    assert first['metrics']['toast_dead_tuples_removed'] == toast_dead
    assert pgstattuple(pg, DB, 'docs', toast=True)[1] == 0
    assert pgstattuple(pg, DB, 'docs')[1] == 0

    again = run.result('again')
    assert again['changed'] is False and again['tables'] == [], again['tables']

"""Old transactions and wraparound distance on real PostgreSQL 15 clusters.

* A transaction open for seconds that keeps running short statements (the
  busy old transaction: its current query is always young) is found by its
  ``xact_start``, with the age of the transaction ID it holds.
* Wraparound distance: a cluster of its own with ``autovacuum_freeze_max_age``
  at its minimum (100,000) and ``vacuum_freeze_min_age`` 0 burns 60,000
  transaction IDs; pg_insight must report the age PostgreSQL reports, the
  distances derived from it, and a finding past ``wraparound_warn_pct``; after
  ``VACUUM (FREEZE)`` of every database the age falls and the finding goes.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.harness.playbook import run_tasks
from tests.harness.postgres import PostgresCluster
from tests.integration.pg_care.conftest import connection_options

BURNED = 60000


def insight(name, pg, dbname='postgres', **args):
    return {'name': name, 'engineroom.maintenance.pg_insight': dict(connection_options(pg, dbname), **args),
            'ignore_errors': True}


def _keep_busy(conn, stop):
    with conn.cursor() as cursor:
        while not stop.wait(0.3):
            cursor.execute('SELECT 1')


def test_a_busy_old_transaction_is_found_by_its_start_not_its_last_statement(truth_pg):
    pg = truth_pg
    pg.execute('CREATE TABLE IF NOT EXISTS busy_counter (n int)')
    conn = pg.connect()
    conn.autocommit = False
    stop = threading.Event()
    busy = threading.Thread(target=_keep_busy, args=(conn, stop))
    try:
        with conn.cursor() as cursor:
            cursor.execute('INSERT INTO busy_counter VALUES (1)')  # the transaction now holds an xid
            cursor.execute('SELECT pg_backend_pid()')
            pid = cursor.fetchone()[0]
        busy.start()  # short statements every 0.3 s: the current query is never old
        time.sleep(3)
        run = run_tasks([insight('review', pg, sections=['long_queries'], long_query_s=2)])
    finally:
        stop.set()
        busy.join(10)
        conn.rollback()
        conn.close()
    result = run.result('review')
    rows = [r for r in result['long_queries'] if r['pid'] == pid]
    assert len(rows) == 1, result['long_queries']
    row = rows[0]
    assert row['duration_s'] >= 3 and row['query_duration_s'] < 2, row
    assert row['xid_age'] is not None and row['xid_age'] >= 0
    assert any('pid %d' % pid in f and 'transaction open' in f and 'holds back VACUUM' in f
               for f in result['findings']), result['findings']


@pytest.fixture(scope='module')
def aging_pg(scratch_dir):
    cluster = PostgresCluster(os.path.join(scratch_dir, 'pg-aging'))
    cluster.init()
    with open(os.path.join(cluster.data_dir, 'postgresql.conf'), 'a') as handle:
        handle.write('\nautovacuum = off\nautovacuum_freeze_max_age = 100000\nvacuum_freeze_min_age = 0\n')
    cluster.start()
    try:
        cluster.execute('CREATE PROCEDURE burn(n int) LANGUAGE plpgsql AS '
                        '$$ BEGIN FOR i IN 1..n LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$')
        cluster.execute('CALL burn(%s)', (BURNED,))
        yield cluster
    finally:
        cluster.stop()


def test_wraparound_distance_per_database_with_thresholds(aging_pg):
    pg = aging_pg
    run = run_tasks([insight('aged', pg, sections=['wraparound'])])
    truth = dict(pg.execute('SELECT datname, age(datfrozenxid) FROM pg_database'))
    result = run.result('aged')
    rows = dict((r['database'], r) for r in result['wraparound'])
    assert set(rows) == set(truth)
    for name, row in rows.items():
        assert row['xid_age'] == truth[name] and row['xid_age'] >= BURNED  # no transaction ran in between
        assert row['autovacuum_freeze_max_age'] == 100000
        assert row['xids_to_forced_autovacuum'] == 100000 - truth[name]
        assert row['xids_to_stop_limit'] == 2 ** 31 - 3000000 - truth[name]
        assert row['pct_of_freeze_max_age'] == round(100.0 * truth[name] / 100000, 1)
    assert any(f.startswith('database postgres is at 6') and 'forced anti-wraparound autovacuum' in f
               for f in result['findings']), result['findings']

    for name in truth:
        if name != 'template0':
            pg.execute('VACUUM (FREEZE)', dbname=name)
    pg.execute("UPDATE pg_database SET datallowconn = true WHERE datname = 'template0'")
    pg.execute('VACUUM (FREEZE)', dbname='template0')
    pg.execute("UPDATE pg_database SET datallowconn = false WHERE datname = 'template0'")
    frozen = run_tasks([insight('frozen', pg, sections=['wraparound'])]).result('frozen')
    assert all(r['xid_age'] < 1000 for r in frozen['wraparound']), frozen['wraparound']
    assert not any('autovacuum_freeze_max_age' in f for f in frozen['findings'])
    strict = run_tasks([insight('strict', pg, sections=['wraparound'], wraparound_warn_pct=0)]).result('strict')
    assert sum('autovacuum_freeze_max_age' in f for f in strict['findings']) == len(truth)

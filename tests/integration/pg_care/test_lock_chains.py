"""Lock waits named by table in the right database, row waits mapped to their table, the root of each chain.

The review logs in to ``postgres`` while the locks are taken in another
database, where the table's OID means nothing to the login database: the
relation must still read ``public.ledger``. Two sessions queue for a row that
a third updated and did not commit: the first waits on the holder's
``transactionid``, the second on the row's ``tuple`` lock behind the first;
both chains lead to the holder.
"""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from tests.harness.playbook import run_tasks
from tests.integration.pg_care.conftest import connection_options

DB = 'truth_locks'


@pytest.fixture
def locks_db(truth_pg):
    truth_pg.execute('DROP DATABASE IF EXISTS %s' % DB)
    truth_pg.create_database(DB)
    truth_pg.execute('CREATE TABLE ledger (id int PRIMARY KEY, n int)', dbname=DB)
    truth_pg.execute('INSERT INTO ledger SELECT g, 0 FROM generate_series(1, 10) g', dbname=DB)
    return truth_pg


def session(pg):
    conn = pg.connect(DB)
    conn.autocommit = False
    with conn.cursor() as cursor:
        cursor.execute('SELECT pg_backend_pid()')
        return conn, cursor.fetchone()[0]


def run_in_thread(conn, statement):
    def target():
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)
        except psycopg2.Error:
            pass
    thread = threading.Thread(target=target)
    thread.start()
    return thread


def wait_until_waiting(pg, pids, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = pg.execute('SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND wait_event_type = %s',
                          (list(pids), 'Lock'))
        if rows[0][0] == len(pids):
            return
        time.sleep(0.1)
    raise AssertionError('sessions %s never waited for a lock' % (pids,))


def test_table_lock_in_another_database_and_a_row_lock_chain(locks_db):
    pg = locks_db
    holder, holder_pid = session(pg)
    first, first_pid = session(pg)
    second, second_pid = session(pg)
    threads = []
    try:
        with holder.cursor() as cursor:
            cursor.execute('UPDATE ledger SET n = 1 WHERE id = 1')
        threads.append(run_in_thread(first, 'UPDATE ledger SET n = 2 WHERE id = 1'))
        wait_until_waiting(pg, [first_pid])
        threads.append(run_in_thread(second, 'UPDATE ledger SET n = 3 WHERE id = 1'))
        wait_until_waiting(pg, [first_pid, second_pid])
        run = run_tasks([{'name': 'review', 'ignore_errors': True, 'engineroom.maintenance.pg_insight': dict(
            connection_options(pg, 'postgres'), sections=['blocking'])}])
    finally:
        holder.rollback()
        for thread in threads:
            thread.join(10)
        for conn in (holder, first, second):
            conn.rollback()
            conn.close()
    result = run.result('review')
    assert 'failed' not in result, result.get('msg')
    pairs = dict(((r['blocked_pid'], r['blocking_pid']), r) for r in result['blocking'])
    first_row = pairs[(first_pid, holder_pid)]
    assert first_row['database'] == DB and first_row['locktype'] == 'transactionid'
    assert first_row['relation'] == 'public.ledger' and first_row['root_blocking_pid'] == holder_pid
    second_rows = [r for r in result['blocking'] if r['blocked_pid'] == second_pid]
    assert second_rows and all(r['root_blocking_pid'] == holder_pid and r['relation'] == 'public.ledger'
                               for r in second_rows), second_rows
    assert any('pid %d waits' % first_pid in f and 'a row of public.ledger (transactionid lock)' in f
               for f in result['findings']), result['findings']
    roots = [f for f in result['findings'] if 'root of a blocking chain' in f]
    assert len(roots) == 1 and roots[0].startswith('pid %d ' % holder_pid) and '2 session(s)' in roots[0], roots


def test_a_table_lock_is_named_although_the_review_logs_in_elsewhere(locks_db):
    pg = locks_db
    holder, holder_pid = session(pg)
    waiter, waiter_pid = session(pg)
    thread = None
    try:
        with holder.cursor() as cursor:
            cursor.execute('LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE')
        thread = run_in_thread(waiter, 'SELECT count(*) FROM ledger')
        wait_until_waiting(pg, [waiter_pid])
        run = run_tasks([{'name': 'review', 'ignore_errors': True, 'engineroom.maintenance.pg_insight': dict(
            connection_options(pg, 'postgres'), sections=['blocking'])}])
    finally:
        holder.rollback()
        if thread is not None:
            thread.join(10)
        for conn in (holder, waiter):
            conn.rollback()
            conn.close()
    row = [r for r in run.result('review')['blocking'] if r['blocked_pid'] == waiter_pid][0]
    assert (row['relation'], row['mode'], row['locktype']) == ('public.ledger', 'AccessShareLock', 'relation')
    assert row['root_blocking_pid'] == holder_pid
    own_oid = pg.execute("SELECT 'ledger'::regclass::oid::bigint", dbname=DB)[0][0]
    assert row['relation_oid'] == own_oid

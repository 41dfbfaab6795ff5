"""The held-back cleanup horizon, judged by pgstattuple on a real PostgreSQL 15 cluster.

An open REPEATABLE READ transaction (or a prepared transaction) taken before
rows are updated keeps their old versions visible: VACUUM cannot remove them.
pg_vacuum must say so (table ``held_back``, the holder named), change nothing
(``changed: false``, run after run), and clean the table once the holder is
gone. A replication slot whose standby (hot_standby_feedback) keeps an old
snapshot holds the horizon the same way.
"""

from __future__ import annotations

import os
import shutil
import time

import psycopg2
import pytest

from tests.harness.playbook import run_tasks
from tests.harness.postgres import PostgresCluster
from tests.integration.pg_care.conftest import connection_options, flush_and_close, pgstattuple, wait_for_stats

DB = 'truth_horizon'
ROWS = 10000
UPDATED = 4400


def vacuum(name, pg, **args):
    return {'name': name, 'engineroom.maintenance.pg_vacuum': dict(connection_options(pg, DB), tables=['accounts'],
                                                                   **args), 'ignore_errors': True}


@pytest.fixture
def horizon_db(truth_pg):
    truth_pg.execute('DROP DATABASE IF EXISTS %s' % DB)
    truth_pg.create_database(DB)
    truth_pg.execute('CREATE TABLE accounts (id int PRIMARY KEY, n int) WITH (autovacuum_enabled = false)', dbname=DB)
    conn = truth_pg.connect(DB)
    with conn.cursor() as cursor:
        cursor.execute('INSERT INTO accounts SELECT g, 0 FROM generate_series(1, %s) g', (ROWS,))
    flush_and_close(conn)
    # The insert's statistics must have arrived before VACUUM ANALYZE sets them, or they are counted twice.
    wait_for_stats(truth_pg, DB, dict(accounts=(ROWS, 0)))
    truth_pg.execute('VACUUM ANALYZE accounts', dbname=DB)
    return truth_pg


def make_dead_tuples(pg):
    conn = pg.connect(DB)
    with conn.cursor() as cursor:
        cursor.execute('UPDATE accounts SET n = n + 1 WHERE id > 1 AND id <= %s', (UPDATED + 1,))
    flush_and_close(conn)
    wait_for_stats(pg, DB, dict(accounts=(ROWS, UPDATED)))


def open_snapshot(pg):
    conn = psycopg2.connect(host=pg.socket_dir, port=pg.port, user=pg.superuser, dbname=DB,
                            application_name='nightly-report')
    conn.set_session(isolation_level='REPEATABLE READ')
    with conn.cursor() as cursor:
        cursor.execute('SELECT count(*) FROM accounts')
        cursor.execute('SELECT pg_backend_pid()')
        pid = cursor.fetchone()[0]
    return conn, pid


def test_an_old_snapshot_holds_the_table_back_names_its_session_and_changes_nothing(horizon_db):
    pg = horizon_db
    holder, holder_pid = open_snapshot(pg)
    try:
        make_dead_tuples(pg)
        run = run_tasks([vacuum('held', pg), vacuum('again', pg)])
        remaining = pgstattuple(pg, DB, 'accounts')[1]
    finally:
        holder.rollback()
        holder.close()
    assert remaining == UPDATED  # the judge: VACUUM could remove none of them
    for name in ('held', 'again'):
        result = run.result(name)
        assert 'failed' not in result, result.get('msg')
        assert result['changed'] is False and result['dead_tuples_removed'] == 0
        entry = result['tables'][0]
        assert entry['status'] == 'held_back' and entry['dead_tuples_after'] == UPDATED, entry
        held_by = entry['held_by']
        assert (held_by['kind'], held_by['pid'], held_by['application']) == ('session', holder_pid, 'nightly-report')
        assert held_by['query'] == 'SELECT pg_backend_pid()' and held_by['age_s'] >= 0
        assert 'pid %d' % holder_pid in entry['reason'] and 'nightly-report' in entry['reason']
        assert result['horizon_holders'][0]['pid'] == holder_pid
        assert result['metrics']['tables_held_back'] == 1
        assert any('cleanup horizon is held by session pid %d' % holder_pid in w for w in result['warnings'])
        assert '1 held_back' in result['summary']

    released = run_tasks([vacuum('released', pg)]).result('released')
    assert released['changed'] is True and released['tables'][0]['status'] == 'done'
    assert released['dead_tuples_removed'] == UPDATED and released['horizon_holders'] == []
    assert pgstattuple(pg, DB, 'accounts')[1] == 0


def test_a_prepared_transaction_holds_the_horizon_and_is_named(horizon_db):
    pg = horizon_db
    preparer = pg.connect(DB)
    preparer.autocommit = False
    with preparer.cursor() as cursor:
        cursor.execute('UPDATE accounts SET n = -1 WHERE id = 1')
        cursor.execute("PREPARE TRANSACTION 'maintenance-test-gid'")
    preparer.close()
    try:
        make_dead_tuples(pg)
        result = run_tasks([vacuum('held', pg)]).result('held')
        remaining = pgstattuple(pg, DB, 'accounts')[1]
    finally:
        pg.execute("ROLLBACK PREPARED 'maintenance-test-gid'", dbname=DB)
    assert remaining == UPDATED
    entry = result['tables'][0]
    assert result['changed'] is False and entry['status'] == 'held_back'
    assert (entry['held_by']['kind'], entry['held_by']['name']) == ('prepared_transaction', 'maintenance-test-gid')
    assert 'ROLLBACK PREPARED' in entry['reason']


@pytest.fixture
def standby(horizon_db, scratch_dir):
    """A streaming standby of the truth cluster through slot ``standby_slot``, with hot_standby_feedback on."""
    pg = horizon_db
    base = os.path.join(scratch_dir, 'pg-standby')
    replica = PostgresCluster(base)
    os.makedirs(replica.socket_dir, exist_ok=True)
    replica._give_to_server_user(base)
    replica._give_to_server_user(replica.socket_dir)
    pg._run(['pg_basebackup', '-h', pg.socket_dir, '-p', str(pg.port), '-U', pg.superuser, '-D', replica.data_dir,
             '-R', '-C', '-S', 'standby_slot', '-X', 'stream'])
    with open(os.path.join(replica.data_dir, 'postgresql.conf'), 'a') as handle:
        handle.write('\nhot_standby_feedback = on\nwal_receiver_status_interval = 1\n')
    replica.start()
    try:
        yield replica
    finally:
        replica.stop()
        pg.execute("SELECT pg_drop_replication_slot('standby_slot')")
        shutil.rmtree(base, ignore_errors=True)


def test_a_replication_slot_fed_back_by_a_standby_holds_the_horizon(horizon_db, standby):
    pg = horizon_db
    reader = psycopg2.connect(host=standby.socket_dir, port=standby.port, user=standby.superuser, dbname=DB)
    reader.set_session(isolation_level='REPEATABLE READ')
    try:
        with reader.cursor() as cursor:
            cursor.execute('SELECT count(*) FROM accounts')  # the standby's snapshot, fed back to the slot
        deadline = time.monotonic() + 30
        while not pg.execute("SELECT xmin IS NOT NULL FROM pg_replication_slots WHERE slot_name = 'standby_slot'")[0][0]:
            assert time.monotonic() < deadline, 'the standby never fed its xmin back'
            time.sleep(0.2)
        make_dead_tuples(pg)
        result = run_tasks([vacuum('held', pg)]).result('held')
        remaining = pgstattuple(pg, DB, 'accounts')[1]
    finally:
        reader.rollback()
        reader.close()
    assert remaining == UPDATED
    entry = result['tables'][0]
    assert result['changed'] is False and entry['status'] == 'held_back', entry
    assert (entry['held_by']['kind'], entry['held_by']['name']) == ('replication_slot', 'standby_slot')
    assert 'replication slot' in entry['reason'] and 'hot_standby_feedback' in entry['reason']


def test_terminate_horizon_holders_older_than_ends_the_old_session_and_check_mode_only_names_it(horizon_db):
    pg = horizon_db
    holder, holder_pid = open_snapshot(pg)
    try:
        make_dead_tuples(pg)
        time.sleep(2)
        run = run_tasks([dict(vacuum('would', pg, terminate_horizon_holders_older_than=1), check_mode=True),
                         vacuum('terminate', pg, terminate_horizon_holders_older_than=1)])
        with pytest.raises(psycopg2.OperationalError):
            with holder.cursor() as cursor:
                cursor.execute('SELECT 1')
    finally:
        holder.close()
    would = run.result('would')
    assert [(h['pid'], h['terminated']) for h in would['terminated_holders']] == [(holder_pid, None)]
    assert would['tables'][0]['status'] == 'planned'
    done = run.result('terminate')
    assert 'failed' not in done, done.get('msg')
    assert [(h['pid'], h['terminated']) for h in done['terminated_holders']] == [(holder_pid, True)]
    assert done['metrics']['sessions_terminated'] == 1
    assert done['tables'][0]['status'] == 'done' and done['dead_tuples_removed'] == UPDATED
    assert pgstattuple(pg, DB, 'accounts')[1] == 0

"""pg_vacuum when the server refuses it something, against the real PostgreSQL 15 cluster of the ``pg`` fixture.

* catalog reads the server refuses (permission denied on pg_database or
  pg_class, revoked in scratch databases of our own) fail with an operator
  message instead of a traceback, and nothing is vacuumed;
* with jobs: 2 and a login role whose CONNECTION LIMIT admits one connection,
  the worker that is refused leaves the queue to the other: every table done,
  the refusal reported once as a warning.

Roles and databases carry the ``vfix_`` prefix and are dropped at the end.
"""

from __future__ import annotations

import pytest
from psycopg2 import sql

from tests.harness.playbook import run_tasks
from tests.integration.pg_care.conftest import connection_options, flush_and_close, wait_for_stats

MODULE = 'engineroom.maintenance.pg_vacuum'
USER = 'vfix_user'
ONE = 'vfix_one'                    # CONNECTION LIMIT 1
PASSWORD = 'vfix-user-pw'
NO_LIST_DB = 'vfix_nolist'          # SELECT on pg_database revoked from PUBLIC here
NO_CATALOG_DB = 'vfix_nocatalog'    # SELECT on pg_class revoked from PUBLIC here
WORK_DB = 'vfix_work'               # owned by ONE, its tables bloated
TABLES = ['w%02d' % i for i in range(12)]
ROWS = 5000
DATABASES = (NO_LIST_DB, NO_CATALOG_DB, WORK_DB)


def task(name, **args):
    return {'name': name, MODULE: args, 'ignore_errors': True}


def _drop(pg):
    for database in DATABASES:
        pg.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(database)))
    for role in (USER, ONE):
        pg.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))


@pytest.fixture
def vfix(pg):
    _drop(pg)
    pg.create_role(USER, PASSWORD)
    pg.create_role(ONE, PASSWORD)
    pg.create_database(NO_LIST_DB, owner=USER)
    pg.create_database(NO_CATALOG_DB, owner=USER)
    pg.execute('REVOKE SELECT ON pg_catalog.pg_database FROM PUBLIC', dbname=NO_LIST_DB)
    pg.execute('REVOKE SELECT ON pg_catalog.pg_class FROM PUBLIC', dbname=NO_CATALOG_DB)
    pg.create_database(WORK_DB, owner=ONE)
    conn = pg.connect(WORK_DB)
    with conn.cursor() as cursor:
        for table in TABLES:
            cursor.execute(sql.SQL('CREATE TABLE {} (id int PRIMARY KEY, n int) WITH (autovacuum_enabled = false)')
                           .format(sql.Identifier(table)))
            cursor.execute(sql.SQL('INSERT INTO {} SELECT g, 0 FROM generate_series(1, %s) g')
                           .format(sql.Identifier(table)), (ROWS,))
            cursor.execute(sql.SQL('UPDATE {} SET n = 1 WHERE id <= %s').format(sql.Identifier(table)), (ROWS // 2,))
    flush_and_close(conn)
    wait_for_stats(pg, WORK_DB, dict((t, (ROWS, ROWS // 2)) for t in TABLES))
    yield pg
    _drop(pg)


def test_refused_catalog_reads_fail_with_a_message_and_change_nothing(vfix):
    pg = vfix
    run = run_tasks([
        task('pg_database refused', **connection_options(pg, NO_LIST_DB, USER, PASSWORD)),
        task('pg_class refused, login database', **connection_options(pg, NO_CATALOG_DB, USER, PASSWORD)),
        task('pg_class refused, listed database', databases=[NO_CATALOG_DB],
             **connection_options(pg, 'postgres', USER, PASSWORD)),
    ])
    listing = run.result('pg_database refused')
    assert listing['failed'] is True and 'Traceback' not in listing.get('exception', '') + listing['msg']
    assert 'cannot list the databases (pg_database) on vfix_user@' in listing['msg']
    assert 'permission denied for table pg_database' in listing['msg']
    assert 'give the login role read access to pg_database' in listing['msg']
    for name in ('pg_class refused, login database', 'pg_class refused, listed database'):
        result = run.result(name)
        assert result['failed'] is True and 'Traceback' not in result.get('exception', ''), (name, result['msg'])
        assert "cannot read the table catalog (pg_class, pg_namespace, pg_database) of database 'vfix_nocatalog' " \
               "as role 'vfix_user'" in result['msg'], (name, result['msg'])
        assert 'permission denied for table pg_class' in result['msg'] and 'nothing was vacuumed' in result['msg']
        assert not any(c.startswith(('VACUUM', 'ANALYZE')) for c in result['executed_commands'])


def test_refused_worker_connection_leaves_the_tables_to_the_other_worker(vfix):
    pg = vfix
    pg.execute(sql.SQL('ALTER ROLE {} CONNECTION LIMIT 1').format(sql.Identifier(ONE)))
    # A lock held by the test keeps the connected worker busy (lock_timeout_ms) on one table, so the
    # second worker is refused for certain instead of connecting after the first one is done.
    locked = TABLES[-1]
    holder = pg.connect(WORK_DB)
    holder.autocommit = False
    try:
        with holder.cursor() as cursor:
            cursor.execute(sql.SQL('LOCK TABLE {} IN ACCESS EXCLUSIVE MODE').format(sql.Identifier(locked)))
        run = run_tasks([task('two jobs, one connection', jobs=2, force=True, mode='vacuum', lock_timeout_ms=1500,
                              **connection_options(pg, WORK_DB, ONE, PASSWORD))])
    finally:
        holder.rollback()
        holder.close()
    result = run.result('two jobs, one connection')
    assert result.get('failed') is not True, result.get('msg')
    assert sorted(e['table'] for e in result['tables']) == TABLES
    by_table = dict((e['table'], e) for e in result['tables'])
    assert by_table[locked]['status'] == 'skipped' and by_table[locked]['reason'] == 'lock_timeout'
    assert all(by_table[t]['status'] == 'done' for t in TABLES[:-1]), result['tables']
    assert result['metrics']['tables_failed'] == 0 and result['tables_processed'] == len(TABLES) - 1
    refusals = [w for w in result.get('warnings', []) if 'worker connection could not be opened' in w]
    assert len(refusals) == 1, result.get('warnings')
    assert 'vfix_work' in refusals[0] and 'too many connections for role' in refusals[0]
    stats = dict(pg.execute('SELECT relname, n_dead_tup FROM pg_stat_user_tables', dbname=WORK_DB))
    assert all(stats[t] == 0 for t in TABLES[:-1]) and stats[locked] > 0

"""pg_insight through real ansible-playbook runs against real PostgreSQL 15 clusters.

The review must find what the fixtures planted (an unused index, a bloated
table, sequential scans, autovacuum switched off, a blocked session), change
nothing, and report a section it cannot collect instead of hanging on a lock.
"""

from __future__ import annotations

import threading
import time

import psycopg2

from tests.harness.playbook import run_tasks
from tests.harness.ports import free_port
from tests.integration.pg_care.conftest import INSIGHT_DB, INSIGHT_DB_B, connection_options

MODULE = 'engineroom.maintenance.pg_insight'


def task(name, check=False, **args):
    entry = {'name': name, MODULE: args, 'ignore_errors': True}
    if check:
        entry['check_mode'] = True
    return entry


def rows_of(result, section, database=INSIGHT_DB):
    return dict(('%s.%s' % (r['schema'], r['table']), r) for r in result[section] if r['database'] == database)


def test_full_review_finds_what_was_planted_and_changes_nothing(pg, insight_db):
    stats_before = pg.execute('SELECT relname, n_dead_tup, n_mod_since_analyze, seq_scan FROM pg_stat_user_tables '
                              'ORDER BY 1', dbname=INSIGHT_DB)
    run = run_tasks([task('review', databases=[INSIGHT_DB, INSIGHT_DB_B], **connection_options(pg, INSIGHT_DB)),
                     task('check mode', check=True, sections=['bloat'], **connection_options(pg, INSIGHT_DB))])
    result = run.result('review')
    assert result['changed'] is False and 'failed' not in result, result.get('msg')
    assert result['errors'] == {}
    assert result['databases'] == [INSIGHT_DB, INSIGHT_DB_B]

    sizes = dict((r['database'], r['size_bytes']) for r in result['database_sizes'])
    # Autovacuum may truncate a table between the review and this query: the size is the server's, give or take that.
    actual = pg.execute('SELECT pg_database_size(%s)', (INSIGHT_DB,))[0][0]
    assert abs(sizes[INSIGHT_DB] - actual) <= actual * 0.05, (sizes[INSIGHT_DB], actual)
    assert 'template0' not in sizes

    largest = rows_of(result, 'largest_tables')
    assert list(largest)[0] == 'public.orders'
    orders = largest['public.orders']
    assert orders['total_bytes'] == orders['table_bytes'] + orders['index_bytes'] + orders['toast_bytes']
    assert orders['index_bytes'] > 0

    bloat = rows_of(result, 'bloat')
    assert bloat['public.orders']['dead_tuples'] == 6000 and bloat['public.orders']['candidate'] is True
    assert bloat['public.orders']['dead_ratio'] == 0.3 and bloat['public.orders']['last_analyze'].endswith('Z')

    unused = [(r['database'], r['index']) for r in result['unused_indexes']]
    assert (INSIGHT_DB, 'orders_note_idx') in unused
    assert not any(index in ('orders_pkey', 'orders_ref_key') for database, index in unused)

    seq = rows_of(result, 'seq_scans')
    assert seq['public.events']['seq_scans'] >= 3 and seq['public.events']['indexes'] == 0

    autovac = rows_of(result, 'autovacuum_disabled')
    assert autovac['public.events']['autovacuum_enabled'] is False
    assert autovac['public.orders']['autovacuum_enabled'] is False
    assert autovac['public.tuned'] == dict(database=INSIGHT_DB, schema='public', table='tuned', autovacuum_enabled=True,
                                           settings={'autovacuum_vacuum_scale_factor': '0.05'},
                                           toast_autovacuum_enabled=True, toast_settings={})
    assert result['autovacuum']['autovacuum'] == 'on'
    assert result['autovacuum']['autovacuum_naptime'] == '60s'

    statements = dict((r['database'], r) for r in result['statements'])
    assert statements[INSIGHT_DB]['installed'] is False and statements[INSIGHT_DB]['available'] is False
    assert statements[INSIGHT_DB_B]['installed'] is True and statements[INSIGHT_DB_B]['available'] is False
    assert 'shared_preload_libraries' in statements[INSIGHT_DB_B]['reason']

    assert result['connections']['max_connections'] == 50 and result['connections']['total'] >= 1
    wrap = dict((r['database'], r) for r in result['wraparound'])
    assert wrap[INSIGHT_DB]['xid_age'] > 0 and wrap[INSIGHT_DB]['pct_of_wraparound'] < 1

    assert '%s: public.orders has 6000 dead tuples (30 %% of live): vacuum it' % INSIGHT_DB in result['findings']
    assert '%s: autovacuum is off for public.events' % INSIGHT_DB in result['findings']
    assert result['metrics']['bloat_candidates'] >= 1 and result['metrics']['unused_indexes'] >= 1
    assert result['summary'].startswith('pg_insight: 2 database(s), ')
    assert all(c.startswith('SELECT') for c in result['executed_commands'])

    check = run.result('check mode')
    assert check['changed'] is False and list(rows_of(check, 'bloat'))[0] == 'public.orders'
    assert 'largest_tables' not in check and 'connections' not in check
    # Read-only: the statistics of the reviewed tables did not move.
    assert pg.execute('SELECT relname, n_dead_tup, n_mod_since_analyze, seq_scan FROM pg_stat_user_tables '
                      'ORDER BY 1', dbname=INSIGHT_DB) == stats_before


def _blocked_select(conn):
    try:
        with conn.cursor() as cursor:
            cursor.execute('SELECT count(*) FROM orders')
    except psycopg2.Error:
        pass


def test_blocked_sessions_long_queries_and_a_locked_table(pg, insight_db):
    holder = pg.connect(INSIGHT_DB)
    holder.autocommit = False
    waiter = pg.connect(INSIGHT_DB)
    blocked = threading.Thread(target=_blocked_select, args=(waiter,))
    try:
        with holder.cursor() as cursor:
            cursor.execute('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE')
            cursor.execute('SELECT pg_backend_pid()')
            holder_pid = cursor.fetchone()[0]
        blocked.start()
        time.sleep(1.0)  # let the waiter queue behind the lock for longer than long_query_s
        run = run_tasks([task('now', sections=['connections', 'long_queries', 'blocking', 'largest_tables'],
                              long_query_s=0.5, lock_timeout_ms=300, **connection_options(pg, INSIGHT_DB))])
    finally:
        holder.rollback()
        blocked.join(10)
        holder.close()
        waiter.close()
    result = run.result('now')
    assert result['changed'] is False and 'failed' not in result
    pair = [r for r in result['blocking'] if r['blocking_pid'] == holder_pid]
    assert len(pair) == 1
    assert pair[0]['mode'] == 'AccessShareLock' and pair[0]['relation'] == 'public.orders'
    assert pair[0]['root_blocking_pid'] == holder_pid
    assert pair[0]['blocked_query'] == 'SELECT count(*) FROM orders' and pair[0]['waiting_s'] >= 0.5
    assert any(r['query'] == 'SELECT count(*) FROM orders' and r['duration_s'] >= 0.5 for r in result['long_queries'])
    assert result['metrics']['blocked_sessions'] >= 1
    # The size section waited lock_timeout_ms, reported, and the review went on.
    assert 'a table is locked by another session' in result['errors']['%s.largest_tables' % INSIGHT_DB]
    assert result['largest_tables'] == []
    assert any('largest_tables not collected' in w for w in result['warnings'])
    assert result['connections']['by_state'].get('active', 0) >= 1


def test_statements_section_with_the_extension_loaded(pg_statements):
    opts = dict(login_unix_socket=pg_statements.socket_dir, login_port=pg_statements.port, login_db=INSIGHT_DB)
    run = run_tasks([task('statements', sections=['statements'], top_n=10, **opts)])
    result = run.result('statements')
    entry = result['statements'][0]
    assert entry['installed'] is True and entry['available'] is True and entry['reason'] is None
    assert 3 <= len(entry['top']) <= 10
    assert any(q['query'] == 'SELECT sum(g) FROM busy WHERE g <= $1' and q['calls'] == 5 for q in entry['top']), entry['top']


def test_bad_inputs_fail_clearly(pg, insight_db):
    opts = connection_options(pg, INSIGHT_DB)
    cases = [
        ('unknown database', dict(opts, databases=['no_such_db']), "database 'no_such_db' does not exist"),
        ('refused', dict(opts, login_port=free_port()), 'is PostgreSQL running and listening there?'),
        ('top_n zero', dict(opts, top_n=0), 'top_n must be at least 1 (got 0)'),
        ('negative long_query_s', dict(opts, long_query_s=-1), 'long_query_s must not be negative'),
        ('no sections', dict(opts, sections=[]), 'sections is empty'),
        ('unknown section', dict(opts, sections=['gossip']), 'value of sections must be one or more of'),
    ]
    run = run_tasks([task(name, **args) for name, args, message in cases])
    for name, args, message in cases:
        result = run.result(name)
        assert result.get('failed') is True, name
        assert message in result['msg'], (name, result['msg'])

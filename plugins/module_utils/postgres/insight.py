# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only review of a PostgreSQL cluster: the checks the seeds ran by hand with psql.

Each section is one function over a runner whose session is read-only and
bounded by ``lock_timeout``/``statement_timeout``: size functions take ACCESS
SHARE locks, so a table locked away by another session makes that section
report an error instead of hanging the review. Sections are either about the
cluster (asked once) or about one database (asked in each database).
"""

from __future__ import annotations

try:
    import psycopg2
    import psycopg2.errors
except ImportError:  # reported by the module through missing_required_lib
    pass

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.vacuum import dead_ratio, is_bloated

CLUSTER_SECTIONS = ('database_sizes', 'connections', 'long_queries', 'blocking', 'autovacuum', 'wraparound')
DATABASE_SECTIONS = ('largest_tables', 'bloat', 'unused_indexes', 'seq_scans', 'autovacuum_disabled', 'statements')
SECTIONS = CLUSTER_SECTIONS + DATABASE_SECTIONS
WRAPAROUND_LIMIT = 2 ** 31
QUERY_TEXT_CHARS = 200
FALSE_WORDS = ('false', 'off', 'no', '0', 'f', 'n')

AUTOVACUUM_SETTINGS = (
    'autovacuum', 'track_counts', 'autovacuum_max_workers', 'autovacuum_naptime',
    'autovacuum_vacuum_threshold', 'autovacuum_vacuum_scale_factor',
    'autovacuum_vacuum_insert_threshold', 'autovacuum_vacuum_insert_scale_factor',
    'autovacuum_analyze_threshold', 'autovacuum_analyze_scale_factor',
    'autovacuum_freeze_max_age', 'autovacuum_vacuum_cost_limit', 'autovacuum_vacuum_cost_delay',
)


def session_settings(runner, lock_timeout_ms, statement_timeout_ms):
    """Make the session read-only and bounded before any section runs."""
    runner.rows("SELECT set_config('default_transaction_read_only', 'on', false), "
                "set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                ('%dms' % lock_timeout_ms, '%dms' % statement_timeout_ms))


def _dicts(runner, statement, keys, params=None):
    return [dict(zip(keys, row)) for row in runner.rows(statement.strip(), params)]


def _iso(value):
    return value.strftime('%Y-%m-%dT%H:%M:%SZ') if value is not None else None


# --- cluster sections ---------------------------------------------------------------

def database_sizes(runner, options):
    return _dicts(runner, "SELECT datname, CASE WHEN has_database_privilege(datname, 'CONNECT') "
                          "THEN pg_database_size(datname) END FROM pg_database WHERE NOT datistemplate "
                          "ORDER BY 2 DESC NULLS LAST, 1", ('database', 'size_bytes'))


def connections(runner, options):
    states = dict(runner.rows("SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
                              "WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 1"))
    max_conn, reserved = runner.rows("SELECT current_setting('max_connections')::int, "
                                     "current_setting('superuser_reserved_connections')::int")[0]
    total = sum(states.values())
    return dict(by_state=states, total=total, max_connections=max_conn, superuser_reserved=reserved,
                used_pct=round(100.0 * total / max_conn, 1) if max_conn else None)


def long_queries(runner, options):
    rows = _dicts(runner, "SELECT pid, usename, datname, state, "
                          "round(extract(epoch FROM now() - query_start)::numeric, 1)::float8, "
                          "wait_event_type, wait_event, left(query, %(chars)s) FROM pg_stat_activity "
                          "WHERE state <> 'idle' AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
                          "AND now() - query_start > make_interval(secs => %(secs)s) ORDER BY query_start",
                  ('pid', 'user', 'database', 'state', 'duration_s', 'wait_event_type', 'wait_event', 'query'),
                  dict(chars=QUERY_TEXT_CHARS, secs=options['long_query_s']))
    return rows


def blocking(runner, options):
    """Blocked/blocking pairs: pg_blocking_pids() over pg_locks, with the lock the blocked one waits for."""
    return _dicts(runner, """
SELECT a.pid, a.usename, a.datname, round(extract(epoch FROM now() - a.query_start)::numeric, 1)::float8,
       left(a.query, %(chars)s), l.locktype, l.mode, l.relation::regclass::text,
       b.pid, b.usename, b.state, left(b.query, %(chars)s)
FROM pg_stat_activity a
CROSS JOIN LATERAL unnest(pg_blocking_pids(a.pid)) AS blocker(pid)
JOIN pg_stat_activity b ON b.pid = blocker.pid
LEFT JOIN LATERAL (SELECT locktype, mode, relation FROM pg_locks
                   WHERE pid = a.pid AND NOT granted LIMIT 1) l ON true
ORDER BY a.query_start""", ('blocked_pid', 'blocked_user', 'database', 'waiting_s', 'blocked_query', 'locktype',
                            'mode', 'relation', 'blocking_pid', 'blocking_user', 'blocking_state', 'blocking_query'),
                  dict(chars=QUERY_TEXT_CHARS))


def autovacuum(runner, options):
    rows = runner.rows('SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s) ORDER BY name',
                       (list(AUTOVACUUM_SETTINGS),))
    return dict((name, setting + (unit or '')) for name, setting, unit in rows)


def wraparound(runner, options):
    freeze_max_age = int(runner.scalar("SELECT current_setting('autovacuum_freeze_max_age')"))
    rows = _dicts(runner, 'SELECT datname, age(datfrozenxid), mxid_age(datminmxid) FROM pg_database ORDER BY 2 DESC',
                  ('database', 'xid_age', 'mxid_age'))
    for row in rows:
        row['pct_of_freeze_max_age'] = round(100.0 * row['xid_age'] / freeze_max_age, 1)
        row['pct_of_wraparound'] = round(100.0 * row['xid_age'] / WRAPAROUND_LIMIT, 2)
    return rows


# --- database sections --------------------------------------------------------------

USER_TABLES = ("c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
               "AND n.nspname !~ '^pg_toast' AND c.relpersistence <> 't'")


def largest_tables(runner, options):
    """Total = table (heap with its free-space and visibility maps) + indexes + TOAST (with its index)."""
    rows = _dicts(runner, """
SELECT n.nspname, c.relname, pg_total_relation_size(c.oid), pg_table_size(c.oid), pg_indexes_size(c.oid),
       CASE WHEN c.reltoastrelid <> 0 THEN pg_total_relation_size(c.reltoastrelid) ELSE 0 END,
       c.reltuples::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE """ + USER_TABLES + """
ORDER BY 3 DESC, 1, 2 LIMIT %(n)s""", ('schema', 'table', 'total_bytes', 'table_bytes', 'index_bytes', 'toast_bytes',
                                       'estimated_rows'), dict(n=options['top_n']))
    for row in rows:
        row['table_bytes'] -= row['toast_bytes']
    return rows


def bloat(runner, options):
    rows = _dicts(runner, 'SELECT schemaname, relname, n_live_tup, n_dead_tup, last_vacuum, last_autovacuum, '
                          'last_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE n_dead_tup > 0 '
                          'ORDER BY n_dead_tup DESC, 1, 2 LIMIT %(n)s',
                  ('schema', 'table', 'live_tuples', 'dead_tuples', 'last_vacuum', 'last_autovacuum', 'last_analyze',
                   'last_autoanalyze'), dict(n=options['top_n']))
    for row in rows:
        for key in ('last_vacuum', 'last_autovacuum', 'last_analyze', 'last_autoanalyze'):
            row[key] = _iso(row[key])
        row['dead_ratio'] = round(dead_ratio(row), 3)
        row['candidate'] = is_bloated(row, options['min_dead_tuples'], options['min_dead_ratio'])
    return rows


def unused_indexes(runner, options):
    """Indexes never scanned since the statistics were reset; unique, primary and constraint indexes excluded."""
    return _dicts(runner, """
SELECT s.schemaname, s.relname, s.indexrelname, pg_relation_size(s.indexrelid), s.idx_scan
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = s.indexrelid)
ORDER BY 4 DESC, 1, 2, 3""", ('schema', 'table', 'index', 'size_bytes', 'scans'))


def seq_scans(runner, options):
    """Tables read mostly by sequential scans although they are not small: an index is probably missing."""
    keys = ('schema', 'table', 'seq_scans', 'seq_rows_read', 'index_scans', 'live_tuples', 'indexes')
    rows = _dicts(runner, """
SELECT s.schemaname, s.relname, s.seq_scan, s.seq_tup_read, coalesce(s.idx_scan, 0), s.n_live_tup,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid)
FROM pg_stat_user_tables s
WHERE s.seq_scan > 0 AND s.n_live_tup >= %(rows)s AND s.seq_scan > coalesce(s.idx_scan, 0)
ORDER BY s.seq_tup_read DESC, 1, 2 LIMIT %(n)s""", keys, dict(rows=options['seq_scan_min_rows'], n=options['top_n']))
    for row in rows:
        row['avg_rows_per_seq_scan'] = row['seq_rows_read'] // row['seq_scans']
    return rows


def parse_reloptions(options):
    """``['autovacuum_enabled=false', 'fillfactor=90']`` -> dict."""
    return dict(option.split('=', 1) for option in options or [] if '=' in option)


def autovacuum_disabled(runner, options):
    """Tables with autovacuum switched off, and tables with their own autovacuum settings."""
    rows = runner.rows('SELECT n.nspname, c.relname, c.reloptions FROM pg_class c '
                       'JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.reloptions IS NOT NULL AND '
                       + USER_TABLES + ' ORDER BY 1, 2')
    found = []
    for schema, table, reloptions in rows:
        settings = dict((k, v) for k, v in parse_reloptions(reloptions).items() if k.startswith('autovacuum_'))
        if settings:
            enabled = settings.get('autovacuum_enabled', 'true').lower() not in FALSE_WORDS
            found.append(dict(schema=schema, table=table, autovacuum_enabled=enabled, settings=settings))
    return found


def statements(runner, options):
    """Top queries by total time from pg_stat_statements; absent or unloaded is reported, not an error."""
    version = runner.scalar("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if version is None:
        return dict(installed=False, available=False, reason='extension pg_stat_statements is not installed', top=[])
    try:
        top = _dicts(runner, """
SELECT left(s.query, %(chars)s), s.calls, round(s.total_exec_time::numeric, 1)::float8,
       round(s.mean_exec_time::numeric, 2)::float8, s.rows
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = current_database()
ORDER BY s.total_exec_time DESC LIMIT %(n)s""", ('query', 'calls', 'total_ms', 'mean_ms', 'rows'),
                     dict(chars=QUERY_TEXT_CHARS, n=options['top_n']))
    except psycopg2.Error as exc:
        return dict(installed=True, version=version, available=False, reason=str(exc).strip().splitlines()[0], top=[])
    return dict(installed=True, version=version, available=True, reason=None, top=top)


SECTION_FUNCTIONS = dict(
    database_sizes=database_sizes, connections=connections, long_queries=long_queries, blocking=blocking,
    autovacuum=autovacuum, wraparound=wraparound, largest_tables=largest_tables, bloat=bloat,
    unused_indexes=unused_indexes, seq_scans=seq_scans, autovacuum_disabled=autovacuum_disabled,
    statements=statements,
)


def run_section(runner, name, options):
    """(data, error message): one section's failure (a lock, a timeout, a privilege) never stops the review."""
    try:
        return SECTION_FUNCTIONS[name](runner, options), None
    except psycopg2.errors.LockNotAvailable:
        return None, 'a table is locked by another session (waited lock_timeout_ms=%d): run the review again later' % (
            options['lock_timeout_ms'])
    except psycopg2.Error as exc:
        return None, (str(exc).strip().splitlines() or [type(exc).__name__])[0]

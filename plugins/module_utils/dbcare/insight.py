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

import math

try:
    import psycopg2
    import psycopg2.errors
    from psycopg2 import sql
except ImportError:  # reported by the module through missing_required_lib
    pass

from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare.scan_window import read_counters, window_hints
from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare.vacuum import (
    CATALOG_COLUMNS,
    CATALOG_QUERY,
    bloated_parts,
    dead_ratio,
    stale_reason,
)

CLUSTER_SECTIONS = ('database_sizes', 'connections', 'long_queries', 'blocking', 'autovacuum', 'wraparound')
DATABASE_SECTIONS = ('largest_tables', 'bloat', 'stale_statistics', 'unused_indexes', 'duplicate_indexes', 'index_bloat',
                     'seq_scans', 'autovacuum_disabled', 'statements')
SECTIONS = CLUSTER_SECTIONS + DATABASE_SECTIONS
WRAPAROUND_LIMIT = 2 ** 31
STOP_LIMIT_MARGIN = 3000000
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
    """Sessions whose transaction has been open longer than ``long_query_s``, busy or idle in it.

    The age is the transaction's (``xact_start``), not the current
    statement's: a transaction that runs ``SELECT 1`` every few seconds is as
    old as its first statement, and it is the transaction that holds back
    VACUUM (``backend_xmin``) and freezing (``backend_xid``).
    """
    return _dicts(runner, """
SELECT pid, usename, datname, state, application_name,
       round(extract(epoch FROM now() - coalesce(xact_start, query_start))::numeric, 1)::float8,
       round(extract(epoch FROM now() - query_start)::numeric, 1)::float8,
       age(backend_xid), age(backend_xmin), wait_event_type, wait_event, left(query, %(chars)s)
FROM pg_stat_activity
WHERE state <> 'idle' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND now() - coalesce(xact_start, query_start) > make_interval(secs => %(secs)s)
ORDER BY coalesce(xact_start, query_start)""",
                  ('pid', 'user', 'database', 'state', 'application', 'duration_s', 'query_duration_s', 'xid_age',
                   'xmin_age', 'wait_event_type', 'wait_event', 'query'),
                  dict(chars=QUERY_TEXT_CHARS, secs=options['long_query_s']))


def blocking(runner, options):
    """Blocked/blocking pairs: pg_blocking_pids() over pg_locks, with the lock the blocked one waits for.

    The relation is an OID here, valid only in the blocked session's database
    (see :func:`name_lock_targets`). A wait on a ``transactionid`` is a wait
    for a row: the waiter holds (or waits for) the ``tuple`` lock of that row,
    whose relation says which table. Each pair also names the root of its
    chain: the first blocker, followed blocker to blocker, that waits for no one.
    """
    rows = _dicts(runner, """
SELECT a.pid, a.usename, a.datname, round(extract(epoch FROM now() - a.query_start)::numeric, 1)::float8,
       left(a.query, %(chars)s), l.locktype, l.mode, coalesce(l.relation, t.relation)::bigint, t.page, t.tuple,
       b.pid, b.usename, b.state, left(b.query, %(chars)s)
FROM pg_stat_activity a
CROSS JOIN LATERAL unnest(pg_blocking_pids(a.pid)) AS blocker(pid)
JOIN pg_stat_activity b ON b.pid = blocker.pid
LEFT JOIN LATERAL (SELECT locktype, mode, relation FROM pg_locks
                   WHERE pid = a.pid AND NOT granted LIMIT 1) l ON true
LEFT JOIN LATERAL (SELECT relation, page, tuple FROM pg_locks
                   WHERE pid = a.pid AND locktype = 'tuple' LIMIT 1) t ON true
ORDER BY a.query_start, a.pid, b.pid""", ('blocked_pid', 'blocked_user', 'database', 'waiting_s', 'blocked_query',
                                          'locktype', 'mode', 'relation_oid', 'page', 'tuple', 'blocking_pid',
                                          'blocking_user', 'blocking_state', 'blocking_query'),
                  dict(chars=QUERY_TEXT_CHARS))
    blockers = {}
    for row in rows:
        blockers.setdefault(row['blocked_pid'], []).append(row['blocking_pid'])
    for row in rows:
        row['relation'] = None
        row['root_blocking_pid'] = root_of(row['blocking_pid'], blockers)
    return rows


def root_of(pid, blockers):
    """Follow the first blocker of each pid until one that waits for nobody (a cycle ends where it closes)."""
    seen = set()
    while pid in blockers and pid not in seen:
        seen.add(pid)
        pid = blockers[pid][0]
    return pid


RELATION_NAMES = ('SELECT c.oid::bigint, n.nspname || \'.\' || c.relname FROM pg_class c '
                  'JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(%s)')


def name_lock_targets(rows, runner_for):
    """Fill ``relation`` (schema.table) of blocking rows, each asked in the blocked session's own database.

    ``runner_for(database)`` returns a runner on that database, or None when
    it cannot be reached; those rows keep only ``relation_oid``.
    """
    by_database = {}
    for row in rows:
        if row['relation_oid']:
            by_database.setdefault(row['database'], []).append(row)
    for database, waiting in sorted(by_database.items()):
        runner = runner_for(database)
        if runner is None:
            continue
        try:
            names = dict(runner.rows(RELATION_NAMES, (sorted(set(r['relation_oid'] for r in waiting)),)))
        except psycopg2.Error:
            continue  # the OID stays: naming is a courtesy, the pair is reported either way
        for row in waiting:
            row['relation'] = names.get(row['relation_oid'])


def autovacuum(runner, options):
    rows = runner.rows('SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s) ORDER BY name',
                       (list(AUTOVACUUM_SETTINGS),))
    return dict((name, setting + (unit or '')) for name, setting, unit in rows)


def wraparound(runner, options):
    """Transaction ID age per database and its distance to forced autovacuum and to the stop limit.

    PostgreSQL forces an anti-wraparound autovacuum when ``age(datfrozenxid)``
    passes ``autovacuum_freeze_max_age`` and refuses new transaction IDs
    3,000,000 before the 2^31 wraparound limit.
    """
    freeze_max_age = int(runner.scalar("SELECT current_setting('autovacuum_freeze_max_age')"))
    rows = _dicts(runner, 'SELECT datname, age(datfrozenxid), mxid_age(datminmxid) FROM pg_database ORDER BY 2 DESC',
                  ('database', 'xid_age', 'mxid_age'))
    for row in rows:
        row['pct_of_freeze_max_age'] = round(100.0 * row['xid_age'] / freeze_max_age, 1)
        row['pct_of_wraparound'] = round(100.0 * row['xid_age'] / WRAPAROUND_LIMIT, 2)
        row['xids_to_forced_autovacuum'] = freeze_max_age - row['xid_age']
        row['xids_to_stop_limit'] = WRAPAROUND_LIMIT - STOP_LIMIT_MARGIN - row['xid_age']
        row['autovacuum_freeze_max_age'] = freeze_max_age
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


BLOAT_QUERY = """
SELECT c.oid, n.nspname, c.relname, c.reltoastrelid::bigint,
       pg_stat_get_live_tuples(c.oid), pg_stat_get_dead_tuples(c.oid),
       pg_stat_get_live_tuples(c.reltoastrelid), pg_stat_get_dead_tuples(c.reltoastrelid),
       c.relpages::bigint * current_setting('block_size')::bigint,
       coalesce(t.relpages, 0)::bigint * current_setting('block_size')::bigint,
       pg_stat_get_last_vacuum_time(c.oid), pg_stat_get_last_autovacuum_time(c.oid),
       pg_stat_get_last_analyze_time(c.oid), pg_stat_get_last_autoanalyze_time(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast' AND c.relpersistence <> 't'
  AND (pg_stat_get_dead_tuples(c.oid) > 0 OR pg_stat_get_dead_tuples(c.reltoastrelid) > 0)
"""
BLOAT_KEYS = ('_oid', 'schema', 'table', '_toast_oid', 'live_tuples', 'dead_tuples', 'toast_live_tuples',
              'toast_dead_tuples', 'heap_bytes', 'toast_bytes', 'last_vacuum', 'last_autovacuum', 'last_analyze',
              'last_autoanalyze')
APPROX = 'SELECT round(approx_tuple_count)::bigint, dead_tuple_count, table_len, dead_tuple_len FROM {}(%s::oid)'


def pgstattuple_function(runner):
    """``schema.pgstattuple_approx`` as an Identifier when the extension is installed here, else None."""
    schema = runner.scalar("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                           "WHERE e.extname = 'pgstattuple'")
    return sql.Identifier(schema, 'pgstattuple_approx') if schema else None


def measure(runner, function, row):
    """Replace the statistics' estimates of ``row`` (heap and TOAST) by pgstattuple_approx's measurement.

    pgstattuple_approx reads every page the visibility map does not mark
    all-visible, so its dead tuple count is exact and its live count an
    estimate for the all-visible pages. A refusal (privilege, lock_timeout,
    statement_timeout) leaves the statistics in place and says why.
    """
    try:
        for prefix, oid in (('', row['_oid']), ('toast_', row['_toast_oid'])):
            if not oid:
                continue
            live, dead, length, dead_length = runner.rows(sql.SQL(APPROX).format(function), (oid,))[0]
            row.update({prefix + 'live_tuples': live, prefix + 'dead_tuples': dead,
                        ('toast_bytes' if prefix else 'heap_bytes'): length, prefix + 'dead_bytes': dead_length})
        row['source'] = 'pgstattuple_approx'
    except psycopg2.Error as exc:
        row['source_note'] = 'pgstattuple_approx refused: %s' % (str(exc).strip().splitlines() or [''])[0]


def bloat(runner, options):
    """Dead tuples of each table and of its TOAST table, measured by pgstattuple_approx when installed.

    Every candidate is listed (the summary counts them whatever ``top_n``),
    then the largest other tables up to ``top_n`` rows.
    """
    rows = _dicts(runner, BLOAT_QUERY, BLOAT_KEYS)
    function = pgstattuple_function(runner) if rows else None
    for row in rows:
        row.update(source='statistics', source_note=None if function else 'extension pgstattuple is not installed',
                   dead_bytes=None, toast_dead_bytes=None)
        if function is not None:
            measure(runner, function, row)
        for key in ('last_vacuum', 'last_autovacuum', 'last_analyze', 'last_autoanalyze'):
            row[key] = _iso(row[key])
        row['dead_ratio'] = round(dead_ratio(row), 3)
        row['toast_dead_ratio'] = round(dead_ratio(row, 'toast_'), 3)
        row['candidate_by'] = bloated_parts(row, options['min_dead_tuples'], options['min_dead_ratio'])
        row['candidate'] = bool(row['candidate_by'])
    rows.sort(key=lambda r: (-(r['dead_tuples'] + r['toast_dead_tuples']), r['schema'], r['table']))
    candidates = [r for r in rows if r['candidate']]
    others = [r for r in rows if not r['candidate']][:max(0, options['top_n'] - len(candidates))]
    kept = set(id(r) for r in candidates + others)
    return [dict((k, v) for k, v in r.items() if not k.startswith('_')) for r in rows if id(r) in kept]


def stale_statistics(runner, options):
    """Tables and partitioned parents whose planner statistics are stale, by pg_vacuum's rule (it analyzes them).

    Never analyzed, rows modified since the last analyze over
    ``analyze_threshold_ratio`` of the live rows, or a row estimate
    (``reltuples``) that far from the live rows.
    """
    rows = [dict(zip(CATALOG_COLUMNS, row)) for row in runner.rows(CATALOG_QUERY.strip())]
    found = []
    for row in rows:
        reason = stale_reason(row, options['analyze_threshold_ratio'])
        if reason:
            found.append(dict(schema=row['schema'], table=row['table'], partitioned=row['relkind'] == 'p',
                              live_tuples=row['live_tuples'], estimated_rows=int(row['reltuples']),
                              modified_since_analyze=row['mod_since_analyze'], analyzed=row['analyzed'],
                              reason=reason))
    found.sort(key=lambda r: (-(r['live_tuples'] or 0), r['schema'], r['table']))
    return found


def unused_indexes(runner, options):
    """Indexes never scanned since the statistics were reset; unique, primary and constraint indexes excluded.

    ``stats_since`` says how long "never" is: the database's statistics reset,
    or the server's start when they were never reset.
    """
    since, age_s = runner.rows("SELECT coalesce(stats_reset, pg_postmaster_start_time()), "
                               "round(extract(epoch FROM now() - coalesce(stats_reset, pg_postmaster_start_time())))"
                               "::bigint FROM pg_stat_database WHERE datname = current_database()")[0]
    rows = _dicts(runner, """
SELECT s.schemaname, s.relname, s.indexrelname, pg_relation_size(s.indexrelid), s.idx_scan
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = s.indexrelid)
ORDER BY 4 DESC, 1, 2, 3""", ('schema', 'table', 'index', 'size_bytes', 'scans'))
    for row in rows:
        row.update(stats_since=_iso(since), stats_age_s=age_s)
    return rows


INDEX_DEFINITIONS = """
SELECT n.nspname, t.relname, c.relname, i.indkey::text, i.indclass::text, i.indcollation::text,
       coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), ''),
       am.amname, i.indisunique OR i.indisprimary OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid),
       c.relpages::bigint * current_setting('block_size')::bigint, i.indexrelid::bigint
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = c.relam
WHERE i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1, 2, 3"""
INDEX_KEYS = ('schema', 'table', 'index', 'columns', 'opclasses', 'collations', 'expressions', 'predicate', 'method',
              'enforces', 'size_bytes', 'oid')


def redundant_pair(a, b):
    """'duplicate' when ``a`` repeats ``b`` exactly, 'overlapping' when ``a``'s columns lead ``b``'s, else None.

    Only ``a`` is judged redundant, and never when it enforces a constraint
    (unique, primary key, exclusion): ``b`` can answer every query ``a`` can.
    """
    if a['enforces'] or a['method'] != b['method'] or (a['expressions'], a['predicate']) != (b['expressions'], b['predicate']):
        return None
    keys = [(a[k].split(), b[k].split()) for k in ('columns', 'opclasses', 'collations')]
    if all(mine == theirs for mine, theirs in keys):
        # Of two plain twins, the younger one (higher OID) is the redundant one; a twin that enforces is kept.
        return 'duplicate' if b['enforces'] or a['oid'] > b['oid'] else None
    if a['method'] == 'btree' and not a['expressions'] and all(
            len(mine) < len(theirs) and theirs[:len(mine)] == mine for mine, theirs in keys):
        return 'overlapping'
    return None


def duplicate_indexes(runner, options):
    """Indexes another index of the same table makes redundant (exact duplicates, leading-column prefixes)."""
    indexes = _dicts(runner, INDEX_DEFINITIONS, INDEX_KEYS)
    by_table = {}
    for index in indexes:
        by_table.setdefault((index['schema'], index['table']), []).append(index)
    found = []
    for (schema, table), group in sorted(by_table.items()):
        for a in group:
            for b in group:
                kind = redundant_pair(a, b) if a is not b else None
                if kind:
                    found.append(dict(schema=schema, table=table, index=a['index'], kind=kind, covered_by=b['index'],
                                      size_bytes=a['size_bytes']))
                    break
    return found


def index_bloat(runner, options):
    """Leaf density of the ``top_n`` largest B-tree indexes from pgstatindex, when pgstattuple is installed.

    A fresh B-tree is about 90 % full (its default fillfactor); the share
    below that is free space the index carries, which REINDEX returns.
    """
    function = pgstattuple_function(runner)
    if function is None:
        return dict(available=False, reason='extension pgstattuple is not installed', indexes=[])
    rows = _dicts(runner, """
SELECT n.nspname, t.relname, c.relname, c.oid::bigint, c.relpages::bigint * current_setting('block_size')::bigint
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND i.indisvalid AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 5 DESC, 1, 2, 3 LIMIT %(n)s""", ('schema', 'table', 'index', '_oid', 'size_bytes'), dict(n=options['top_n']))
    statindex = sql.Identifier(function.strings[0], 'pgstatindex')
    for row in rows:
        try:
            size, density, fragmentation = runner.rows(sql.SQL(
                'SELECT index_size, avg_leaf_density, leaf_fragmentation FROM {}(%s::regclass)').format(statindex),
                (row.pop('_oid'),))[0]
        except psycopg2.Error as exc:
            row.update(avg_leaf_density=None, leaf_fragmentation=None, bloat_bytes=None,
                       reason=(str(exc).strip().splitlines() or [''])[0])
            continue
        density = None if math.isnan(density) else density  # NaN for an empty index
        row.update(size_bytes=size, avg_leaf_density=density, leaf_fragmentation=fragmentation, reason=None,
                   bloat_bytes=int(size * max(0.0, 1 - density / 90.0)) if density is not None else None)
    return dict(available=True, reason=None, indexes=rows)


def seq_scans(runner, options):
    """Tables read mostly by sequential scans although they are not small: an index is probably missing.

    With a scan window (``options['scan_window']``, from the state file) the
    rows are the window's hints (see :mod:`postgres.scan_window`) and the
    current counters are left in the window for the next run; without one,
    the counters since the statistics' reset, which are no hint by themselves.
    """
    window = options.get('scan_window')
    if window is not None:
        current = read_counters(runner, window['now'])
        window['after'][options['database']] = current
        return window_hints(window['before'].get(options['database'], {}), current, window['now'], options)
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
    """Tables with autovacuum switched off, and tables with their own autovacuum settings, TOAST tables' included."""
    rows = runner.rows('SELECT n.nspname, c.relname, c.reloptions, t.reloptions FROM pg_class c '
                       'JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class t ON t.oid = c.reltoastrelid '
                       'WHERE (c.reloptions IS NOT NULL OR t.reloptions IS NOT NULL) AND ' + USER_TABLES + ' ORDER BY 1, 2')
    found = []
    for schema, table, reloptions, toast_reloptions in rows:
        settings = dict((k, v) for k, v in parse_reloptions(reloptions).items() if k.startswith('autovacuum_'))
        toast = dict((k, v) for k, v in parse_reloptions(toast_reloptions).items() if k.startswith('autovacuum_'))
        if settings or toast:
            found.append(dict(schema=schema, table=table, autovacuum_enabled=_enabled(settings), settings=settings,
                              toast_autovacuum_enabled=_enabled(toast), toast_settings=toast))
    return found


def _enabled(settings):
    return settings.get('autovacuum_enabled', 'true').lower() not in FALSE_WORDS


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
    stale_statistics=stale_statistics, duplicate_indexes=duplicate_indexes, index_bloat=index_bloat,
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

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_insight
short_description: Read-only review of a PostgreSQL cluster and its databases
version_added: 0.1.0
description:
  - Collects what the weekly and monthly database review looks at, in one task and without changing anything.
  - Cluster sections (asked once) are V(database_sizes), V(connections) (by state against C(max_connections)),
    V(long_queries) (sessions whose transaction has been open longer than O(long_query_s), with the age of the
    transaction ID and snapshot they hold), V(blocking) (blocked/blocking session pairs from
    C(pg_locks) with the lock waited for), V(autovacuum) (its settings) and V(wraparound) (transaction ID age per
    database and its distance to forced autovacuum and to the stop limit).
  - Database sections (asked in each of O(databases)) are V(largest_tables) (total, table, index and TOAST size),
    V(bloat) (dead tuples of each table and of its TOAST table, measured by C(pgstattuple_approx) when the
    extension C(pgstattuple) is installed in the database, else the statistics' estimates, RV(bloat[].source) says
    which; RV(bloat[].candidate) uses pg_vacuum's thresholds on the heap and on the TOAST table each),
    V(stale_statistics) (tables and partitioned parents never analyzed, modified since their last analyze, or whose
    row estimate is off the live rows, by O(analyze_threshold_ratio)),
    V(unused_indexes) (never scanned, unique/primary/constraint indexes excluded, with sizes and how long the
    statistics have been counting), V(duplicate_indexes) (indexes another index of the same table makes redundant,
    exact duplicates and leading-column prefixes, constraint indexes never judged redundant), V(index_bloat) (leaf
    density of the O(top_n) largest B-tree indexes from C(pgstatindex), when C(pgstattuple) is installed),
    V(seq_scans) (tables read mostly sequentially although not small, so an index is probably missing),
    V(autovacuum_disabled) (tables with autovacuum off or their own autovacuum settings, for the table or its TOAST
    table) and
    V(statements) (top queries by total time from C(pg_stat_statements); reported absent when the extension
    is not installed or not loaded, which is not an error).
  - The session is read-only (C(default_transaction_read_only)) and bounded by O(lock_timeout_ms) and
    O(statement_timeout_ms). Size functions take ACCESS SHARE locks, so a table locked by another session
    makes its section report an error in RV(errors) instead of hanging the review.
  - Usage counters (scans, dead tuples) are the cumulative statistics since their last reset; PostgreSQL 15
    publishes other sessions' counters at most once a second.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.postgres
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - The module never changes anything and always returns RV(ignore:changed=false).
options:
  databases:
    description:
      - Databases whose database sections are collected. Empty means the database of O(login_db).
      - V(all) means every database that allows connections, is not a template and that O(login_user) may connect to.
    type: list
    elements: str
    default: []
  sections:
    description:
      - Sections to collect; leave one out to switch it off.
    type: list
    elements: str
    choices: [database_sizes, connections, long_queries, blocking, autovacuum, wraparound,
              largest_tables, bloat, stale_statistics, unused_indexes, duplicate_indexes, index_bloat, seq_scans,
              autovacuum_disabled, statements]
    default: [database_sizes, connections, long_queries, blocking, autovacuum, wraparound,
              largest_tables, bloat, stale_statistics, unused_indexes, duplicate_indexes, index_bloat, seq_scans,
              autovacuum_disabled, statements]
  top_n:
    description:
      - How many entries the ranked sections (largest tables, bloat, sequential scans, statements) keep per database.
      - The bloat section lists every candidate even beyond O(top_n), so the summary's count never depends on it.
    type: int
    default: 10
  long_query_s:
    description:
      - Seconds after which a session's open transaction counts as long, measured from the transaction's start
        (C(xact_start)), so a transaction kept open by short statements or left C(idle in transaction) counts too.
    type: float
    default: 300
  analyze_threshold_ratio:
    description:
      - Rows modified since the last analyze, or the gap between the planner's row estimate (C(reltuples)) and the
        live rows, per live row, over which a table's statistics count as stale (as in pg_vacuum, which analyzes
        such tables).
    type: float
    default: 0.1
  wraparound_warn_pct:
    description:
      - Percent of C(autovacuum_freeze_max_age) from which a database's transaction ID age is a finding.
    type: float
    default: 50
  min_dead_tuples:
    description:
      - Dead tuples from which a table is marked a bloat RV(bloat[].candidate) (as in pg_vacuum).
    type: int
    default: 1000
  min_dead_ratio:
    description:
      - Dead tuples per live tuple from which a table is marked a bloat RV(bloat[].candidate) (as in pg_vacuum).
    type: float
    default: 0.2
  state_file:
    description:
      - File on the managed host where the V(seq_scans) section keeps each table's scan counters between runs
        (JSON, written atomically, mode C(0644); not written in check mode).
      - With it, V(seq_scans) lists missing-index hints from the scans of the window since the previous run, needing at
        least O(seq_scan_min_scans) sequential scans once index builds and table rewrites of the window are taken
        off, at least O(seq_scan_min_rows) rows read per scan, more sequential than index scans, over at least
        O(seq_scan_window_s). The first run only records.
      - Without it, V(seq_scans) lists the counters since the statistics' reset, which every C(CREATE INDEX) and
        dump inflates, and makes no finding of them.
    type: path
  seq_scan_window_s:
    description:
      - Seconds the window of O(state_file) must span before it gives hints.
    type: int
    default: 3600
  seq_scan_min_scans:
    description:
      - Sequential scans a table must have had in the window (index builds taken off) to be a missing-index hint.
    type: int
    default: 3
  seq_scan_min_rows:
    description:
      - Live rows a table must have for its sequential scans to count as heavy, and, with O(state_file), rows a
        sequential scan of the window must read on average.
    type: int
    default: 10000
  lock_timeout_ms:
    description:
      - Milliseconds a section may wait for a lock before it reports an error instead.
    type: int
    default: 2000
  statement_timeout_ms:
    description:
      - Milliseconds one section's query may run before it reports an error instead.
    type: int
    default: 30000
'''

EXAMPLES = r'''
- name: Weekly review of every database
  engineroom.maintenance.pg_insight:
    login_host: 127.0.0.1
    login_user: monitor
    login_password: "{{ monitor_password }}"
    databases: all
  register: insight

- name: Only who blocks whom and what runs long, right now
  engineroom.maintenance.pg_insight:
    login_db: app
    sections: [connections, long_queries, blocking]
    long_query_s: 30
'''

RETURN = r'''
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "pg_insight: 3 database(s), 1.2 GB; connections 12/100; 2 bloat candidates; 3 unused indexes (48 MB); 0 long queries; 0 blocked"
findings:
  description: The notable points of the review, one sentence each.
  returned: always
  type: list
  elements: str
  sample: ["app: 3 unused indexes take 48 MB", "app: autovacuum is off for public.audit_log"]
databases:
  description: The databases whose database sections were collected.
  returned: always
  type: list
  elements: str
  sample: [app]
sections:
  description: The sections collected.
  returned: always
  type: list
  elements: str
errors:
  description: Sections that could not be collected, with the reason (C(<database>.<section>) for database sections).
  returned: always
  type: dict
  sample: {app.largest_tables: "a table is locked by another session (waited lock_timeout_ms=2000): run the review again later"}
database_sizes:
  description: Size of each non-template database (V(null) when the role may not connect to it), largest first.
  returned: when the section is collected
  type: list
  elements: dict
  sample: [{database: app, size_bytes: 1288490188}]
connections:
  description: Client connections by state, their total, C(max_connections), C(superuser_reserved_connections) and the use in percent.
  returned: when the section is collected
  type: dict
  sample: {by_state: {active: 1, idle: 11}, total: 12, max_connections: 100, superuser_reserved: 3, used_pct: 12.0}
long_queries:
  description:
    - Sessions whose transaction has been open longer than O(long_query_s), oldest first (pid, user, database,
      state, application, duration_s (age of the transaction), query_duration_s (age of the current or last statement),
      xid_age (age of its transaction ID, V(null) before it writes), xmin_age (age of its snapshot), wait_event_type,
      wait_event, query).
  returned: when the section is collected
  type: list
  elements: dict
blocking:
  description:
    - Blocked/blocking pairs (blocked_pid, blocked_user, database, waiting_s, blocked_query, locktype, mode, relation,
      relation_oid, page, tuple, blocking_pid, blocking_user, blocking_state, blocking_query, root_blocking_pid).
    - C(relation) is C(schema.table), named in the blocked session's own database (a connection is opened there when
      it is not reviewed anyway); V(null) with only C(relation_oid) when that database cannot be reached.
    - A wait on a C(transactionid) is a wait for a row; C(relation), C(page) and C(tuple) then say which row,
      from the C(tuple) lock PostgreSQL keeps for it.
    - C(root_blocking_pid) is the session at the head of the chain (it waits for nobody); the findings name it once.
  returned: when the section is collected
  type: list
  elements: dict
autovacuum:
  description: The autovacuum settings (on/off, thresholds, scale factors, workers, freeze age), with units.
  returned: when the section is collected
  type: dict
  sample: {autovacuum: "on", autovacuum_vacuum_scale_factor: "0.2", autovacuum_vacuum_threshold: "50", autovacuum_naptime: "60s"}
wraparound:
  description: Transaction ID and multixact age per database, in percent of C(autovacuum_freeze_max_age) and of the 2^31 limit.
  returned: when the section is collected
  type: list
  elements: dict
  sample: [{database: app, xid_age: 51234, mxid_age: 0, pct_of_freeze_max_age: 0.0, pct_of_wraparound: 0.0,
            xids_to_forced_autovacuum: 199948766, xids_to_stop_limit: 2144432414, autovacuum_freeze_max_age: 200000000}]
largest_tables:
  description: Per database, the O(top_n) largest tables (database, schema, table, total_bytes, table_bytes, index_bytes, toast_bytes, estimated_rows).
  returned: when the section is collected
  type: list
  elements: dict
bloat:
  description:
    - Per database, every bloat candidate, then the tables with most dead tuples up to O(top_n) rows, most dead
      tuples (heap and TOAST) first.
    - Heap and TOAST table separately (database, schema, table, live_tuples, dead_tuples, dead_ratio, heap_bytes,
      dead_bytes, toast_live_tuples, toast_dead_tuples, toast_dead_ratio, toast_bytes, toast_dead_bytes, candidate,
      candidate_by, source, source_note, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze).
  returned: when the section is collected
  type: list
  elements: dict
  contains:
    candidate:
      description: Whether the heap or the TOAST table reaches O(min_dead_tuples) and O(min_dead_ratio), so pg_vacuum would select it.
      type: bool
    candidate_by:
      description: Which parts made it a candidate, V(heap) and/or V(toast).
      type: list
      elements: str
    source:
      description:
        - V(pgstattuple_approx) when the figures were measured (dead tuples exact, live tuples estimated for
          all-visible pages, sizes and dead bytes exact), V(statistics) for the cumulative statistics' estimates
          (sizes from C(pg_class.relpages), dead bytes V(null)).
      type: str
    source_note:
      description: Why the figures are the statistics' (extension not installed, or the measurement refused), else V(null).
      type: str
stale_statistics:
  description:
    - Per database, every table or partitioned parent whose planner statistics are stale (database, schema, table,
      partitioned, live_tuples, estimated_rows, modified_since_analyze, analyzed, reason), most live rows first.
  returned: when the section is collected
  type: list
  elements: dict
unused_indexes:
  description:
    - Per database, indexes never scanned (database, schema, table, index, size_bytes, scans, stats_since,
      stats_age_s), largest first. C(stats_since) is when the statistics were last reset (or the server started).
  returned: when the section is collected
  type: list
  elements: dict
duplicate_indexes:
  description:
    - Per database, redundant indexes (database, schema, table, index, kind, covered_by, size_bytes); C(kind) is
      V(duplicate) (same columns, operator classes, collations, expressions and predicate as C(covered_by)) or
      V(overlapping) (its columns lead those of the B-tree C(covered_by)).
  returned: when the section is collected
  type: list
  elements: dict
index_bloat:
  description:
    - Per database, whether pgstatindex could be used (available, reason) and the O(top_n) largest B-tree indexes
      (schema, table, index, size_bytes, avg_leaf_density, leaf_fragmentation, bloat_bytes below the 90 % a fresh
      B-tree holds, reason when the measurement was refused).
  returned: when the section is collected
  type: list
  elements: dict
seq_scans:
  description:
    - Per database, tables of at least O(seq_scan_min_rows) rows scanned sequentially more often than by index
      (database, schema, table, seq_scans, seq_rows_read, index_scans, live_tuples, indexes, avg_rows_per_seq_scan).
    - With O(state_file), only the missing-index hints of the window, with window_s and index_builds_discounted
      (whole-table reads by index builds and rewrites taken off); each is a finding.
  returned: when the section is collected
  type: list
  elements: dict
autovacuum_disabled:
  description:
    - Per database, tables with their own autovacuum settings on the table or its TOAST table
      (database, schema, table, autovacuum_enabled, settings, toast_autovacuum_enabled, toast_settings).
  returned: when the section is collected
  type: list
  elements: dict
statements:
  description: Per database, pg_stat_statements' state (installed, version, available, reason) and its O(top_n) queries by total time.
  returned: when the section is collected
  type: list
  elements: dict
  sample: [{database: app, installed: false, available: false, reason: extension pg_stat_statements is not installed, top: []}]
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 85.1, databases: 1, database_bytes_total: 1288490188, connections_total: 12, connections_used_pct: 12.0,
           long_queries: 0, blocked_sessions: 0, bloat_candidates: 2, stale_statistics_tables: 1, unused_indexes: 3, unused_index_bytes: 50331648,
           autovacuum_disabled_tables: 1, max_xid_age: 51234, section_errors: 0, redundant_indexes: 1,
           redundant_index_bytes: 16384}
executed_commands:
  description: Every SQL statement run.
  returned: always
  type: list
  elements: str
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare.insight import (
    CLUSTER_SECTIONS,
    DATABASE_SECTIONS,
    SECTIONS,
    name_lock_targets,
    run_section,
    session_settings,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare.insight_report import (
    findings_of,
    metrics_of,
    summary_of,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.targets import (
    connect_and_resolve,
    default_database,
    params_for,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
    StatementRunner,
    connect,
    postgres_argument_spec,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc, utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare.scan_window import (
    SCHEMA_VERSION,
    ScanStateError,
    load_state,
    save_state,
)


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        databases=dict(type='list', elements='str', default=[]),
        sections=dict(type='list', elements='str', choices=list(SECTIONS), default=list(SECTIONS)),
        top_n=dict(type='int', default=10),
        long_query_s=dict(type='float', default=300),
        wraparound_warn_pct=dict(type='float', default=50),
        analyze_threshold_ratio=dict(type='float', default=0.1),
        state_file=dict(type='path'),
        seq_scan_window_s=dict(type='int', default=3600),
        seq_scan_min_scans=dict(type='int', default=3),
        min_dead_tuples=dict(type='int', default=1000),
        min_dead_ratio=dict(type='float', default=0.2),
        seq_scan_min_rows=dict(type='int', default=10000),
        lock_timeout_ms=dict(type='int', default=2000),
        statement_timeout_ms=dict(type='int', default=30000),
    )
    return spec


def check_options(module):
    p = module.params
    if p['top_n'] < 1:
        module.fail_json(msg='top_n must be at least 1 (got %s)' % p['top_n'])
    for name in ('long_query_s', 'min_dead_tuples', 'min_dead_ratio', 'seq_scan_min_rows', 'wraparound_warn_pct',
                 'analyze_threshold_ratio', 'seq_scan_window_s', 'seq_scan_min_scans'):
        if p[name] < 0:
            module.fail_json(msg='%s must not be negative (got %s)' % (name, p[name]))
    for name in ('lock_timeout_ms', 'statement_timeout_ms'):
        if p[name] <= 0:
            module.fail_json(msg='%s must be positive (got %s): a review must never wait forever' % (name, p[name]))
    if not p['sections']:
        module.fail_json(msg='sections is empty: give at least one section (choices: %s)' % ', '.join(SECTIONS))
    if 'all' in p['databases'] and len(p['databases']) > 1:
        module.fail_json(msg='databases: give either all or a list of names, not both (got %s)' % p['databases'])


def collect_database(module, database, main_runner, options, result, errors):
    """Run the database sections in ``database``, through the first connection when it is that database."""
    wanted = [s for s in DATABASE_SECTIONS if s in module.params['sections']]
    if not wanted:
        return []
    if database == default_database(module.params):
        runner, conn = main_runner, None
    else:
        try:
            conn = connect(params_for(module.params, database))
        except PostgresError as exc:
            for section in wanted:
                errors['%s.%s' % (database, section)] = str(exc)
            return []
        runner = StatementRunner(conn)
        session_settings(runner, options['lock_timeout_ms'], options['statement_timeout_ms'])
    try:
        for section in wanted:
            data, error = run_section(runner, section, dict(options, database=database))
            if error:
                errors['%s.%s' % (database, section)] = error
                continue
            for row in data if isinstance(data, list) else [data]:
                result[section].append(dict(row, database=database))
    finally:
        if conn is not None:
            conn.close()
    return runner.executed if conn is not None else []


def open_scan_window(module):
    """The scan window of the seq_scans section (previous counters from O(state_file)), or None without one."""
    p = module.params
    if not p['state_file'] or 'seq_scans' not in p['sections']:
        return None
    try:
        state = load_state(p['state_file'])
    except ScanStateError as exc:
        module.fail_json(msg=str(exc))
    return dict(now=utc_now(), before=state['databases'], after={})


def close_scan_window(module, window):
    """Keep this run's counters (and those of databases not reviewed this time) for the next run."""
    if window is None or module.check_mode:
        return
    databases = dict(window['before'], **window['after'])
    try:
        save_state(module.params['state_file'], dict(schema_version=SCHEMA_VERSION, taken_at=iso_utc(window['now']),
                                                     databases=databases))
    except OSError as exc:
        module.warn('the scan counters could not be kept in state_file %s (%s): the next run starts a new window'
                    % (module.params['state_file'], exc.strerror or exc))


def name_blocked_relations(module, main_runner, options, rows):
    """Name the relations of lock waits in each waiter's database; returns the statements run elsewhere."""
    opened = []

    def runner_for(database):
        if database == default_database(module.params):
            return main_runner
        try:
            other = StatementRunner(connect(params_for(module.params, database)))
        except PostgresError:
            return None
        opened.append(other)
        session_settings(other, options['lock_timeout_ms'], options['statement_timeout_ms'])
        return other

    try:
        name_lock_targets(rows or [], runner_for)
    finally:
        for other in opened:
            other.conn.close()
    return [statement for other in opened for statement in other.executed]


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_options(module)
    p = module.params
    started = time.monotonic()
    options = dict((k, p[k]) for k in ('top_n', 'long_query_s', 'min_dead_tuples', 'min_dead_ratio',
                                       'seq_scan_min_rows', 'lock_timeout_ms', 'statement_timeout_ms',
                                       'analyze_threshold_ratio', 'seq_scan_window_s', 'seq_scan_min_scans'))
    sections = [s for s in SECTIONS if s in p['sections']]
    options['scan_window'] = open_scan_window(module)

    conn, runner, databases = connect_and_resolve(module)
    session_settings(runner, p['lock_timeout_ms'], p['statement_timeout_ms'])

    result = dict((s, []) for s in sections if s in DATABASE_SECTIONS)
    errors = {}
    executed = []
    try:
        for section in (s for s in sections if s in CLUSTER_SECTIONS):
            data, error = run_section(runner, section, options)
            if error:
                errors[section] = error
            else:
                result[section] = data
        for database in databases:
            executed.extend(collect_database(module, database, runner, options, result, errors))
        executed.extend(name_blocked_relations(module, runner, options, result.get('blocking')))
    finally:
        conn.close()

    close_scan_window(module, options['scan_window'])
    for key, error in sorted(errors.items()):
        module.warn('pg_insight section %s not collected: %s' % (key, error))
    metrics = metrics_of(result, databases, errors, elapsed_ms(started))
    result.update(
        changed=False,
        summary=summary_of(result, databases, errors, metrics),
        findings=findings_of(result, p['wraparound_warn_pct']),
        databases=databases,
        sections=sections,
        errors=errors,
        metrics=metrics,
        executed_commands=runner.executed + executed,
    )
    module.exit_json(**result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_vacuum
short_description: VACUUM and ANALYZE exactly the PostgreSQL tables that need it
version_added: 0.1.0
description:
  - Reads the cumulative statistics of each database (dead tuples, live tuples, rows modified
    since the last analyze) and selects the tables that are bloated or have stale statistics;
    only those are vacuumed or analyzed, largest first.
  - A table is B(bloated) when its dead tuples reach O(min_dead_tuples) B(and) its dead ratio
    (dead / live tuples) reaches O(min_dead_ratio), counted for its heap and for its TOAST table
    (the out-of-line storage of large values) each; either one selects it. It is then worked on with O(mode),
    which vacuums the TOAST table with the heap.
  - A B(partitioned table) is never vacuumed itself (each partition is selected on its own figures), but it is
    analyzed when it never was or when its row estimate is off its partitions' live rows by more than
    O(analyze_threshold_ratio), since PostgreSQL's autovacuum never analyzes partitioned parents. Naming the parent in
    O(tables) selects its partitions too.
  - After VACUUM, dead tuples PostgreSQL still counts were not yet removable. When some remain and the cleanup
    horizon is held (a session of that database with an old snapshot or transaction, a prepared transaction, a
    replication slot's C(xmin)), the table is reported V(held_back) with the oldest holder in
    RV(tables[].held_by), not V(done); a run that removes nothing returns RV(ignore:changed=false).
  - A table whose statistics are B(stale) (never analyzed, or rows modified since the last analyze
    over O(analyze_threshold_ratio) of its live rows) is selected for C(ANALYZE) only, in every
    O(mode) except V(vacuum).
  - Every statement runs under O(lock_timeout_ms). A table whose lock cannot be had in time is
    skipped with reason C(lock_timeout) and the run goes on. After O(max_duration_s) no new table
    is started; the rest is reported C(deferred).
  - Statistics are read in a connection the module opens itself when it starts. PostgreSQL 15
    publishes other sessions' counters at most once a second (or when they end), so writes that
    finished less than a second ago may not be counted yet. VACUUM and ANALYZE publish their own
    results at once, so a second run sees what the first one did.
  - Table patterns are matched in Python against the catalog, never sent to the server; names reach
    SQL only as quoted identifiers.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.postgres
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Returns the same plan with RV(tables[].status=planned) and the tables' current figures; nothing is vacuumed or analyzed.
  diff_mode:
    support: full
    details:
      - The diff shows the dead tuples of each table worked on, before and after.
  idempotent:
    support: full
    details:
      - A second run with the same thresholds finds nothing above them and returns RV(ignore:changed=false),
        provided nothing else wrote to the tables in between.
options:
  databases:
    description:
      - Databases to work on. Empty means the database of O(login_db).
      - V(all) means every database that allows connections, is not a template and that O(login_user) may connect to.
      - A database that does not exist fails the task before anything runs.
    type: list
    elements: str
    default: []
  schemas:
    description:
      - Only tables in these schemas. Empty means every schema except the system ones.
    type: list
    elements: str
    default: []
  tables:
    description:
      - Only tables matching one of these shell-style patterns (C(*), C(?), C([abc])).
      - A pattern with a dot matches C(schema.table) (V(public.audit_*)), one without a dot the table
        name in any schema (V(audit_*)). Matching is case-sensitive.
      - A partition is also matched by the name of its partitioned parent, so V(measurements) selects the parent
        and its partitions.
      - A pattern that matches no table is reported in RV(unmatched_patterns) with a warning; it is not an error.
      - Empty means every table.
    type: list
    elements: str
    default: []
  exclude_tables:
    description:
      - Leave out tables matching one of these patterns (same rules as O(tables)); wins over O(tables).
    type: list
    elements: str
    default: []
  min_dead_tuples:
    description:
      - Dead tuples a table must have at least to count as bloated.
    type: int
    default: 1000
  min_dead_ratio:
    description:
      - Dead tuples per live tuple a table must have at least to count as bloated (V(0.2) = 20 %).
    type: float
    default: 0.2
  analyze_threshold_ratio:
    description:
      - Rows modified since the last analyze, per live row, over which a table's statistics count as stale.
      - A table never analyzed is always stale.
    type: float
    default: 0.1
  force:
    description:
      - Select every matched table for O(mode), whatever its statistics say.
    type: bool
    default: false
  mode:
    description:
      - What to do with a selected table.
      - V(analyze) runs C(ANALYZE) (and selects by stale statistics only).
      - V(vacuum) runs C(VACUUM) (and ignores stale statistics).
      - V(vacuum_analyze) runs C(VACUUM (ANALYZE)).
      - V(full) runs C(VACUUM (FULL, ANALYZE)), which rewrites the table under an ACCESS EXCLUSIVE lock
        and returns space to the operating system; refused unless O(allow_full=true).
      - V(freeze) runs C(VACUUM (FREEZE, ANALYZE)).
    type: str
    choices: [analyze, vacuum, vacuum_analyze, full, freeze]
    default: vacuum_analyze
  allow_full:
    description:
      - Allow O(mode=full). FULL blocks every reader and writer of the table while it runs.
    type: bool
    default: false
  lock_timeout_ms:
    description:
      - Milliseconds each statement may wait for a table lock before the table is skipped with reason C(lock_timeout).
      - Must be positive (PostgreSQL's V(0) would mean waiting forever).
    type: int
    default: 5000
  statement_timeout_ms:
    description:
      - Milliseconds one table's statement may run before it is cancelled (the table is skipped with reason
        C(statement_timeout)). V(0) means no limit.
    type: int
    default: 0
  max_duration_s:
    description:
      - Seconds after the module's start after which no new table is started; the tables not started are
        reported C(deferred). A table already running finishes (bound it with O(statement_timeout_ms)).
      - Unset means no budget.
    type: int
  terminate_horizon_holders_older_than:
    description:
      - Opt-in. Before the work, terminate (C(pg_terminate_backend)) the sessions of each database with selected
        tables whose open transaction holds the cleanup horizon and started more than this many seconds ago, so
        VACUUM can remove the dead tuples they hold back. Listed in RV(terminated_holders).
      - Never a prepared transaction, a replication slot or pg_vacuum's own sessions. The login role needs
        C(pg_signal_backend) (or superuser) to end other roles' sessions; a refusal is a warning.
      - In check mode the sessions are only listed in RV(terminated_holders), with C(terminated=null).
      - Unset (the default) never terminates anything.
    type: int
  jobs:
    description:
      - Connections working in parallel per database, from 1 to 8. Tables are handed out largest first.
      - A worker whose connection is refused (C(max_connections), the role's C(CONNECTION LIMIT)) stops and leaves
        its tables to the workers that connected, with a warning; only when none connects are the tables C(failed).
    type: int
    default: 1
'''

EXAMPLES = r'''
- name: Vacuum what is bloated and analyze what is stale, in every database, within 20 minutes
  engineroom.maintenance.pg_vacuum:
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ postgres_password }}"
    databases: all
    max_duration_s: 1200
    jobs: 2
  register: vacuum

- name: Only the audit tables of app, with lower thresholds, never waiting more than 2 s for a lock
  engineroom.maintenance.pg_vacuum:
    login_db: app
    tables: ["public.audit_*"]
    exclude_tables: [audit_archive]
    min_dead_tuples: 500
    min_dead_ratio: 0.1
    lock_timeout_ms: 2000

- name: Return space to the filesystem for one table (blocks it while running)
  engineroom.maintenance.pg_vacuum:
    login_db: app
    tables: [public.notifications]
    mode: full
    allow_full: true
'''

RETURN = r'''
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "pg_vacuum: 15 of 300 tables done in 1 database(s), 180,000 dead tuples removed, 0 bytes reclaimed in 0.6 s"
tables:
  description: One entry per selected table, largest first within each database.
  returned: always
  type: list
  elements: dict
  contains:
    database:
      description: Database of the table.
      type: str
    schema:
      description: Schema of the table.
      type: str
    table:
      description: Name of the table.
      type: str
    action:
      description: V(analyze), V(vacuum), V(vacuum_analyze), V(full) or V(freeze).
      type: str
    status:
      description:
        - V(done), V(held_back) (VACUUM ran but dead tuples stay because the cleanup horizon is held, see
          RV(tables[].held_by)), V(skipped) (see RV(tables[].reason)), V(deferred) (budget spent before its turn),
          V(failed) (an unexpected error, in RV(tables[].reason)), or V(planned) in check mode.
      type: str
    reason:
      description:
        - Why the table was selected (thresholds it crossed, stale statistics, C(forced)), or why it was
          not done (C(lock_timeout), C(statement_timeout), C(insufficient_privilege), the error).
      type: str
    dead_tuples_before:
      description: Dead tuples when the table's turn came (from the plan if it never came).
      type: int
    dead_tuples_after:
      description: Dead tuples after the action (those not yet removable); V(null) when it did not run.
      type: int
    toast_dead_tuples_before:
      description: Dead tuples of the table's TOAST table when its turn came (V(0) without a TOAST table).
      type: int
    toast_dead_tuples_after:
      description: Dead tuples of the TOAST table after the action; V(null) when it did not run.
      type: int
    held_by:
      description:
        - With RV(tables[].status=held_back), the oldest holder of the cleanup horizon; V(null) otherwise.
        - C(kind) is V(session) (with C(pid), C(user), C(application), C(state), C(age_s) of its transaction,
          C(query)), V(prepared_transaction) (C(name) is its GID) or V(replication_slot) (C(name) is the slot);
          C(xid_age) is the age of the transaction ID it holds.
      type: dict
    live_tuples:
      description: Live tuples, after the action when it ran.
      type: int
    size_bytes_before:
      description: Total size (table, indexes, TOAST) when the table's turn came; V(null) when it could not be read.
      type: int
    size_bytes_after:
      description: Total size after the action; V(null) when it did not run.
      type: int
    duration_ms:
      description: Milliseconds spent on the table, lock waits included.
      type: float
  sample:
    - {database: app, schema: public, table: audit_log, action: vacuum_analyze, status: done,
       reason: "dead tuples 12000 >= 1000, dead ratio 1.50 >= 0.2", dead_tuples_before: 12000,
       dead_tuples_after: 0, live_tuples: 8000, size_bytes_before: 2490368, size_bytes_after: 2490368,
       duration_ms: 41.3}
databases:
  description: The databases worked on.
  returned: always
  type: list
  elements: str
  sample: [app]
unmatched_patterns:
  description: Patterns of O(tables) that matched no table in any of the databases.
  returned: always
  type: list
  elements: str
  sample: ["public.audit_*"]
tables_processed:
  description: Tables whose action ran (RV(tables[].status=done)).
  returned: always
  type: int
dead_tuples_removed:
  description: Dead tuples removed by VACUUM over all tables done or held back, heap and TOAST together (ANALYZE removes none).
  returned: always
  type: int
toast_dead_tuples_removed:
  description: How many of RV(dead_tuples_removed) were TOAST tuples.
  returned: always
  type: int
terminated_holders:
  description:
    - Sessions ended by O(terminate_horizon_holders_older_than) (as in RV(horizon_holders), with C(terminated)
      V(true), V(false) when PostgreSQL refused, V(null) in check mode).
  returned: always
  type: list
  elements: dict
horizon_holders:
  description: The distinct holders of the cleanup horizon named in RV(tables[].held_by), with their database.
  returned: always
  type: list
  elements: dict
  sample: [{database: app, kind: session, pid: 4242, name: null, user: alice, application: psql,
            state: idle in transaction, age_s: 312.0, xid_age: 1204, query: "UPDATE accounts SET ..."}]
bytes_reclaimed:
  description: Bytes by which the tables done shrank (mostly from V(full); plain VACUUM only truncates empty trailing pages).
  returned: always
  type: int
duration_ms:
  description: Milliseconds the module took, connection and selection included.
  returned: always
  type: float
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 612.4, tables_considered: 300, tables_selected: 15, tables_processed: 15, tables_skipped: 0,
           tables_deferred: 0, tables_failed: 0, tables_held_back: 0, dead_tuples_removed: 180000,
           toast_dead_tuples_removed: 0, bytes_reclaimed: 0, sessions_terminated: 0}
executed_commands:
  description: Every SQL statement run, in the order each connection ran them.
  returned: always
  type: list
  elements: str
  sample: ['VACUUM (ANALYZE) "public"."audit_log"']
'''

import time

from ansible.module_utils.basic import AnsibleModule

try:
    import psycopg2
except ImportError:  # connect_and_resolve reports the missing library first
    pass

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.table_patterns import select_tables
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
from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare.horizon import (
    describe_holder,
    terminate_old_holders,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare.vacuum import (
    MAX_JOBS,
    MODES,
    Budget,
    catalog_rows,
    count_by,
    plan,
    public_entry,
    run_database,
    totals,
)


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        databases=dict(type='list', elements='str', default=[]),
        schemas=dict(type='list', elements='str', default=[]),
        tables=dict(type='list', elements='str', default=[]),
        exclude_tables=dict(type='list', elements='str', default=[]),
        min_dead_tuples=dict(type='int', default=1000),
        min_dead_ratio=dict(type='float', default=0.2),
        analyze_threshold_ratio=dict(type='float', default=0.1),
        force=dict(type='bool', default=False),
        mode=dict(type='str', default='vacuum_analyze', choices=list(MODES)),
        allow_full=dict(type='bool', default=False),
        lock_timeout_ms=dict(type='int', default=5000),
        statement_timeout_ms=dict(type='int', default=0),
        max_duration_s=dict(type='int'),
        jobs=dict(type='int', default=1),
        terminate_horizon_holders_older_than=dict(type='int'),
    )
    return spec


def check_options(module):
    """Refuse what the argument spec cannot express, before any connection is opened."""
    p = module.params
    if p['mode'] == 'full' and not p['allow_full']:
        module.fail_json(msg='mode=full rewrites each table under an ACCESS EXCLUSIVE lock (no reads or writes '
                             'while it runs): set allow_full: true to confirm, or use mode vacuum_analyze')
    for name in ('min_dead_tuples', 'min_dead_ratio', 'analyze_threshold_ratio', 'statement_timeout_ms'):
        if p[name] < 0:
            module.fail_json(msg='%s must not be negative (got %s): give 0 or more' % (name, p[name]))
    if p['lock_timeout_ms'] <= 0:
        module.fail_json(msg='lock_timeout_ms must be positive (got %s): 0 would wait for a lock forever'
                             % p['lock_timeout_ms'])
    if p['max_duration_s'] is not None and p['max_duration_s'] <= 0:
        module.fail_json(msg='max_duration_s must be a positive number of seconds (got %s), or unset for no budget'
                             % p['max_duration_s'])
    if p['terminate_horizon_holders_older_than'] is not None and p['terminate_horizon_holders_older_than'] < 1:
        module.fail_json(msg='terminate_horizon_holders_older_than must be at least 1 second (got %s), or unset to '
                             'never terminate a session' % p['terminate_horizon_holders_older_than'])
    if not 1 <= p['jobs'] <= MAX_JOBS:
        module.fail_json(msg='jobs must be between 1 and %d (got %s): each job is one more connection to the server'
                             % (MAX_JOBS, p['jobs']))
    if 'all' in p['databases'] and len(p['databases']) > 1:
        module.fail_json(msg='databases: give either all or a list of names, not both (got %s)' % p['databases'])


def make_plan(module, databases, runner):
    """Read each database's catalog in a fresh connection and select its tables.

    ``runner`` is the connection the module opened first; its database's
    catalog is read through it rather than through one more connection.
    Returns (entries, tables considered, patterns of ``tables`` that matched
    nothing anywhere, statements).
    """
    p = module.params
    thresholds = dict((k, p[k]) for k in ('min_dead_tuples', 'min_dead_ratio', 'analyze_threshold_ratio'))
    entries, considered, executed = [], 0, []
    unmatched = set(p['tables'])
    for database in databases:
        try:
            if database == default_database(p):
                rows = catalog_rows(runner)
            else:
                other = StatementRunner(connect(params_for(p, database)))
                try:
                    rows = catalog_rows(other)
                finally:
                    other.conn.close()
                    executed.extend(other.executed)
        except PostgresError as exc:
            module.fail_json(msg=str(exc), executed_commands=runner.executed + executed)
        selected, missing = select_tables(rows, p['schemas'], p['tables'], p['exclude_tables'])
        unmatched &= set(missing)
        considered += len(selected)
        entries.extend(plan(database, selected, p['mode'], thresholds, p['force']))
    return entries, considered, [t for t in p['tables'] if t in unmatched], executed


def summarize(entries, figures, databases, considered, seconds, check_mode):
    statuses = count_by(entries, 'status')
    if check_mode:
        head = 'pg_vacuum (check mode): would work on %d of %d tables in %d database(s)' % (
            len(entries), considered, len(databases))
    else:
        head = 'pg_vacuum: %d of %d tables done in %d database(s), %s dead tuples removed, %s bytes reclaimed' % (
            figures['tables_processed'], considered, len(databases), '{:,}'.format(figures['dead_tuples_removed']),
            '{:,}'.format(figures['bytes_reclaimed']))
    tail = []
    for status in ('held_back', 'skipped', 'deferred', 'failed'):
        if statuses.get(status):
            reasons = count_by([e for e in entries if e['status'] == status], 'reason')
            detail = ', '.join('%s: %d' % (r, n) for r, n in sorted(reasons.items())) if status in ('skipped', 'failed') else ''
            tail.append('%d %s%s' % (statuses[status], status, ' (%s)' % detail if detail else ''))
    return '%s in %.1f s%s' % (head, seconds, '; ' + '; '.join(tail) if tail else '')


def terminate_holders(module, databases, entries, executed):
    """With O(terminate_horizon_holders_older_than), end the old sessions holding the horizon where tables wait."""
    p = module.params
    if p['terminate_horizon_holders_older_than'] is None:
        return []
    ended = []
    for database in [d for d in databases if any(e['database'] == d for e in entries)]:
        try:
            runner = StatementRunner(connect(params_for(p, database)))
        except PostgresError as exc:
            module.warn('database %s: horizon holders not checked: %s' % (database, exc))
            continue
        try:
            for holder in terminate_old_holders(runner, p['terminate_horizon_holders_older_than'], module.check_mode):
                ended.append(dict(holder, database=database))
                if holder['terminated'] is False:
                    module.warn('database %s: %s could not be terminated (the login role needs pg_signal_backend)'
                                % (database, describe_holder(holder)))
        except psycopg2.Error as exc:
            module.warn('database %s: horizon holders not terminated: %s' % (database, str(exc).strip()))
        finally:
            runner.conn.close()
            executed.extend(runner.executed)
    return ended


def diff_of(entries):
    """Dead tuples (heap and TOAST) of each table vacuumed, before and after."""
    worked = [e for e in entries if e['status'] in ('done', 'held_back', 'planned') and e['action'] != 'analyze']
    name = '%s.%s.%s'
    return dict(
        before=dict((name % (e['database'], e['schema'], e['table']),
                     (e['dead_tuples_before'] or 0) + (e['toast_dead_tuples_before'] or 0)) for e in worked),
        after=dict((name % (e['database'], e['schema'], e['table']),
                    (e['dead_tuples_after'] or 0) + (e['toast_dead_tuples_after'] or 0)
                    if e['status'] != 'planned' else 0) for e in worked),
    )


def horizon_report(module, entries):
    """The distinct holders of the held-back tables, each warned about once."""
    holders = {}
    for entry in entries:
        holder = entry['held_by']
        key = holder and (entry['database'], holder['kind'], holder['pid'], holder['name'])
        if holder and key not in holders:
            holders[key] = dict(holder, database=entry['database'])
            module.warn('database %s: VACUUM could not remove dead tuples of %s.%s because the cleanup horizon is '
                        'held by %s' % (entry['database'], entry['schema'], entry['table'], describe_holder(holder)))
    return list(holders.values())


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_options(module)
    p = module.params
    started = time.monotonic()

    conn, runner, databases = connect_and_resolve(module)
    try:
        entries, considered, unmatched, executed = make_plan(module, databases, runner)
    finally:
        conn.close()
    executed = runner.executed + executed
    for pattern in unmatched:
        module.warn('tables pattern %r matched no table in %s' % (pattern, ', '.join(databases)))

    terminated = terminate_holders(module, databases, entries, executed)
    budget = Budget(started, p['max_duration_s'])
    options = dict(jobs=p['jobs'], lock_timeout_ms=p['lock_timeout_ms'], statement_timeout_ms=p['statement_timeout_ms'])
    for database in databases:
        mine = [e for e in entries if e['database'] == database]
        if mine:
            statements, refused = run_database(params_for(p, database), mine, options, budget, module.check_mode)
            executed.extend(statements)
            for message in refused:
                module.warn('database %s: a worker connection could not be opened, the other worker(s) did its '
                            'tables (lower jobs to avoid this): %s' % (database, message))

    figures = totals(entries)
    duration = elapsed_ms(started)
    statuses = count_by(entries, 'status')
    holders = horizon_report(module, entries)
    result = dict(
        changed=bool(statuses.get('planned')) if module.check_mode else bool(
            figures['tables_processed'] or figures['dead_tuples_removed']),
        summary=summarize(entries, figures, databases, considered, duration / 1000.0, module.check_mode),
        tables=[public_entry(e) for e in entries],
        databases=databases,
        unmatched_patterns=unmatched,
        horizon_holders=holders,
        terminated_holders=terminated,
        duration_ms=duration,
        metrics=dict(duration_ms=duration, tables_considered=considered, tables_selected=len(entries),
                     tables_skipped=statuses.get('skipped', 0), tables_deferred=statuses.get('deferred', 0),
                     tables_failed=statuses.get('failed', 0), tables_held_back=statuses.get('held_back', 0),
                     sessions_terminated=sum(1 for h in terminated if h['terminated']), **figures),
        executed_commands=executed,
        **figures
    )
    if module._diff:
        result['diff'] = diff_of(entries)
    if statuses.get('failed'):
        module.fail_json(msg=result['summary'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

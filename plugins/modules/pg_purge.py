#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_purge
short_description: Delete rows older than a retention period from a PostgreSQL table, in batches, after a verified snapshot
version_added: 0.1.0
description:
  - Deletes the rows of O(table) whose O(timestamp_column) is older than O(older_than_days) days
    (and that match every O(where) condition), oldest first, in batches of O(batch_size) rows.
  - Each batch is one C(DELETE) statement in its own transaction, so locks stay short and a stop
    (O(max_rows), O(max_duration_s), a lock wait over O(lock_timeout_ms), an error) loses nothing that
    was committed and leaves no batch half done.
  - Refuses to delete unless a verified snapshot of the database, verified less than
    O(require_snapshot_within_h) hours ago, exists (a snapshot manifest in O(snapshot_dest), or the one
    given as O(snapshot_manifest)) and its artifact lies beside the manifest with the recorded size.
    When no row is old enough there is nothing to protect and no snapshot is needed.
  - The table and columns are looked up in the catalog and reach SQL only as quoted identifiers;
    O(where) operators come from a fixed list and values are passed as parameters, never as SQL text.
  - The cut-off is computed once, in UTC, when the module starts. For a C(date) column it is the day
    O(older_than_days) days ago, and rows of that day are kept.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.postgres
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Counts exactly the rows that would be deleted (RV(would_delete)) and their oldest and newest
        timestamps; deletes nothing. The snapshot requirement is checked as in a real run.
  diff_mode:
    support: full
    details:
      - The diff shows the number of rows older than the cut-off before and after.
  idempotent:
    support: full
    details:
      - A second run with the same options deletes nothing (unless time moved rows past the cut-off).
options:
  table:
    description:
      - The table to purge, as C(schema.table), or C(table) for the V(public) schema. Names are exact (case-sensitive).
      - Partitioned tables are refused; purge their partitions, or drop old partitions.
    type: str
    required: true
  timestamp_column:
    description:
      - Column of type C(timestamp), C(timestamptz) or C(date) that dates each row. Rows where it is NULL are never deleted.
    type: str
    required: true
  older_than_days:
    description:
      - Delete rows older than this many days. At least V(1).
    type: int
    required: true
  where:
    description:
      - Extra conditions, all of which a row must match too. Never raw SQL.
    type: list
    elements: dict
    default: []
    suboptions:
      column:
        description: Column of O(table).
        type: str
        required: true
      op:
        description: Comparison operator.
        type: str
        default: '='
        choices: ['=', '!=', '<', '<=', '>', '>=', 'in', 'not in', 'is null', 'is not null']
      value:
        description:
          - Value to compare with; a non-empty list for V(in) and V(not in); none for V(is null) and V(is not null).
          - Passed as text; PostgreSQL converts it to the column's type.
        type: raw
  batch_size:
    description:
      - Rows per batch (one transaction each), from 1 to 1000000.
    type: int
    default: 5000
  max_rows:
    description:
      - Delete at most this many rows in this run; the rest is reported in RV(remaining). Unset means no limit.
    type: int
  max_duration_s:
    description:
      - Start no new batch after this many seconds; the rest is reported in RV(remaining). Unset means no limit.
    type: int
  lock_timeout_ms:
    description:
      - Milliseconds a batch may wait for row or table locks. A batch that waits longer is rolled back
        and the run stops (with a warning), keeping the batches already committed.
    type: int
    default: 5000
  require_snapshot_within_h:
    description:
      - Hours within which a verified snapshot of the database must have been verified.
      - V(0) switches the snapshot requirement off (only for data you can afford to lose).
    type: int
    default: 24
  snapshot_dest:
    description:
      - Directory of the snapshots (the snapshot module's O(snapshot_dest)); the newest verified manifest
        of this database counts.
    type: path
  snapshot_manifest:
    description:
      - Path of one snapshot manifest (C(<artifact>.manifest.json)) to use instead of searching O(snapshot_dest).
    type: path
'''

EXAMPLES = r'''
- name: Delete audit logs older than a year, after the nightly snapshot
  engineroom.maintenance.pg_purge:
    login_db: app
    table: public.audit_log
    timestamp_column: created_at
    older_than_days: 365
    snapshot_dest: /var/backups/engineroom

- name: Delete read notifications older than 180 days, at most 200k rows in 10 minutes
  engineroom.maintenance.pg_purge:
    login_db: app
    table: notifications
    timestamp_column: created_at
    older_than_days: 180
    where:
      - {column: status, op: in, value: [read, dismissed]}
      - {column: pinned, value: false}
    max_rows: 200000
    max_duration_s: 600
    snapshot_manifest: /var/backups/engineroom/app-database-20261123T020000Z.dump.zst.manifest.json
'''

RETURN = r'''
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "pg_purge public.audit_log: 12,000 rows older than 2025-11-23T02:00:00Z deleted in 3 batches (0 remaining) in 0.4 s"
table:
  description: The table purged, as C(schema.table).
  returned: always
  type: str
  sample: public.audit_log
cutoff:
  description: Rows with RV(table)'s timestamp before this were purged (UTC, or a date for a date column).
  returned: always
  type: str
  sample: "2025-11-23T02:00:00Z"
matched_rows:
  description: Rows older than the cut-off (and matching O(where)) when the module started.
  returned: always
  type: int
  sample: 12000
oldest:
  description: Oldest timestamp among the matched rows; V(null) when none matched.
  returned: always
  type: str
  sample: "2024-01-02T08:00:00Z"
newest:
  description: Newest timestamp among the matched rows; V(null) when none matched.
  returned: always
  type: str
  sample: "2025-11-22T23:59:00Z"
would_delete:
  description: Rows a real run would delete (the matched rows, capped by O(max_rows)).
  returned: always
  type: int
  sample: 12000
rows_deleted:
  description: Rows deleted (V(0) in check mode).
  returned: always
  type: int
  sample: 12000
batches:
  description: Batches committed.
  returned: always
  type: int
  sample: 3
remaining:
  description: Rows still older than the cut-off after the run (when a limit or a lock stopped it).
  returned: always
  type: int
  sample: 0
stopped_by:
  description: V(max_rows), V(max_duration_s) or V(lock_timeout) when that stopped the run early; V(null) otherwise.
  returned: always
  type: str
  sample: null
snapshot:
  description: The snapshot that allowed the deletion (manifest, artifact, created_at, verified_at, age_h);
    V(null) when none was needed (nothing to delete, or O(require_snapshot_within_h=0)).
  returned: always
  type: dict
  sample: {manifest: /var/backups/engineroom/app-database-20261123T020000Z.dump.zst.manifest.json,
           artifact: /var/backups/engineroom/app-database-20261123T020000Z.dump.zst,
           created_at: "2026-11-23T02:00:00Z", verified_at: "2026-11-23T02:00:41Z", age_h: 6.2}
duration_ms:
  description: Milliseconds the module took.
  returned: always
  type: float
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 412.0, rows_matched: 12000, rows_deleted: 12000, batches: 3, rows_remaining: 0}
executed_commands:
  description: Every SQL statement run (one line per batch statement).
  returned: always
  type: list
  elements: str
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc, utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    StatementRunner,
    connect_or_fail,
    postgres_argument_spec,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare.purge import (
    OPERATORS,
    PurgeError,
    check_where,
    condition,
    count_statement,
    cutoff_for,
    delete_statement,
    moment_text,
    resolve,
    snapshot_evidence,
    split_table,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms

try:
    import psycopg2
    import psycopg2.errors
except ImportError:  # connect_or_fail reports the missing library
    pass

MAX_BATCH = 1000000


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        table=dict(type='str', required=True),
        timestamp_column=dict(type='str', required=True),
        older_than_days=dict(type='int', required=True),
        where=dict(type='list', elements='dict', default=[], options=dict(
            column=dict(type='str', required=True),
            op=dict(type='str', default='=', choices=list(OPERATORS)),
            value=dict(type='raw'),
        )),
        batch_size=dict(type='int', default=5000),
        max_rows=dict(type='int'),
        max_duration_s=dict(type='int'),
        lock_timeout_ms=dict(type='int', default=5000),
        require_snapshot_within_h=dict(type='int', default=24),
        snapshot_dest=dict(type='path'),
        snapshot_manifest=dict(type='path'),
    )
    return spec


def check_options(module):
    p = module.params
    if p['older_than_days'] < 1:
        module.fail_json(msg='older_than_days must be at least 1 (got %s): 0 would purge rows written today'
                             % p['older_than_days'])
    if not 1 <= p['batch_size'] <= MAX_BATCH:
        module.fail_json(msg='batch_size must be between 1 and %d (got %s)' % (MAX_BATCH, p['batch_size']))
    for name in ('max_rows', 'max_duration_s'):
        if p[name] is not None and p[name] < 1:
            module.fail_json(msg='%s must be at least 1 (got %s), or unset for no limit' % (name, p[name]))
    if p['lock_timeout_ms'] <= 0:
        module.fail_json(msg='lock_timeout_ms must be positive (got %s): 0 would wait for locks forever'
                             % p['lock_timeout_ms'])
    if p['require_snapshot_within_h'] < 0:
        module.fail_json(msg='require_snapshot_within_h must not be negative (got %s); 0 switches the requirement off'
                             % p['require_snapshot_within_h'])
    if p['require_snapshot_within_h'] and not (p['snapshot_dest'] or p['snapshot_manifest']):
        module.fail_json(msg='pg_purge needs a verified snapshot of the database before deleting: give snapshot_dest '
                             '(or snapshot_manifest), or set require_snapshot_within_h: 0 for data you can lose')
    if p['snapshot_dest'] and p['snapshot_manifest']:
        module.fail_json(msg='give snapshot_dest or snapshot_manifest, not both')
    try:
        check_where(p['where'])
    except PurgeError as exc:
        module.fail_json(msg=str(exc))


def delete_batches(runner, statement, params, plan, progress, started, max_duration_s):
    """Delete batch by batch until nothing is left or a limit says stop; return what stopped it (or None).

    ``progress`` (rows_deleted, batches) is updated after every committed
    batch, so a failure part-way still reports exactly what was committed.
    """
    limit = plan['would_delete']
    while progress['rows_deleted'] < limit:
        if max_duration_s and time.monotonic() - started >= max_duration_s:
            return 'max_duration_s'
        try:
            count = runner.run(statement, dict(params, limit=min(plan['batch_size'], limit - progress['rows_deleted'])))
        except psycopg2.errors.LockNotAvailable:
            return 'lock_timeout'
        if count <= 0:
            break
        progress['rows_deleted'] += count
        progress['batches'] += 1
    return 'max_rows' if plan['max_rows'] and progress['rows_deleted'] < plan['matched_rows'] else None


def survey(runner, p, now):
    """What the options match, read in the session that will delete: the plan the deletion follows."""
    runner.rows("SELECT set_config('TimeZone', 'UTC', false), set_config('lock_timeout', %s, false)",
                ('%dms' % p['lock_timeout_ms'],))
    typname = resolve(runner, p['table'], p['timestamp_column'], p['where'])
    database = runner.scalar('SELECT current_database()')
    cutoff = cutoff_for(typname, p['older_than_days'], now)
    cond, params = condition(p['timestamp_column'], p['where'], cutoff)
    matched, oldest, newest = runner.rows(count_statement(p['table'], p['timestamp_column'], cond), params)[0]
    return dict(database=database, cond=cond, params=params, matched=matched,
                cutoff=moment_text(cutoff) if typname == 'date' else iso_utc(cutoff),
                oldest=moment_text(oldest), newest=moment_text(newest),
                would_delete=min(matched, p['max_rows']) if p['max_rows'] else matched)


def purge(module, runner, plan, result, started, fail):
    """Delete in batches and record the outcome in ``result``; ``fail`` reports a failure part-way."""
    p = module.params
    qualified = result['table']
    batches = dict(would_delete=plan['would_delete'], matched_rows=plan['matched'], batch_size=p['batch_size'],
                   max_rows=p['max_rows'])
    progress = dict(rows_deleted=0, batches=0)
    try:
        stopped_by = delete_batches(runner, delete_statement(p['table'], p['timestamp_column'], plan['cond']),
                                    plan['params'], batches, progress, started, p['max_duration_s'])
        remaining = runner.rows(count_statement(p['table'], p['timestamp_column'], plan['cond']), plan['params'])[0][0]
    except psycopg2.Error as exc:
        # The failed batch rolled back; the batches before it are committed and counted.
        fail('deleting from %s failed after %d rows in %d batches: %s (the failed batch was rolled back)'
             % (qualified, progress['rows_deleted'], progress['batches'], str(exc).strip().splitlines()[0]),
             changed=progress['rows_deleted'] > 0, remaining=plan['matched'] - progress['rows_deleted'], **progress)
    result.update(changed=progress['rows_deleted'] > 0, stopped_by=stopped_by, remaining=remaining, **progress)
    if stopped_by == 'lock_timeout':
        module.warn('pg_purge %s stopped after %d rows: a batch waited more than lock_timeout_ms=%d for locks; '
                    '%d rows remain for the next run' % (qualified, progress['rows_deleted'], p['lock_timeout_ms'],
                                                         remaining))


def finish(module, result, matched, started, executed):
    """Summary, metrics and diff of a run; exits the module."""
    qualified = result['table']
    duration = elapsed_ms(started)
    if module.check_mode:
        line = 'pg_purge %s (check mode): would delete %s of %s rows older than %s' % (
            qualified, '{:,}'.format(result['would_delete']), '{:,}'.format(matched), result['cutoff'])
    else:
        line = 'pg_purge %s: %s rows older than %s deleted in %d batches (%s remaining%s)' % (
            qualified, '{:,}'.format(result['rows_deleted']), result['cutoff'], result['batches'],
            '{:,}'.format(result['remaining']), ', stopped by %s' % result['stopped_by'] if result['stopped_by'] else '')
    result.update(
        summary='%s in %.1f s' % (line, duration / 1000.0),
        duration_ms=duration,
        metrics=dict(duration_ms=duration, rows_matched=matched, rows_deleted=result['rows_deleted'],
                     batches=result['batches'], rows_remaining=result['remaining']),
        executed_commands=executed,
    )
    if module._diff:
        result['diff'] = dict(before='%s: %d rows older than %s\n' % (qualified, matched, result['cutoff']),
                              after='%s: %d rows older than %s\n' % (qualified, result['remaining'], result['cutoff']))
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('snapshot_dest', 'snapshot_manifest')],
        supports_check_mode=True,
    )
    check_options(module)
    p = module.params
    started = time.monotonic()
    now = utc_now()
    schema, name = split_table(p['table'])
    qualified = '%s.%s' % (schema, name)

    conn = connect_or_fail(module)
    runner = StatementRunner(conn)
    result = dict(changed=False, table=qualified, snapshot=None, rows_deleted=0, batches=0, stopped_by=None)

    def fail(msg, **extra):
        conn.close()
        result.update(extra)
        module.fail_json(msg=msg, executed_commands=runner.executed, **result)

    try:
        plan = survey(runner, p, now)
    except PurgeError as exc:
        fail(str(exc))
    except psycopg2.Error as exc:
        fail('cannot read %s in %s: %s' % (qualified, p['login_db'] or 'postgres', str(exc).strip().splitlines()[0]))

    would_delete = plan['would_delete']
    result.update(cutoff=plan['cutoff'], matched_rows=plan['matched'], oldest=plan['oldest'], newest=plan['newest'],
                  would_delete=would_delete, remaining=plan['matched'])
    if would_delete and p['require_snapshot_within_h']:
        try:
            result['snapshot'] = snapshot_evidence(plan['database'], p['require_snapshot_within_h'],
                                                   dest=p['snapshot_dest'], manifest_path=p['snapshot_manifest'],
                                                   now=now)
        except PurgeError as exc:
            fail('refusing to delete %d rows from %s: %s' % (would_delete, qualified, exc))

    if would_delete and not module.check_mode:
        purge(module, runner, plan, result, started, fail)
    elif would_delete:
        result.update(changed=True, remaining=plan['matched'] - would_delete)
    conn.close()
    finish(module, result, plan['matched'], started, runner.executed)


if __name__ == '__main__':
    main()

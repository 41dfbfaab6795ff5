#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: snapshot_restore
short_description: Restore drill - prove a snapshot gives the data back
version_added: 0.1.0
description:
  - Takes a snapshot written by M(engineroom.maintenance.snapshot_archive) (the newest of a tier in O(dest),
    or one O(snapshot) path), verifies it against its manifest first, and refuses it when anything differs.
  - Restores the database into a scratch database it creates (named with O(scratch_prefix)), and compares
    it with the manifest. When the snapshot recorded a content fingerprint (M(engineroom.maintenance.snapshot_archive)
    O(engineroom.maintenance.snapshot_archive#module:fingerprint)), the same fingerprint is taken of the restored
    database and compared item by item (table rows and content, sequences, large objects, materialized views,
    the object inventory), so RV(matches) means the data matches; RV(differences) names what differs.
    Snapshots without a fingerprint (schema version 1 manifests, O(engineroom.maintenance.snapshot_archive#module:fingerprint=none),
    container dumps) are compared by row counts as far as they go, and RV(note) says so.
  - For a full archive, extracts the files into a scratch directory and compares their count and bytes
    (and sha256 when the manifest recorded them). Extraction refuses absolute member names, C(..)
    components, members reached through a link and relative links leading outside the target, naming the
    offending member. It never follows a link on disk, so links to absolute paths (such as
    C(current -> /var/www/releases/x)) are created as they are and counted in RV(files.absolute_links).
  - For an incremental archive (O(engineroom.maintenance.snapshot_archive#module:mode=incremental)), restores its
    base and every link of its chain into the scratch directory, reading every archive completely (sha256 against
    the one the chain recorded), and checks every file's sha256, every directory and symlink against the chain's
    final index, deleted files absent. A base or link that is missing or does not verify fails the drill, naming it.
  - The scratch database is marked at creation with the comment C(engineroom.maintenance restore drill <run id>);
    an existing database is only replaced, and a scratch database only dropped, when it carries that mark.
    The dumped database itself and O(login_db) are refused as scratch databases.
  - A snapshot with a fingerprint is restored like a real restore, with owners and ACLs; roles it needs that the
    server lacks fail the drill, named (create them, or set O(no_owner=true)). Plain dumps are written without
    owners and are restored without them.
  - When the login role is a superuser, the restore runs with C(session_replication_role=replica), so event triggers
    (and ordinary triggers) of the dumped database do not fire while it is restored and change no data
    (RV(event_triggers_disabled)).
  - Reports RV(rto_s), the time to a usable restore, and RV(matches); then drops the scratch database and
    directory unless O(keep=true).
  - When the newest snapshot (O(snapshot=latest)) does not verify, the drill is refused and names the newest older
    snapshot that does (RV(alternative)), to be drilled with O(snapshot); it never falls back by itself.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.postgres
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Selects and verifies the snapshot and checks the scratch names; restores nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - With O(keep=false) the scratch database and directory are removed again and the task reports no change.
options:
  dest:
    description: Directory holding the snapshots (used with O(snapshot=latest)).
    type: path
  snapshot:
    description:
      - V(latest) for the newest snapshot of O(tier) (and O(prefix)/O(database)) in O(dest), or the path of an artifact.
    type: str
    default: latest
  tier:
    description: Tier of the snapshot picked by V(latest).
    type: str
    choices: [database, full]
    default: database
  prefix:
    description: Artifact name prefix for V(latest); defaults to O(database), or C(snapshot).
    type: str
  database:
    description: Name of the dumped database, to pick V(latest) among several databases' snapshots.
    type: str
  scratch_prefix:
    description:
      - Prefix of the scratch database (and directory). An existing database of that name is replaced only when it
        carries the drill's mark (a comment set when a drill created it); the module refuses any other existing
        database.
    type: str
    default: restore_drill_
  scratch_database:
    description:
      - Name of the scratch database; must start with O(scratch_prefix) and must not be the dumped database or
        O(login_db). Defaults to O(scratch_prefix) plus the dumped database's name.
    type: str
  scratch_dir:
    description:
      - Directory in which a fresh scratch directory is created for the extracted files of a full archive or a
        directory-format dump. Defaults to the system temp directory.
    type: path
  keep:
    description: Keep the scratch database and directory for inspection.
    type: bool
    default: false
  jobs:
    description: Parallel pg_restore jobs, used for directory dumps and custom dumps without zstd (seekable files).
    type: int
    default: 2
  estimate_tolerance_pct:
    description:
      - For tables whose manifest count is a planner estimate (C(exact=false)), the restored count may differ
        by this many percent and still match.
    type: float
    default: 10
  fail_on_mismatch:
    description: Fail the task when RV(matches) is false.
    type: bool
    default: true
  create_missing_roles:
    description:
      - Create the roles the snapshot needs that this server lacks, from the snapshot's globals artifact (attributes,
        role settings and memberships as they were, no passwords), before restoring. The roles stay after the drill
        (RV(roles_created)). Fails when the snapshot has no globals artifact.
    type: bool
    default: false
  no_owner:
    description:
      - Restore without owners and ACLs (C(--no-owner --no-acl)), as when the roles the snapshot needs do not exist
        on this server; owners and grants are then not compared.
    type: bool
    default: false
  pg_restore_path:
    description:
      - pg_restore to run (psql is looked up beside it). Defaults to the server's major version directory
        C(/usr/lib/postgresql/<major>/bin), else PATH.
    type: path
requirements:
  - psycopg2, pg_restore and psql on the managed host
  - the Python library zstandard for zstd-compressed snapshots
seealso:
  - module: engineroom.maintenance.snapshot_archive
'''

EXAMPLES = r'''
- name: Monthly restore drill of the newest database snapshot
  engineroom.maintenance.snapshot_restore:
    dest: /var/backups/engineroom
    database: app
    login_user: postgres
  register: drill

- name: Quarterly drill of the full archive, keeping the result for a look
  engineroom.maintenance.snapshot_restore:
    dest: /var/backups/engineroom
    tier: full
    database: app
    scratch_dir: /srv/restore
    keep: true
'''

RETURN = r'''
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "restore drill of app-database-20261123T020000Z.dump.zst: 4 tables, 2537 rows, all match; usable after 3.2 s"
snapshot:
  description: The artifact drilled.
  returned: always
  type: str
alternative:
  description:
    - When O(snapshot=latest) was refused because it did not verify, the newest older snapshot of the same tier,
      prefix and database that verifies (drill it with O(snapshot)), or V(null) when none does.
  returned: when the latest snapshot was refused
  type: str
  sample: /var/backups/engineroom/app-database-20261122T020000Z.dump.zst
matches:
  description:
    - Whether the restored data matched the manifest - every table's rows, and with a fingerprint every content hash,
      sequence, large object, materialized view and object of the inventory (and the files, for a full archive).
  returned: success
  type: bool
differences:
  description: Fingerprint differences, in a stable order (empty when everything matches or no fingerprint was recorded).
  returned: success
  type: list
  elements: dict
  sample: [{kind: table, name: public.orders, what: content, expected: "9223372036854775", actual: "9223372036800012"}]
  contains:
    kind:
      description: C(table), C(materialized view), C(sequence), C(large objects) or C(object) (the inventory).
      type: str
    name:
      description: Qualified name (quoted where needed), or C(kind name) for the inventory.
      type: str
    what:
      description: What differs, such as C(rows), C(content), C(last_value), C(is_called), C(populated), C(count), C(missing).
      type: str
    expected:
      description: The snapshot's value.
      type: raw
    actual:
      description: The restored value.
      type: raw
fingerprint:
  description: The fingerprint mode compared (V(full), V(counts)), or V(null) when the snapshot holds none.
  returned: success
  type: str
roles_created:
  description: Roles created from the globals artifact (O(create_missing_roles=true)); they stay after the drill.
  returned: when roles were created
  type: list
  elements: str
failed_statements:
  description:
    - The statements of the dump that pg_restore or psql reported as failed (at most five, each shortened to one line), with
      the server's error; the failure message names them too. Empty when the restore failed for another reason.
  returned: when the restore failed
  type: list
  elements: dict
  sample: [{statement: ALTER TABLE public.orders OWNER TO app_owner;, error: role "app_owner" does not exist}]
  contains:
    statement:
      description: The failed statement (the dump's text, whitespace collapsed, at most 300 characters).
      type: str
    error:
      description: The server's error message for it.
      type: str
event_triggers_disabled:
  description: Whether triggers and event triggers were kept from firing during the restore (needs a superuser login).
  returned: when a database was restored or planned
  type: bool
note:
  description: What the comparison could not cover (an old manifest, no fingerprint, no owners restored).
  returned: success
  type: str
rto_s:
  description: Seconds from the start of the drill (verification included) until the data was restored.
  returned: success
  type: float
scratch_database:
  description: Scratch database used (already dropped unless O(keep=true)).
  returned: success
  type: str
scratch_dir:
  description: Scratch directory of the extracted files, for a full archive (already removed unless O(keep=true)).
  returned: success
  type: str
tables:
  description: Per-table comparison.
  returned: success
  type: list
  elements: dict
  contains:
    table:
      description: Schema-qualified table name, each part double-quoted unless a plain lower-case identifier.
      type: str
    compared:
      description:
        - How the table was compared - V(content) (rows and content hash), V(counts_only) (exact rows),
          V(exact) or V(estimate) (snapshots without a fingerprint).
      type: str
    expected:
      description: Row count in the manifest (null for a table the manifest does not know).
      type: int
    actual:
      description: Rows in the restored table (null when the table is missing).
      type: int
    exact:
      description: Whether the manifest's count was exact.
      type: bool
    match:
      description: Whether the counts (and the content, where compared) agree.
      type: bool
files:
  description: For a full archive, the file count and bytes recorded and restored.
  returned: success
  type: dict
  sample: {expected_count: 10000, restored_count: 10000, expected_bytes: 2090000000, restored_bytes: 2090000000,
           checksums_checked: 0, absolute_links: 1, match: true}
  contains:
    absolute_links:
      description: Symlinks to absolute paths, created in the scratch directory as they are (never followed).
      type: int
    chain:
      description: For an incremental archive, the archives read to restore it, base first, the drilled one last.
      type: list
      elements: str
      returned: for an incremental archive
verified:
  description: What the verification before the restore checked.
  returned: always
  type: str
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {rto_s: 3.2, verify_ms: 400.1, restore_ms: 2800.5, compare_ms: 30.2, tables_compared: 4, tables_mismatched: 0}
executed_commands:
  description: SQL statements and argv run (secrets masked).
  returned: always
  type: list
  elements: str
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    connect_or_fail,
    postgres_argument_spec,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.drill import (
    DrillFailure,
    RestoreDrill,
    drill_summary,
)


def validate(module, result):
    params = module.params
    if not params['scratch_prefix']:
        module.fail_json(msg='scratch_prefix must not be empty: it is what marks a database as the drill\'s own', **result)
    if params['scratch_database'] and not params['scratch_database'].startswith(params['scratch_prefix']):
        module.fail_json(msg='scratch_database %s does not start with scratch_prefix %s: the drill only restores into '
                         'databases carrying its prefix' % (params['scratch_database'], params['scratch_prefix']), **result)
    if params['jobs'] < 1:
        module.fail_json(msg='jobs must be at least 1 (got %d)' % params['jobs'], **result)
    if params['scratch_dir'] and not os.path.isdir(params['scratch_dir']):
        module.fail_json(msg='scratch_dir %s is not a directory: create it or leave it unset' % params['scratch_dir'],
                         **result)


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        dest=dict(type='path'),
        snapshot=dict(type='str', default='latest'),
        tier=dict(type='str', default='database', choices=['database', 'full']),
        prefix=dict(type='str'),
        database=dict(type='str'),
        scratch_prefix=dict(type='str', default='restore_drill_'),
        scratch_database=dict(type='str'),
        scratch_dir=dict(type='path'),
        keep=dict(type='bool', default=False),
        jobs=dict(type='int', default=2),
        estimate_tolerance_pct=dict(type='float', default=10),
        fail_on_mismatch=dict(type='bool', default=True),
        no_owner=dict(type='bool', default=False),
        create_missing_roles=dict(type='bool', default=False),
        pg_restore_path=dict(type='path'),
    )
    return spec


def prepare(module, drill, result, started):
    """Pick and verify the snapshot, check the scratch name; in check mode, exit with the plan."""
    verify_started = time.monotonic()
    drill.verify()
    verify_ms = elapsed_ms(verify_started)
    scratch_db = drill.check_scratch()
    if module.check_mode:
        result['summary'] = 'would restore %s into %s' % (os.path.basename(drill.path), scratch_db or 'a scratch directory')
        result['metrics'] = dict(duration_ms=elapsed_ms(started), verify_ms=verify_ms)
        drill.cleanup()
        module.exit_json(**result)
    return verify_ms


def report(module, drill, outcome, started, verify_ms, result):
    params = module.params
    tables, files, differences = outcome['tables'], outcome['files'], outcome['differences']
    mismatched = [row for row in tables if not row['match']]
    rto_s = round(outcome['restored_at'] - started, 3)
    result.update(changed=params['keep'], matches=not (mismatched or differences), rto_s=rto_s,
                  scratch_database=drill.scratch_db, scratch_dir=drill.scratch_dir, tables=tables, files=files,
                  differences=differences, fingerprint=outcome['fingerprint'], note=outcome['note'])
    result['metrics'] = dict(duration_ms=elapsed_ms(started), rto_s=rto_s, verify_ms=verify_ms,
                             restore_ms=outcome['restore_ms'], compare_ms=outcome['compare_ms'],
                             tables_compared=len(tables), tables_mismatched=len(mismatched),
                             differences=len(differences),
                             rows_restored=sum(row['actual'] or 0 for row in tables),
                             files_restored=files['restored_count'] if files else 0)
    result['summary'] = drill_summary(drill.path, outcome, rto_s,
                                      (drill.scratch_db or drill.scratch_dir) if params['keep'] else None)
    if not result['matches'] and params['fail_on_mismatch']:
        module.fail_json(msg=result['summary'], **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    started = time.monotonic()
    result = dict(changed=False, snapshot=None, verified=None, executed_commands=[], summary='', metrics={})
    validate(module, result)
    conn = None
    try:
        drill = RestoreDrill(module.params, result)
        drill.pick()
        if drill.manifest.get('database'):  # a files-only full archive needs no server
            conn = connect_or_fail(module)
            drill.attach(conn)
        verify_ms = prepare(module, drill, result, started)
        outcome = drill.run()
    except DrillFailure as exc:
        module.fail_json(msg=str(exc), **result)
    finally:
        if conn is not None:
            conn.close()
    report(module, drill, outcome, started, verify_ms, result)


if __name__ == '__main__':
    main()

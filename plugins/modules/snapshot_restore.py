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
    every table's row count with the manifest.
  - For a full archive, extracts the files into a scratch directory and compares their count and bytes
    (and sha256 when the manifest recorded them). Extraction refuses absolute member names, C(..)
    components, members reached through a link and relative links leading outside the target, naming the
    offending member. It never follows a link on disk, so links to absolute paths (such as
    C(current -> /var/www/releases/x)) are created as they are and counted in RV(files.absolute_links).
  - The scratch database is marked at creation with the comment C(engineroom.maintenance restore drill <run id>);
    an existing database is only replaced, and a scratch database only dropped, when it carries that mark.
    The dumped database itself and O(login_db) are refused as scratch databases.
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
  description: Whether every table's rows (and the files, for a full archive) matched the manifest.
  returned: success
  type: bool
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
      description: Schema-qualified table name.
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
      description: Whether the counts agree.
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
import shutil
import tempfile
import time
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.archive import (
    ArchiveError,
    compression_of,
    scan_archive,
    scan_tar,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.dump import (
    DATABASE_ERRORS,
    DumpError,
    connection_env,
    count_tables,
    find_program,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import (
    MANIFEST_SUFFIX,
    ManifestError,
    load_manifest,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
    StatementRunner,
    connect,
    connect_or_fail,
    postgres_argument_spec,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.artifacts import (
    VerifyError,
    compare_scan,
    restore_dump,
    snapshots,
    verify_snapshot,
)

try:
    from psycopg2 import sql
except ImportError:
    pass  # connect_or_fail reports the missing library

EXACT_EVERYWHERE = 10 ** 18
# The mark set on every scratch database at creation; only databases carrying it are ever replaced or dropped.
DRILL_MARK = 'engineroom.maintenance restore drill '
DATABASE_MARK_SQL = "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = %s"
MAX_IDENTIFIER = 63


def pick_snapshot(module, params, result):
    """(path, manifest) of the snapshot to drill, or fail naming what is missing."""
    if params['snapshot'] != 'latest':
        path = params['snapshot']
        try:
            return path, load_manifest(path + MANIFEST_SUFFIX)
        except ManifestError as exc:
            module.fail_json(msg='%s is not a snapshot this module can trust: %s' % (path, exc), **result)
    if not params['dest']:
        module.fail_json(msg='snapshot latest needs dest: the directory holding the snapshots', **result)
    found = latest_candidates(params)
    if not found:
        module.fail_json(msg='no %s snapshot of prefix %s with a manifest in %s: take one with snapshot_archive first'
                         % (params['tier'], selection_prefix(params), params['dest']), **result)
    return found[-1]['path'], found[-1]['manifest']


def selection_prefix(params):
    return params['prefix'] or params['database'] or 'snapshot'


def latest_candidates(params):
    """The snapshots O(snapshot=latest) chooses from, oldest first."""
    return snapshots(params['dest'], selection_prefix(params), params['tier'], params['database'])


def verified_alternative(params, refused, pg_restore, executed):
    """The newest snapshot older than the ``refused`` latest one that verifies, or None.

    Named in the refusal so that the operator can drill it on purpose; the
    drill itself never falls back to an older snapshot unasked.
    """
    for snap in reversed([snap for snap in latest_candidates(params) if snap['path'] != refused]):
        try:
            verify_snapshot(snap['path'], snap['manifest'], pg_restore, executed)
        except (VerifyError, DumpError):
            continue
        return snap['path']
    return None


def run_ddl(runner, statement):
    """Run a statement that returns no rows (CREATE/DROP DATABASE), recorded like the runner's own."""
    with runner.conn.cursor() as cursor:
        runner.executed.append(statement.as_string(cursor))
        cursor.execute(statement)


def scratch_name(params, manifest):
    name = params['scratch_database'] or params['scratch_prefix'] + ((manifest.get('database') or {}).get('name') or 'files')
    return name[:MAX_IDENTIFIER]


def check_scratch_database(module, runner, params, manifest, scratch_db, result):
    """Refuse a scratch database that is the dumped one, the login database, or an existing one without the drill's mark.

    Returns whether it exists (a marked leftover of an earlier drill, to be replaced).
    """
    source = (manifest.get('database') or {}).get('name')
    if scratch_db in (source, params['login_db'] or 'postgres'):
        what = 'dumped database' if scratch_db == source else 'login database (login_db)'
        module.fail_json(msg='refusing scratch database %s: it is the %s, which the drill would drop; choose another '
                         'scratch_database or scratch_prefix' % (scratch_db, what), **result)
    try:
        marks = runner.rows(DATABASE_MARK_SQL, (scratch_db,))
    except DATABASE_ERRORS as exc:
        module.fail_json(msg='cannot check the scratch database %s: %s; check the login role can read pg_database'
                         % (scratch_db, str(exc).strip()), **result)
    if marks and not marks[0][0].startswith(DRILL_MARK):
        module.fail_json(msg='refusing to restore into existing database %s: it does not carry the mark of a restore '
                         'drill (comment %r...); drop it yourself or choose another scratch_database'
                         % (scratch_db, DRILL_MARK.strip()), **result)
    return bool(marks)


def compare_tables(expected, actual, tolerance_pct):
    rows = []
    for table in sorted(set(expected) | set(actual)):
        want = expected.get(table)
        got = actual.get(table, {}).get('rows')
        exact = bool(want and want.get('exact'))
        if want is None or got is None:
            match = False
        elif exact:
            match = got == want['rows']
        else:
            match = abs(got - want['rows']) <= max(want['rows'], 1) * tolerance_pct / 100.0
        rows.append(dict(table=table, expected=want['rows'] if want else None, actual=got, exact=exact, match=match))
    return rows


def main():
    argument_spec = postgres_argument_spec()
    argument_spec.update(
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
        pg_restore_path=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    started = time.monotonic()
    result = dict(changed=False, snapshot=None, verified=None, executed_commands=[], summary='', metrics={})
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

    path, manifest = pick_snapshot(module, params, result)
    result['snapshot'] = path
    executed = result['executed_commands']
    database = manifest.get('database')
    conn = runner = None
    programs = dict(pg_restore=None)
    if database:  # a files-only full archive needs no server
        conn = connect_or_fail(module)
        runner = StatementRunner(conn)
        major = conn.server_version // 10000
        try:
            pg_restore = params['pg_restore_path'] or find_program('pg_restore', major)
            programs = dict(pg_restore=pg_restore, psql=find_program('psql', major, near=pg_restore))
        except DumpError as exc:
            module.fail_json(msg=str(exc), **result)

    verify_started = time.monotonic()
    try:
        detail = verify_snapshot(path, manifest, programs['pg_restore'], executed)
    except (VerifyError, DumpError) as exc:
        message = 'refusing to restore: %s' % exc
        if params['snapshot'] == 'latest':
            alternative = result['alternative'] = verified_alternative(params, path, programs['pg_restore'], executed)
            message += ('; the newest older snapshot that verifies is %s: drill it with snapshot: %s' % (
                alternative, alternative) if alternative else '; no older snapshot of this selection verifies either')
        module.fail_json(msg=message, **result)
    result['verified'] = 'sha256 and readability match the manifest (%s)' % ', '.join(
        '%s %s' % (key, value) for key, value in sorted(detail.items()))
    verify_ms = elapsed_ms(verify_started)

    scratch_db = scratch_name(params, manifest) if database else None
    leftover = check_scratch_database(module, runner, params, manifest, scratch_db, result) if scratch_db else False
    if module.check_mode:
        result['summary'] = 'would restore %s into %s' % (os.path.basename(path), scratch_db or 'a scratch directory')
        result['metrics'] = dict(duration_ms=elapsed_ms(started), verify_ms=verify_ms)
        module.exit_json(**result)

    scratch_dir = None
    restore_started = time.monotonic()
    tables = []
    files = None
    created = False
    try:
        try:
            if manifest['tier'] == 'full':
                scratch_dir = tempfile.mkdtemp(prefix=params['scratch_prefix'], dir=params['scratch_dir'])
                scan = scan_archive(path, manifest['artifact']['format'], scratch_dir)[0]
                compare_scan(path, manifest, scan)
                expected_files = manifest.get('files') or {}
                files = dict(expected_count=expected_files.get('count'), restored_count=scan.file_count,
                             expected_bytes=expected_files.get('total_bytes'), restored_bytes=scan.file_bytes,
                             checksums_checked=len(expected_files.get('sha256') or {}),
                             absolute_links=scan.absolute_links, match=True)
                dump_file = os.path.join(scratch_dir, database['member']) if database else None
            elif manifest['artifact']['format'] == 'directory':
                scratch_dir = tempfile.mkdtemp(prefix=params['scratch_prefix'], dir=params['scratch_dir'])
                scan_tar(path, compression_of(path), scratch_dir)
                dump_file = os.path.join(scratch_dir, 'dump')
            else:
                dump_file = path
            if database:
                if leftover:
                    run_ddl(runner, sql.SQL('DROP DATABASE {} WITH (FORCE)').format(sql.Identifier(scratch_db)))
                run_ddl(runner, sql.SQL('CREATE DATABASE {}').format(sql.Identifier(scratch_db)))
                created = True
                run_ddl(runner, sql.SQL('COMMENT ON DATABASE {} IS {}').format(
                    sql.Identifier(scratch_db), sql.Literal(DRILL_MARK + uuid.uuid4().hex)))
                restore_dump(dump_file, database.get('format') or manifest['artifact']['format'],
                             compression_of(dump_file), params, scratch_db, programs, params['jobs'],
                             dict(os.environ, **connection_env(params)), executed)
        except (ArchiveError, VerifyError, DumpError) as exc:
            module.fail_json(msg='restore drill of %s failed: %s' % (path, exc), **result)
        except OSError as exc:
            module.fail_json(msg='restore drill of %s failed writing the scratch files: %s (%s)'
                             % (path, exc.strerror or exc, exc.filename), **result)
        except DATABASE_ERRORS as exc:
            module.fail_json(msg='restore drill of %s failed on the server preparing scratch database %s: %s; the login '
                             'role needs CREATEDB and template1 must be free of other sessions'
                             % (path, scratch_db, str(exc).strip()), **result)
        rto_s = round(time.monotonic() - started, 3)
        restore_ms = elapsed_ms(restore_started)

        compare_started = time.monotonic()
        if database:
            try:
                scratch_conn = connect(dict(params, login_db=scratch_db))
            except PostgresError as exc:
                module.fail_json(msg='restored database cannot be opened: %s' % exc, **result)
            scratch_runner = StatementRunner(scratch_conn)
            try:
                actual = count_tables(scratch_runner, EXACT_EVERYWHERE)
            finally:
                scratch_conn.close()
            executed.extend(scratch_runner.executed)
            tables = compare_tables(database.get('tables') or {}, actual, params['estimate_tolerance_pct'])
    finally:
        if not params['keep']:
            if created:
                run_ddl(runner, sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(scratch_db)))
            if scratch_dir:
                shutil.rmtree(scratch_dir, ignore_errors=True)
        if conn is not None:
            executed[:0] = runner.executed
            conn.close()

    mismatched = [row for row in tables if not row['match']]
    matches = not mismatched
    result.update(changed=params['keep'], matches=matches, rto_s=rto_s, scratch_database=scratch_db,
                  scratch_dir=scratch_dir, tables=tables, files=files)
    result['metrics'] = dict(duration_ms=elapsed_ms(started), rto_s=rto_s, verify_ms=verify_ms, restore_ms=restore_ms,
                             compare_ms=elapsed_ms(compare_started), tables_compared=len(tables),
                             tables_mismatched=len(mismatched), rows_restored=sum(row['actual'] or 0 for row in tables),
                             files_restored=files['restored_count'] if files else 0)
    what = '%d tables, %d rows' % (len(tables), result['metrics']['rows_restored'])
    if files:
        what += ', %d files / %d bytes' % (files['restored_count'], files['restored_bytes'])
    if matches:
        verdict = 'all match'
    else:
        verdict = 'MISMATCH in %s' % ', '.join('%s (manifest %s, restored %s)' % (row['table'], row['expected'], row['actual'])
                                               for row in mismatched)
    result['summary'] = 'restore drill of %s: %s, %s; usable after %.1f s%s' % (
        os.path.basename(path), what, verdict, rto_s, ' (kept %s)' % (scratch_db or scratch_dir) if params['keep'] else '')
    if not matches and params['fail_on_mismatch']:
        module.fail_json(msg=result['summary'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

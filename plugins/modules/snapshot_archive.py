#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: snapshot_archive
short_description: Take verified database dumps and full archives, verify them again later, and apply retention
version_added: 0.1.0
description:
  - With O(state=present), dumps a PostgreSQL database (O(tier=database)), or the dump plus file trees
    (O(tier=full)), into O(dest) as C(<prefix>-<tier>-<YYYYmmddTHHMMSSZ>.<ext>) with a
    C(<same>.manifest.json) beside it.
  - The artifact is written to a temporary name in O(dest), fsynced, accepted only when pg_dump exited 0
    with no error on stderr, verified by reading it back (hash and readability), renamed, and only then
    is the manifest written. A file without a manifest is not a snapshot.
  - pg_dump runs locally (its major version must be at least the server's) or, with O(container), inside
    that container through the Docker API, its output streamed to this host and its exit code checked.
  - When a verified snapshot of the same prefix, tier and database already exists in the current O(slot),
    nothing is written and the task reports no change.
  - With O(state=verified), re-reads existing snapshots and compares them with their manifests.
  - With O(state=pruned), and after every O(state=present), applies the O(keep_last), O(keep_daily),
    O(keep_weekly), O(keep_monthly) and O(keep_within_days) rules. Only files in the module's naming scheme
    that have a manifest are ever deleted, and never the newest verified snapshot.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.postgres
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Checks the source, versions and free space, and reports the snapshot it would write and the
        snapshots retention would delete, without writing or deleting anything.
  diff_mode:
    support: full
    details:
      - Lists the snapshot files in O(dest) before and after.
  idempotent:
    support: full
    details:
      - A second run in the same O(slot) writes nothing. O(slot=always) writes a snapshot on every run.
options:
  state:
    description:
      - V(present) takes a snapshot (unless the slot is already covered), then applies retention.
      - V(verified) verifies existing snapshots selected by O(which); fails on any mismatch.
      - V(pruned) only applies retention.
    type: str
    choices: [present, verified, pruned]
    default: present
  tier:
    description:
      - V(database) is the dump alone; V(full) is one archive holding the dump (when O(database) is set)
        and the trees in O(paths).
    type: str
    choices: [database, full]
    default: database
  dest:
    description:
      - Directory of the snapshots; created with mode C(0700) when missing.
    type: path
    required: true
  prefix:
    description:
      - First part of the artifact names. Letters, digits, C(.), C(_) and C(-).
      - Defaults to O(database), or C(snapshot) when no database is dumped.
    type: str
  database:
    description:
      - Database to dump. Required for O(tier=database); optional for O(tier=full).
    type: str
  format:
    description:
      - pg_dump output format. V(custom) restores with pg_restore (selectively, and in parallel when not
        compressed by the module); V(plain) is SQL text with C(--clean --if-exists --no-owner), restored with psql.
      - V(directory) dumps with O(jobs) parallel pg_dump workers into a staging directory in O(dest), then stores
        it as one tar (C(.dir.tar.zst) with zstd); it restores in parallel. Local pg_dump and O(tier=database) only.
    type: str
    choices: [custom, plain, directory]
    default: custom
  jobs:
    description:
      - Parallel pg_dump workers for O(format=directory) (each holds one more database connection).
    type: int
    default: 2
  compression:
    description:
      - Compression of the dump. V(zstd) streams pg_dump's uncompressed output through zstd with all cores
        (pg_dump 15 has no zstd of its own). V(gzip) uses pg_dump's built-in zlib for V(custom) and gzip for V(plain).
      - Defaults to V(zstd) when the Python library zstandard is installed on the target, else V(gzip).
    type: str
    choices: [zstd, gzip, none]
  compression_level:
    description:
      - Compression level; defaults to 3 for zstd (1-19) and 6 for gzip (1-9). Also used for the full archive.
    type: int
  container:
    description:
      - Name or ID of a running container in which pg_dump (and psql, for row counts and versions) run.
      - The connection options then describe the connection from inside the container; an empty
        O(login_host) means the container's local socket.
    type: str
  container_user:
    description:
      - OS user the commands run as inside O(container) (peer authentication on the socket needs C(postgres)).
    type: str
    default: postgres
  docker_host:
    description:
      - Docker engine API address, for O(container).
    type: str
    default: unix:///var/run/docker.sock
  pg_dump_path:
    description:
      - pg_dump to run locally. Defaults to C(/usr/lib/postgresql/<server major>/bin/pg_dump), else C(pg_dump) in PATH.
      - pg_restore and psql are looked up beside it first.
    type: path
  paths:
    description:
      - Files and directory trees of the full archive, stored under C(files/) plus their absolute path.
      - Symlinks are stored as links and never followed.
    type: list
    elements: path
    default: []
  exclude:
    description:
      - Glob patterns; an entry is left out when its path relative to its O(paths) entry, or its name, matches.
    type: list
    elements: str
    default: []
  missing_ok:
    description:
      - Skip (with a warning) O(paths) entries that do not exist instead of failing.
    type: bool
    default: false
  archive_format:
    description:
      - Format of the full archive. V(tar.zst) is fastest; it and V(zip) store already-compressed files
        (jpg, png, pdf, zip, gz, zst, mp4, ...) as they are (V(tar.zst) from 128 KiB up, in raw zstd frames)
        and compress the rest on all cores. V(tar.gz) compresses everything, in one thread.
    type: str
    choices: [tar.zst, tar.gz, zip]
    default: tar.zst
  file_checksums:
    description:
      - Record a sha256 per archived file in the manifest (checked by verification and restore drills).
      - A C(tar.zst) or C(tar.gz) archive written with it also records a file index (type, size, mtime_ns, ctime_ns,
        inode, sha256 of every entry), so that it can be the base of an incremental chain (O(mode=incremental)).
    type: bool
    default: false
  mode:
    description:
      - V(full) archives every file of O(paths).
      - V(incremental) (O(tier=full), C(tar.zst) or C(tar.gz) only; turns O(file_checksums) on) archives only the
        regular files whose size, mtime_ns, ctime_ns or inode differ from the newest verified archive of the same
        prefix, database and paths (its I(parent)), plus every directory and symlink; every unchanged file is recorded
        by reference (path, size, sha256 from the parent's index) and every vanished one as deleted. The manifest
        names the chain's base and every link (file name and sha256). The database dump, if any, is always whole.
      - Before writing, every archive of the parent's chain must be present with its manifest, size and sha256 as
        recorded and unmodified since it was verified; otherwise the run fails naming the base (or link) and writes
        nothing. Without a verified parent that has a file index (first run, only zip or unindexed archives), the
        run writes a full archive with an index, the base of a new chain, and says so in RV(incremental.fallback).
      - Retention keeps every base and link a kept incremental archive needs (see RV(kept_reasons)).
    type: str
    choices: [full, incremental]
    default: full
  slot:
    description:
      - At most one snapshot per slot (UTC); V(always) takes one on every run.
    type: str
    choices: [always, hourly, daily, weekly, monthly]
    default: daily
  min_free_bytes:
    description:
      - Free space that must remain in O(dest) after the snapshot, by the module's estimate
        (table data times a format factor, plus the bytes of O(paths)).
    type: int
    default: 268435456
  lock_wait_timeout_s:
    description:
      - Seconds the snapshot may wait for a table lock (pg_dump C(--lock-wait-timeout), and C(lock_timeout) of the
        module's own size and row-count queries). A session holding an C(ACCESS EXCLUSIVE) lock longer than this
        makes the task fail clearly, leaving no artifact, instead of waiting forever.
    type: int
    default: 300
  exact_count_max_rows:
    description:
      - With O(fingerprint=none), tables with fewer estimated rows are counted exactly for the manifest; larger ones
        record the planner's estimate (marked C(exact=false)). With a fingerprint every table is counted exactly.
    type: int
    default: 1000000
  fingerprint:
    description:
      - Content fingerprint recorded in the manifest, taken in the dump's own snapshot (on the dump's connection, beside
        pg_dump), so that M(engineroom.maintenance.snapshot_restore) can prove the restored data equal.
      - V(full) - per table (leaf partitions and plain tables, C(ONLY) for inheritance parents) the exact row count and
        an order-independent content hash; sequences (last value, is_called); large objects (count and content hash);
        materialized views (populated, content hash); an inventory of objects by kind and qualified name with owner
        and ACL. It reads every row once more (see docs/performance/snapshot.md).
      - V(counts) - the same without content hashes (exact row counts only).
      - V(none) - no fingerprint (row counts as set by O(exact_count_max_rows)).
      - With V(full) or V(counts), the roles the dump needs (owners, grantees) are listed in the manifest
        (C(database.roles_needed)) and written, with their attributes, role settings and memberships but no
        passwords, to a sibling artifact C(<artifact>.globals.sql) (mode 0600, its sha256 in the manifest, checked by
        every verification, deleted with the snapshot by retention).
      - A dump inside a O(container) records no fingerprint (no shared snapshot there).
    type: str
    choices: [full, counts, none]
    default: full
  no_role_passwords:
    description:
      - Leave the roles' passwords out of the globals artifact (see O(fingerprint)).
      - With V(false), each role's stored password hash (as in C(pg_authid), never the clear text) is written too, as
        C(ALTER ROLE ... PASSWORD '<hash>'), so that roles created from it can log in as before. Reading them needs a
        superuser login; the artifact stays mode 0600. M(engineroom.maintenance.snapshot_restore) masks them in
        RV(engineroom.maintenance.snapshot_restore#module:executed_commands).
    type: bool
    default: true
  keep_last:
    description: Keep this many newest snapshots.
    type: int
  keep_daily:
    description: Keep the newest snapshot of each of this many most recent days that have one.
    type: int
  keep_weekly:
    description: Keep the newest snapshot of each of this many most recent ISO weeks that have one.
    type: int
  keep_monthly:
    description: Keep the newest snapshot of each of this many most recent months that have one.
    type: int
  keep_within_days:
    description: Keep every snapshot taken within this many days.
    type: int
  which:
    description:
      - For O(state=verified), V(latest) (the newest snapshot of prefix/tier/database), V(all), or the path of one artifact.
    type: str
    default: latest
requirements:
  - psycopg2 on the managed host
  - pg_dump and pg_restore of at least the server's major version (C(postgresql-client-15))
  - the Python library zstandard for V(zstd) compression and V(tar.zst) archives
  - the docker Python SDK for O(container)
notes:
  - Per-table row counts are taken in the same snapshot as the dump when pg_dump runs locally
    (C(pg_export_snapshot) and C(--snapshot)); with O(container), a second psql in the container reads them while the dump runs.
  - Verification of custom dumps runs pg_restore on this host, also for O(container) dumps.
  - Plain dumps of PostgreSQL 15.14+ carry a random C(\\restrict) key, so two dumps of the same data never have
    the same checksum; compare row counts, as snapshot_restore does.
seealso:
  - module: engineroom.maintenance.snapshot_restore
'''

EXAMPLES = r'''
- name: Daily database dump, kept 7 days / 4 weeks / 6 months
  engineroom.maintenance.snapshot_archive:
    database: app
    dest: /var/backups/engineroom
    login_user: postgres
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 6

- name: Dump the database that lives in the codexmetry_db container
  engineroom.maintenance.snapshot_archive:
    database: codexmetry
    container: codexmetry_db
    dest: /var/backups/engineroom

- name: Weekly full archive of the dump and the uploads, zip for the people who ask for zip
  engineroom.maintenance.snapshot_archive:
    tier: full
    database: app
    paths: [/srv/app/data/uploads, /srv/app/data/logs]
    exclude: ['*.tmp', cache]
    archive_format: zip
    slot: weekly
    dest: /var/backups/engineroom

- name: Re-verify every snapshot
  engineroom.maintenance.snapshot_archive:
    state: verified
    which: all
    database: app
    dest: /var/backups/engineroom
'''

RETURN = r'''
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "snapshot app-database-20261123T020000Z.dump.zst: 198.0 MB from 1.1 GB in 9.1 s (verified); pruned 1, kept 7"
snapshot:
  description: The snapshot written (or planned in check mode), or the existing one that covers the slot.
  returned: when O(state=present)
  type: dict
  contains:
    path:
      description: Artifact path.
      type: str
    manifest_path:
      description: Manifest path.
      type: str
    size_bytes:
      description: Artifact size.
      type: int
    sha256:
      description: Artifact sha256.
      type: str
    tier:
      description: V(database) or V(full).
      type: str
    format:
      description: Dump format, or the archive format for the full tier.
      type: str
    compression:
      description: Compression of the dump.
      type: str
    duration_ms:
      description: Time to write and verify it (0 for an existing snapshot).
      type: float
    write_ms:
      description: Part of RV(snapshot.duration_ms) spent dumping, compressing and writing (not returned for V(existing) or V(planned)).
      type: float
    verify_ms:
      description: Part of RV(snapshot.duration_ms) spent reading the new snapshot back to verify it.
      type: float
    source_bytes:
      description: Bytes read from pg_dump plus bytes of archived files.
      type: int
    throughput_mb_s:
      description: RV(snapshot.source_bytes) per second of RV(snapshot.duration_ms), in MB (10^6 bytes).
      type: float
    status:
      description: V(written), V(planned) (check mode) or V(existing) (the slot was covered).
      type: str
    mode:
      description: For a full-tier archive written or planned, V(full) or V(incremental) (see RV(incremental)).
      type: str
  sample: {path: /var/backups/engineroom/app-database-20261123T020000Z.dump.zst, size_bytes: 198000000, status: written}
incremental:
  description:
    - The chain of the archive written (or planned, or covering the slot), for a full-tier tar archive written with
      O(mode=incremental) or with a file index (O(file_checksums)); null otherwise.
  returned: when O(state=present)
  type: dict
  contains:
    mode:
      description: The O(mode) asked for.
      type: str
    written:
      description: V(incremental) (a link after RV(incremental.parent)) or V(full) (a chain base).
      type: str
    base:
      description: File name of the chain's base (its full archive); null for a base.
      type: str
    parent:
      description: File name of the archive this one was compared with (the newest verified one); null for a base.
      type: str
    chain:
      description: File names of the archives restoring this one needs before it, base first.
      type: list
      elements: str
    fallback:
      description: Why an incremental run wrote a full archive instead (no verified parent with an index); null otherwise.
      type: str
    changed_files:
      description: Regular files written into this archive (new or changed; all of them for a base).
      type: int
    changed_bytes:
      description: Their bytes.
      type: int
    referenced_files:
      description: Unchanged regular files recorded by reference to an earlier archive of the chain.
      type: int
    referenced_bytes:
      description: Their bytes.
      type: int
    deleted_files:
      description: Entries of the parent that are gone (or changed type, like a file replaced by a directory).
      type: int
    deleted:
      description: Their member names (C(files/<path>)), the first 100; the manifest lists all.
      type: list
      elements: str
  sample: {mode: incremental, written: incremental, base: app-full-20261122T020000Z.tar.zst,
           parent: app-full-20261124T020000Z.tar.zst, chain: [app-full-20261122T020000Z.tar.zst, app-full-20261123T020000Z.tar.zst,
           app-full-20261124T020000Z.tar.zst], fallback: null, changed_files: 160, changed_bytes: 9100000,
           referenced_files: 15840, referenced_bytes: 886000000, deleted_files: 2, deleted: [files/srv/uploads/a.jpg, files/srv/uploads/b.jpg]}
kept_reasons:
  description:
    - Why retention keeps each artifact of RV(kept) (V(last), V(daily), V(weekly), V(monthly), V(within),
      V(newest verified), V(no retention rule), or V(base of <file>) / V(link of <file>) for an archive a kept
      incremental archive needs to be restored).
  returned: always
  type: dict
  sample: {/var/backups/engineroom/app-full-20261122T020000Z.tar.zst: [base of app-full-20261124T020000Z.tar.zst]}
pruned:
  description: Artifacts deleted by retention (in check mode, those that would be).
  returned: always
  type: list
  elements: str
kept:
  description: Artifacts retention keeps.
  returned: always
  type: list
  elements: str
verified:
  description: One entry per snapshot verified (the new one for O(state=present)).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Artifact path.
      type: str
    ok:
      description: Whether it matched its manifest and could be read back.
      type: bool
    message:
      description: What was checked, or what did not match.
      type: str
metrics:
  description:
    - Flat numbers for the report; keys carry their unit.
    - C(database_snapshot_bytes) or C(full_snapshot_bytes) (by O(tier)) is the size of the snapshot that covers the
      slot, written or existing, for M(engineroom.maintenance.capacity_review); only for O(state=present) outside check mode.
  returned: always
  type: dict
  sample: {duration_ms: 9120.4, bytes_written: 198000000, source_bytes: 1090000000, snapshots_pruned: 1, snapshots_kept: 7,
           database_snapshot_bytes: 198000000}
stale_temp_removed:
  description:
    - Temporary files and staging directories of earlier runs that died mid-write (OOM killer, reboot, lost
      controller), removed by this run (in check mode, listed only). A temp file is stale when no live process holds
      the exclusive lock every run keeps on its own temp files; a concurrent live run's files are never touched.
    - This includes the scratch directories (C(.<artifact>.verify.<random>.tmp)) of verifications that were killed
      (O(state=verified), the verification of a new snapshot, or a M(engineroom.maintenance.snapshot_restore) drill),
      removed by the next O(state=present) or O(state=verified) run on O(dest).
  returned: always
  type: list
  elements: dict
  sample: [{path: /var/backups/engineroom/.app-full-20261123T020000Z.tar.zst.k2j3h4.tmp, bytes: 478000000}]
executed_commands:
  description: SQL statements and argv run (secrets masked).
  returned: always
  type: list
  elements: str
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    ARCHIVE_FORMATS,
    COMPRESSIONS,
    HAS_ZSTANDARD,
    ZSTANDARD_IMPORT_ERROR,
    default_compression,
    level_problem,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import check_writable_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import MANIFEST_SUFFIX, artifact_name, cache_manifests
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import postgres_argument_spec
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.retention import (
    POLICY_KEYS,
    SLOTS,
    policy_active,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.catalog import covering_snapshot, identity_roots
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.incremental import MODES, existing_report, mode_problem
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.leftovers import remove_stale
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.prune import PruneRefused, Pruner
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.verify import VerifyError, verify_selection
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.writer import (
    SnapshotFailure,
    SnapshotWriter,
    nearest_existing,
)


def fail(module, message, result):
    module.fail_json(msg=message, **result)


def validate(module):
    params = module.params
    if params['tier'] == 'database' and not params['database'] and params['state'] == 'present':
        module.fail_json(msg='tier database needs the database option: name the database to dump')
    if params['tier'] == 'full' and params['state'] == 'present' and not (params['paths'] or params['database']):
        module.fail_json(msg='tier full needs paths (and usually database): nothing to archive')
    if params['format'] == 'directory' and (params['container'] or params['tier'] == 'full'):
        module.fail_json(msg='format directory needs a local pg_dump and tier database: use format custom with %s'
                         % ('container' if params['container'] else 'tier full'))
    if mode_problem(params):
        module.fail_json(msg=mode_problem(params))
    if params['jobs'] < 1:
        module.fail_json(msg='jobs must be at least 1 (got %d)' % params['jobs'])
    if params['lock_wait_timeout_s'] < 1:
        module.fail_json(msg='lock_wait_timeout_s must be at least 1 (got %d): it bounds the wait for table locks'
                         % params['lock_wait_timeout_s'])
    if params['compression'] is None:
        params['compression'] = default_compression()
    if params['compression'] == 'zstd' or (params['tier'] == 'full' and params['archive_format'] == 'tar.zst'):
        # Only writing needs it up front: verified and pruned read each artifact by its own name (.zst or .gz).
        if not HAS_ZSTANDARD and params['state'] == 'present':
            module.fail_json(msg=missing_required_lib('zstandard') + ' (or choose compression gzip / archive_format tar.gz)',
                             exception=ZSTANDARD_IMPORT_ERROR)
    if level_problem(params['compression'], params['compression_level']):
        module.fail_json(msg=level_problem(params['compression'], params['compression_level']))
    for key in POLICY_KEYS + ('min_free_bytes', 'exact_count_max_rows'):
        if params.get(key) is not None and params[key] < 0:
            module.fail_json(msg='%s must not be negative (got %d)' % (key, params[key]))
    prefix = params['prefix'] or params['database'] or 'snapshot'
    try:
        artifact_name(prefix, params['tier'], utc_now(), 'x')
    except ValueError as exc:
        module.fail_json(msg='%s; set the prefix option' % exc)
    params['prefix'] = prefix


def listing(dest):
    try:
        return sorted(name for name in os.listdir(dest) if not name.startswith('.'))
    except OSError:
        return []


def prepare_dest(module, dest, result):
    """Create ``dest`` (0700) when missing; fail when it cannot be written. Returns False in check mode when absent."""
    if not os.path.exists(dest):
        if module.check_mode:
            return False
        try:
            os.makedirs(dest, mode=0o700)
        except OSError as exc:
            fail(module, 'dest %s cannot be created: %s (create it, or choose a writable directory)'
                 % (dest, exc.strerror or exc), result)
    problem = check_writable_dir(dest)
    if problem:
        fail(module, 'dest %s cannot hold snapshots: %s' % (dest, problem), result)
    return True


def existing_paths(module, params, result):
    """The O(paths) that exist; missing ones fail, or are skipped with a warning under missing_ok."""
    present = []
    for path in params['paths']:
        if os.path.lexists(path):
            present.append(path)
        elif params['missing_ok']:
            module.warn('path %s does not exist: skipped (missing_ok)' % path)
        else:
            fail(module, 'path %s does not exist: fix paths, or set missing_ok: true to skip it' % path, result)
    return present


def verify_existing(module, params, result, started):
    if os.path.isdir(params['dest']):  # scratch directories of verifications that died (their lock is free)
        result['stale_temp_removed'] = remove_stale(params['dest'], module.check_mode)
        result['changed'] = bool(result['stale_temp_removed'])
    try:
        outcomes = verify_selection(params['dest'], params['prefix'], params['tier'], params['database'], params['which'],
                                    params['pg_dump_path'], result['executed_commands'])
    except VerifyError as exc:
        fail(module, str(exc), result)
    result['verified'] = outcomes
    failures = [outcome['message'] for outcome in outcomes if not outcome['ok']]
    result['metrics'] = dict(duration_ms=elapsed_ms(started), snapshots_verified=len(outcomes),
                             snapshots_failed=len(failures))
    result['metrics']['stale_temp_bytes'] = sum(item['bytes'] for item in result['stale_temp_removed'])
    result['summary'] = 'verified %d snapshot(s) in %s: %d ok, %d failed%s' % (
        len(outcomes), params['dest'], len(outcomes) - len(failures), len(failures),
        '; removed %d temp file(s) of dead runs' % len(result['stale_temp_removed']) if result['stale_temp_removed'] else '')
    if failures:
        fail(module, '; '.join(failures), result)
    module.exit_json(**result)


def ensure_snapshot(module, params, dest, exists, result):
    """state present: the covering snapshot, or a new one. Returns the roots identifying it."""
    present = existing_paths(module, params, result) if params['tier'] == 'full' else []
    roots = identity_roots(params['tier'], params['state'], params['paths'], present)
    result['snapshot'] = covering_snapshot(dest, params['prefix'], params['tier'], params['database'], roots,
                                           params['slot'], utc_now())
    if result['snapshot']:
        result['incremental'] = existing_report(result['snapshot']['path'], params['mode'])
        return roots
    writer = SnapshotWriter(params, dest, present, module.check_mode)
    try:
        result['snapshot'] = writer.take(dest if exists else nearest_existing(dest))
    except SnapshotFailure as exc:
        result['executed_commands'] = writer.executed
        fail(module, str(exc), result)
    result['executed_commands'] = writer.executed
    result['incremental'] = writer.increment.report() if writer.increment else None
    if writer.verified:
        result['verified'].append(dict(path=writer.path, ok=True, message=writer.verified))
    result['changed'] = True
    return roots


def apply_retention(module, params, dest, result, roots):
    pruner = Pruner(dest, params['prefix'], params['tier'], params['database'], roots, params['pg_dump_path'],
                    result['executed_commands'])
    pruner.planned_chain = (result.get('incremental') or {}).get('chain') or []
    try:
        pruner.run(dict((key, params[key]) for key in POLICY_KEYS), result['snapshot'], module.check_mode)
    except PruneRefused as exc:
        result.update(kept=pruner.kept, pruned=pruner.pruned, kept_reasons=pruner.reasons)
        fail(module, str(exc), result)
    result.update(kept=pruner.kept, pruned=pruner.pruned, kept_reasons=pruner.reasons)
    if pruner.pruned:
        result['changed'] = True


def summarize(module, params, result, started):
    snap = result['snapshot']
    parts = []
    if snap:
        if snap['status'] == 'existing':
            parts.append('%s slot already covered by %s' % (params['slot'], os.path.basename(snap['path'])))
        elif snap['status'] == 'planned':
            parts.append('would write %s' % os.path.basename(snap['path']))
        else:
            parts.append('snapshot %s: %.1f MB from %.1f MB in %.1f s (verified)' % (
                os.path.basename(snap['path']), snap['size_bytes'] / 1e6, snap['source_bytes'] / 1e6,
                snap['duration_ms'] / 1000.0))
    parts.append('%s %d, kept %d' % ('would prune' if module.check_mode else 'pruned', len(result['pruned']),
                                     len(result['kept'])))
    if not policy_active(dict((key, params[key]) for key in POLICY_KEYS)):
        parts[-1] += ' (no retention rule set)'
    result['summary'] = '; '.join(parts)
    written = snap['size_bytes'] if snap and snap['status'] == 'written' else 0
    result['metrics'] = dict(duration_ms=elapsed_ms(started), bytes_written=written,
                             write_ms=snap.get('write_ms', 0.0) if snap else 0.0,
                             verify_ms=snap.get('verify_ms', 0.0) if snap else 0.0,
                             source_bytes=snap['source_bytes'] if snap else 0,
                             snapshots_pruned=len(result['pruned']), snapshots_kept=len(result['kept']),
                             stale_temp_bytes=sum(item['bytes'] for item in result['stale_temp_removed']))
    if result['stale_temp_removed']:
        parts.append('removed %d temp file(s) of dead runs (%d bytes)' % (len(result['stale_temp_removed']),
                                                                          result['metrics']['stale_temp_bytes']))
        result['summary'] = '; '.join(parts)
    if snap and snap['size_bytes'] is not None:
        # The size of the snapshot covering the slot under a key that names its tier, so that the
        # maintenance log (numbers only) tells the tiers apart for capacity_review and the report.
        result['metrics']['%s_snapshot_bytes' % params['tier']] = snap['size_bytes']


def add_diff(module, dest, before, result):
    snap = result['snapshot']
    result['diff'] = dict(before='\n'.join(before) + '\n', after='\n'.join(listing(dest)) + '\n')
    if module.check_mode and snap and snap['status'] == 'planned':
        after = sorted(set(before) - set(os.path.basename(p) for p in result['pruned'] + [
            p + MANIFEST_SUFFIX for p in result['pruned']]) | set([os.path.basename(snap['path'])]))
        result['diff']['after'] = '\n'.join(after) + '\n'


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        state=dict(type='str', default='present', choices=['present', 'verified', 'pruned']),
        tier=dict(type='str', default='database', choices=['database', 'full']),
        dest=dict(type='path', required=True),
        prefix=dict(type='str'),
        database=dict(type='str'),
        format=dict(type='str', default='custom', choices=['custom', 'plain', 'directory']),
        jobs=dict(type='int', default=2),
        compression=dict(type='str', choices=list(COMPRESSIONS)),
        compression_level=dict(type='int'),
        container=dict(type='str'),
        container_user=dict(type='str', default='postgres'),
        docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
        pg_dump_path=dict(type='path'),
        paths=dict(type='list', elements='path', default=[]),
        exclude=dict(type='list', elements='str', default=[]),
        missing_ok=dict(type='bool', default=False),
        archive_format=dict(type='str', default='tar.zst', choices=list(ARCHIVE_FORMATS)),
        file_checksums=dict(type='bool', default=False),
        mode=dict(type='str', default='full', choices=list(MODES)),
        slot=dict(type='str', default='daily', choices=list(SLOTS)),
        min_free_bytes=dict(type='int', default=268435456),
        lock_wait_timeout_s=dict(type='int', default=300),
        exact_count_max_rows=dict(type='int', default=1000000),
        fingerprint=dict(type='str', default='full', choices=['full', 'counts', 'none']),
        no_role_passwords=dict(type='bool', default=True),
        keep_last=dict(type='int'),
        keep_daily=dict(type='int'),
        keep_weekly=dict(type='int'),
        keep_monthly=dict(type='int'),
        keep_within_days=dict(type='int'),
        which=dict(type='str', default='latest'),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    validate(module)
    cache_manifests()
    params = module.params
    started = time.monotonic()
    dest = params['dest']
    result = dict(changed=False, snapshot=None, pruned=[], kept=[], verified=[], executed_commands=[], summary='',
                  metrics={}, stale_temp_removed=[], kept_reasons={})
    if params['state'] == 'verified':
        verify_existing(module, params, result, started)
    before = listing(dest)
    exists = prepare_dest(module, dest, result)
    roots = identity_roots(params['tier'], params['state'], params['paths'], params['paths'])
    if exists:  # temp files of runs that died mid-write (their lock is free); a live run's stay
        result['stale_temp_removed'] = remove_stale(dest, module.check_mode)
        result['changed'] = bool(result['stale_temp_removed'])
    if params['state'] == 'present':
        roots = ensure_snapshot(module, params, dest, exists, result)
    if exists:
        apply_retention(module, params, dest, result, roots)
    summarize(module, params, result, started)
    if module._diff:  # pylint: disable=protected-access
        add_diff(module, dest, before, result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

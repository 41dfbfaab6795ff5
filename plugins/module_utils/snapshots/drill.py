# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill: verify a snapshot, restore it into a scratch database (and directory), compare, clean up.

:class:`RestoreDrill` is what ``snapshot_restore`` runs. It fills the
module's result as it goes and raises :class:`DrillFailure` (phrased for the
operator) on anything that stops the drill. Only scratch databases carrying
the drill's mark (a comment set at creation) are ever replaced or dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    ArchiveError,
    compression_of,
    open_decompressor,
    read_all,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.chain import restore_chain
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.extract import scan_archive, scan_tar
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.dump import (
    DATABASE_ERRORS,
    DumpError,
    check_finished,
    connection_args,
    connection_env,
    count_tables,
    find_program,
    server_major,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import (
    MANIFEST_SUFFIX,
    ManifestError,
    load_manifest,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.os_user import client_process_options, needs_switch
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
    StatementRunner,
    connect,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms, format_argv
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.catalog import snapshots
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.fingerprint import (
    compare as compare_fingerprints,
    describe as describe_differences,
    newer_privileges,
    roles_needed,
    take as take_fingerprint,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.roles import (
    database_sql,
    grant_roles,
    mask_password,
    parse_database_block,
    parse_globals,
    quote_ident,
    roles_named,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.verify import (
    ToolFeed,
    VerifyError,
    compare_scan,
    verify_snapshot,
)

try:
    from psycopg2 import sql
except ImportError:
    pass  # connect() reports the missing library

EXACT_EVERYWHERE = 10 ** 18
# The mark set on every scratch database at creation; only databases carrying it are ever replaced or dropped.
DRILL_MARK = 'engineroom.maintenance restore drill '
DATABASE_MARK_SQL = "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = %s"
MAX_IDENTIFIER = 63


class DrillFailure(Exception):
    """A drill that cannot go on: the reason, phrased for the operator."""


# pg_restore: "... ERROR:  <cause>" then "Command was: <statement>"; psql -b (--echo-errors): "ERROR:  <cause>" then
# "STATEMENT:  <statement>". A statement runs on over the following lines up to a blank one or the next message.
FAILED_CAUSE = re.compile(r'ERROR:\s+(.*)$')
FAILED_STATEMENT = re.compile(r'^(?:psql:[^:]*:\d+: )?(?:Command was|STATEMENT):\s*(.*)$')
TOOL_MESSAGE = ('pg_restore:', 'psql:', 'ERROR:', 'WARNING:', 'STATEMENT:', 'Command was:')


class RestoreError(DumpError):
    """pg_restore or psql failed on statements of the dump; ``failed`` names them (statement, error)."""

    def __init__(self, message, failed):
        super().__init__(message)
        self.failed = failed


def failed_statements(stderr, limit=5):
    """[dict(statement, error)] of the statements a restore tool reports as failed (one line each, shortened)."""
    text = stderr.decode('utf-8', 'replace') if isinstance(stderr, bytes) else stderr or ''
    lines = text.splitlines()
    failed, cause = [], None
    for index, line in enumerate(lines):
        statement = FAILED_STATEMENT.match(line)
        if statement and cause is not None:
            parts = [statement.group(1)]
            for more in lines[index + 1:]:
                if not more.strip() or more.startswith(TOOL_MESSAGE):
                    break
                parts.append(more)
            failed.append(dict(statement=' '.join(' '.join(parts).split())[:300], error=cause))
            cause = None
        elif FAILED_CAUSE.search(line):
            cause = FAILED_CAUSE.search(line).group(1).strip()
    return failed[:limit]


def check_restored(name, exit_code, stderr):
    """:func:`check_finished` for a restore: a failure names the statements that failed (:class:`RestoreError`)."""
    try:
        check_finished(name, exit_code, stderr)
    except DumpError as exc:
        failed = failed_statements(stderr)
        if not failed:
            raise
        words = '; '.join('%s (%s)' % (item['statement'], item['error']) for item in failed)
        hint = ''
        if any(item['error'].startswith('role ') and item['error'].endswith('does not exist') for item in failed):
            hint = ': create the role, set create_missing_roles: true, or no_owner: true (custom/directory dumps)'
        raise RestoreError('%s exited with code %s at the statement %s%s' % (name, exit_code, words, hint), failed) from exc


def feed_file(path, compression, feed):
    """Decompress an artifact into a ToolFeed-like writer."""
    with open(path, 'rb') as handle:
        read_all(open_decompressor(compression, handle), feed.write)


def restore_dump(path, fmt, compression, params, scratch_db, programs, jobs, env, executed, owners=False):
    """Load a dump into ``scratch_db``: pg_restore for custom/directory (``-j`` when seekable), psql for plain.

    A directory dump is given as its extracted directory. ``owners``:
    restore owners and ACLs (the roles must exist), else ``--no-owner
    --no-acl``.

    ``compression`` is the artifact's outer layer (``compression_of`` its
    name); ``programs`` maps ``pg_restore``/``psql`` to their paths.
    """
    target = connection_args(params, scratch_db)
    ownership = [] if owners else ['--no-owner', '--no-acl']
    os_user = params.get('login_os_user')
    # As another OS user pg_restore cannot open the root-owned file: it reads the dump on stdin instead.
    by_path = fmt == 'directory' or (fmt == 'custom' and compression == 'none' and not needs_switch(os_user))
    if fmt == 'directory' and needs_switch(os_user):
        raise DumpError('a directory-format dump cannot be restored with login_os_user %r (pg_restore would need to '
                        'read root-only files): take custom-format snapshots for peer-authenticated hosts' % os_user)
    if by_path:
        argv = [programs['pg_restore']] + ownership + ['--exit-on-error', '-j', str(jobs)] + target + [path]
        executed.append(format_argv(argv))
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                                   **client_process_options(os_user, env))
        check_restored('pg_restore', completed.returncode, completed.stderr)
        return
    if fmt == 'custom':
        name, argv = 'pg_restore', [programs['pg_restore']] + ownership + ['--exit-on-error'] + target
    else:
        name, argv = 'psql', [programs['psql'], '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction',
                              '--echo-errors', '-o', os.devnull] + target
    executed.append(format_argv(argv) + ' < ' + os.path.basename(path))
    feed = ToolFeed(argv, env, os_user)
    feed_file(path, compression, feed)
    try:
        feed.finish(name)
    except DumpError:
        check_restored(name, feed.proc.returncode, feed.stderr)
        raise
    if feed.closed_early:
        raise DumpError('%s stopped reading %s before its end' % (name, path))


def compare_tables(expected, actual, tolerance_pct, compared=None):
    """Per table: expected and restored rows, and whether they match.

    ``compared`` says how (``content``, ``counts_only``); without it a table
    with an exact count is compared ``exact`` and one with an estimate
    ``estimate`` (within ``tolerance_pct``).
    """
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
        rows.append(dict(table=table, expected=want['rows'] if want else None, actual=got, exact=exact, match=match,
                         compared=compared or ('exact' if exact else 'estimate')))
    return rows


def mark_differences(tables, differences):
    """A table with a fingerprint difference (its content) does not match either."""
    differing = set(item['name'] for item in differences if item['kind'] == 'table')
    for row in tables:
        if row['table'] in differing:
            row['match'] = False
    return tables


def selection_prefix(params):
    return params['prefix'] or params['database'] or 'snapshot'


def run_ddl(runner, statement):
    """Run a statement that returns no rows (CREATE/DROP DATABASE), recorded like the runner's own."""
    with runner.conn.cursor() as cursor:
        runner.executed.append(statement.as_string(cursor))
        cursor.execute(statement)


def is_marked(comment):
    """Whether a database comment carries the drill's mark (its last line; the dumped database's comment before it)."""
    return bool(comment) and comment.splitlines()[-1].startswith(DRILL_MARK)


def unmarked(comment):
    """A scratch database's comment without the drill's mark: the restored comment, or None."""
    if not is_marked(comment):
        return comment
    return comment.rpartition('\n')[0] if '\n' in comment else None


class RestoreDrill:
    """One drill of ``params`` (the module's options), filling ``result`` (the module's result dict).

    A database snapshot needs a server connection (:meth:`attach`); a
    files-only archive does not.
    """

    def __init__(self, params, result):
        self.params = params
        self.result = result
        self.executed = result['executed_commands']
        self.conn = self.runner = None
        self.programs = dict(pg_restore=None)
        self.path = self.manifest = self.scratch_db = self.scratch_dir = None
        self.created = False
        self.leftover = False
        self.owners = False
        self.quiet_events = False
        self.mark = None
        self.deferred = []

    # -- choosing and verifying -------------------------------------------------------

    def pick(self):
        """The snapshot to drill (path and manifest), or DrillFailure naming what is missing."""
        params = self.params
        if params['snapshot'] != 'latest':
            self.path = params['snapshot']
            try:
                self.manifest = load_manifest(self.path + MANIFEST_SUFFIX)
            except ManifestError as exc:
                raise DrillFailure('%s is not a snapshot this module can trust: %s' % (self.path, exc)) from exc
        else:
            if not params['dest']:
                raise DrillFailure('snapshot latest needs dest: the directory holding the snapshots')
            found = self._candidates()
            if not found:
                raise DrillFailure('no %s snapshot of prefix %s with a manifest in %s: take one with snapshot_archive '
                                   'first' % (params['tier'], selection_prefix(params), params['dest']))
            self.path, self.manifest = found[-1]['path'], found[-1]['manifest']
        self.result['snapshot'] = self.path
        return self.path, self.manifest

    def attach(self, conn):
        """The server connection a database snapshot needs; finds pg_restore and psql of its major version."""
        self.conn = conn
        self.runner = StatementRunner(conn)
        self._find_programs()

    def _candidates(self):
        """The snapshots O(snapshot=latest) chooses from, oldest first."""
        params = self.params
        return snapshots(params['dest'], selection_prefix(params), params['tier'], params['database'])

    def _find_programs(self):
        major = self.conn.server_version // 10000
        try:
            pg_restore = self.params['pg_restore_path'] or find_program('pg_restore', major)
            self.programs = dict(pg_restore=pg_restore, psql=find_program('psql', major, near=pg_restore))
        except DumpError as exc:
            raise DrillFailure(str(exc)) from exc

    def verify(self):
        """Verify the snapshot before anything is restored; returns the verification detail."""
        try:
            detail = verify_snapshot(self.path, self.manifest, self.programs['pg_restore'], self.executed)
        except (VerifyError, DumpError) as exc:
            message = 'refusing to restore: %s' % exc
            if self.params['snapshot'] == 'latest':
                alternative = self.result['alternative'] = self._verified_alternative()
                message += ('; the newest older snapshot that verifies is %s: drill it with snapshot: %s' % (
                    alternative, alternative) if alternative else '; no older snapshot of this selection verifies either')
            raise DrillFailure(message) from exc
        self.result['verified'] = 'sha256 and readability match the manifest (%s)' % ', '.join(
            '%s %s' % (key, value) for key, value in sorted(detail.items()))
        return detail

    def _verified_alternative(self):
        """The newest snapshot older than the refused latest one that verifies, or None.

        Named in the refusal so that the operator can drill it on purpose; the
        drill itself never falls back to an older snapshot unasked.
        """
        for snap in reversed([snap for snap in self._candidates() if snap['path'] != self.path]):
            try:
                verify_snapshot(snap['path'], snap['manifest'], self.programs['pg_restore'], self.executed)
            except (VerifyError, DumpError):
                continue
            return snap['path']
        return None

    # -- the scratch database ---------------------------------------------------------

    def check_scratch(self):
        """Choose the scratch database; refuse the dumped one, the login one, or an existing one without the mark."""
        params, manifest = self.params, self.manifest
        if not manifest.get('database'):
            return None
        source = manifest['database'].get('name')
        name = params['scratch_database'] or params['scratch_prefix'] + (source or 'files')
        self.scratch_db = scratch_db = name[:MAX_IDENTIFIER]
        if scratch_db in (source, params['login_db'] or 'postgres'):
            what = 'dumped database' if scratch_db == source else 'login database (login_db)'
            raise DrillFailure('refusing scratch database %s: it is the %s, which the drill would drop; choose another '
                               'scratch_database or scratch_prefix' % (scratch_db, what))
        try:
            marks = self.runner.rows(DATABASE_MARK_SQL, (scratch_db,))
        except DATABASE_ERRORS as exc:
            raise DrillFailure('cannot check the scratch database %s: %s; check the login role can read pg_database'
                               % (scratch_db, str(exc).strip())) from exc
        if marks and not is_marked(marks[0][0]):
            raise DrillFailure('refusing to restore into existing database %s: it does not carry the mark of a restore '
                               'drill (comment %r...); drop it yourself or choose another scratch_database'
                               % (scratch_db, DRILL_MARK.strip()))
        self.leftover = bool(marks)
        self.owners = self._check_roles()
        self.quiet_events = bool(self.runner.scalar('SELECT rolsuper FROM pg_roles WHERE rolname = current_user'))
        self.result['event_triggers_disabled'] = self.quiet_events
        return scratch_db

    def _check_roles(self):
        """Whether to restore owners and ACLs: with a fingerprint (it names the roles), a non-plain dump, no no_owner.

        Roles the snapshot needs that this server lacks fail the drill,
        named, unless ``no_owner`` asks for a restore without owners and ACLs.
        """
        database = self.manifest['database']
        fingerprint = database.get('fingerprint')
        plain = (database.get('format') or self.manifest['artifact']['format']) == 'plain'
        if not fingerprint or (plain and not database.get('owners')):
            return False  # plain dumps of earlier versions were written with --no-owner
        if self.params['no_owner']:
            if plain:
                raise DrillFailure('no_owner cannot apply to a plain dump: its owners and grants are SQL statements '
                                   'that psql runs; create the roles it needs instead')
            return False
        needed = roles_needed(fingerprint)
        rows = self.runner.rows('SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)', (needed,))
        present = set(row[0] for row in rows)
        missing = [role for role in needed if role not in present]
        if missing and not self.params['create_missing_roles']:
            raise DrillFailure('the snapshot needs roles this server lacks: %s; create them (their owners and grants '
                               'are part of the restore), set create_missing_roles: true to create them from the '
                               'snapshot\'s globals artifact, or no_owner: true to restore without owners and ACLs'
                               % ', '.join(missing))
        if missing:
            self._create_roles(missing)
        return True

    def _create_roles(self, missing):
        """Create ``missing`` roles from the snapshot's globals artifact (verified with the snapshot), memberships too."""
        recorded = self.manifest['database'].get('globals')
        if not recorded:
            raise DrillFailure('create_missing_roles needs the snapshot\'s globals artifact, and %s has none (written '
                               'before globals were recorded, or from a container): create the roles %s yourself'
                               % (self.path, ', '.join(missing)))
        with open(os.path.join(os.path.dirname(self.path), recorded['file']), encoding='utf-8') as handle:
            blocks, grants = parse_globals(handle.read())
        unknown = [role for role in missing if role not in blocks]
        if unknown:
            raise DrillFailure('the globals artifact of %s does not define the roles %s' % (self.path, ', '.join(unknown)))
        with self.runner.conn.cursor() as cursor:
            for role in missing:
                for statement in blocks[role]:
                    self.runner.executed.append(mask_password(statement))
                    cursor.execute(statement)
            names = set(row[0] for row in self.runner.rows('SELECT rolname FROM pg_roles'))
            for statement in grants:
                role, member = grant_roles(statement)
                if (role in missing or member in missing) and role in names and member in names:
                    self.runner.executed.append(statement)
                    cursor.execute(statement)
        self.result['roles_created'] = missing

    def _state(self):
        return ((self.manifest.get('database') or {}).get('fingerprint') or {}).get('database')

    def _create_scratch(self):
        """The scratch database, with the dumped database's encoding and locale when the snapshot recorded them."""
        scratch_db = self.scratch_db
        if self.leftover:
            run_ddl(self.runner, sql.SQL('DROP DATABASE {} WITH (FORCE)').format(sql.Identifier(scratch_db)))
        statement = sql.SQL('CREATE DATABASE {}').format(sql.Identifier(scratch_db))
        state = self._state()
        if state:
            statement = sql.SQL(' ').join([statement, sql.SQL('TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}').format(
                sql.Literal(state['encoding']), sql.Literal(state['collate']), sql.Literal(state['ctype']))])
            if self.conn.server_version >= 150000 and state['locale_provider'] in ('libc', 'icu'):
                statement = sql.SQL(' ').join([statement, sql.SQL('LOCALE_PROVIDER ' + state['locale_provider'])])
            if state['locale_provider'] == 'icu' and state.get('icu_locale'):
                statement = sql.SQL(' ').join([statement, sql.SQL('ICU_LOCALE {}').format(sql.Literal(state['icu_locale']))])
        run_ddl(self.runner, statement)
        self.created = True
        self.mark = DRILL_MARK + uuid.uuid4().hex
        self._set_mark()

    def _set_mark(self, comment=None):
        """Comment the scratch database with the drill's mark, after the dumped database's own ``comment``."""
        run_ddl(self.runner, sql.SQL('COMMENT ON DATABASE {} IS {}').format(
            sql.Identifier(self.scratch_db), sql.Literal('%s\n%s' % (comment, self.mark) if comment else self.mark)))

    # -- restoring and comparing ------------------------------------------------------

    def restore(self):
        """Extract and/or restore into the scratch places; returns the files comparison (full tier) or None."""
        try:
            return self._restore()
        except (ArchiveError, VerifyError, DumpError) as exc:
            self.result['failed_statements'] = getattr(exc, 'failed', [])
            raise DrillFailure('restore drill of %s failed: %s' % (self.path, exc)) from exc
        except OSError as exc:
            raise DrillFailure('restore drill of %s failed writing the scratch files: %s (%s)'
                               % (self.path, exc.strerror or exc, exc.filename)) from exc
        except DATABASE_ERRORS as exc:
            raise DrillFailure('restore drill of %s failed on the server preparing scratch database %s: %s; the login '
                               'role needs CREATEDB and template1 must be free of other sessions'
                               % (self.path, self.scratch_db, str(exc).strip())) from exc

    def _restore(self):
        params, manifest, path = self.params, self.manifest, self.path
        database = manifest.get('database')
        files = None
        if manifest['tier'] == 'full':
            self.scratch_dir = tempfile.mkdtemp(prefix=params['scratch_prefix'], dir=params['scratch_dir'])
            files = restore_chain(path, manifest, self.scratch_dir) if manifest.get('incremental') else None
        if manifest['tier'] == 'full' and not files:
            scan = scan_archive(path, manifest['artifact']['format'], self.scratch_dir)[0]
            compare_scan(path, manifest, scan)
            expected_files = manifest.get('files') or {}
            files = dict(expected_count=expected_files.get('count'), restored_count=scan.file_count,
                         expected_bytes=expected_files.get('total_bytes'), restored_bytes=scan.file_bytes,
                         checksums_checked=len(expected_files.get('sha256') or {}),
                         absolute_links=scan.absolute_links, match=True)
        if manifest['tier'] == 'full':
            dump_file = os.path.join(self.scratch_dir, database['member']) if database else None
        elif manifest['artifact']['format'] == 'directory':
            self.scratch_dir = tempfile.mkdtemp(prefix=params['scratch_prefix'], dir=params['scratch_dir'])
            scan_tar(path, compression_of(path), self.scratch_dir)
            dump_file = os.path.join(self.scratch_dir, 'dump')
        else:
            dump_file = path
        if database:
            self._create_scratch()
            env = dict(os.environ, **connection_env(params))
            if self.quiet_events:  # event (and ordinary) triggers do not fire: the restore changes no data itself
                env['PGOPTIONS'] = (env.get('PGOPTIONS', '') + ' -c session_replication_role=replica').strip()
            restore_dump(dump_file, database.get('format') or manifest['artifact']['format'],
                         compression_of(dump_file), params, self.scratch_db, self.programs, params['jobs'],
                         env, self.executed, self.owners)
            self._apply_database_state()
        return files

    def _database_statements(self):
        """(dumped database's name, statements) of its database-level state: the globals artifact's database block, or
        (snapshots written before it held one) statements made from the fingerprint's record."""
        recorded = self.manifest['database'].get('globals')
        if recorded:
            with open(os.path.join(os.path.dirname(self.path), recorded['file']), encoding='utf-8') as handle:
                name, lines = parse_database_block(handle.read())
            if name is not None:
                return name, lines
        state, name = self._state(), self.manifest['database'].get('name')
        return (name, database_sql(state, name)) if state else (name, [])

    def _apply_database_state(self):
        """The dumped database's owner, comment, ACL and settings on the scratch database, after the restore.

        Owner and ACL only when owners are restored; statements naming roles
        this server lacks are left out (the comparison names what differs);
        the connection limit waits for the comparison's connection
        (:meth:`compare`), so that a limit of 0 cannot lock it out.
        """
        source, lines = self._database_statements()
        roles = set(row[0] for row in self.runner.rows('SELECT rolname FROM pg_roles'))
        quoted = 'DATABASE ' + quote_ident(source or '')
        self.deferred, commented = [], False
        for line in lines:
            ownership = ' OWNER TO ' in line or line.startswith(('GRANT ', 'REVOKE ', 'SET ROLE '))
            if (ownership and not self.owners) or any(role not in roles for role in roles_named(line)):
                continue
            line = line.replace(quoted, 'DATABASE ' + quote_ident(self.scratch_db), 1)
            if ' WITH CONNECTION LIMIT ' in line:
                self.deferred.append(line)
                continue
            commented = commented or line.startswith('COMMENT ON ')
            run_ddl(self.runner, sql.SQL(line))
        if commented:  # the dumped database's comment, and the mark after it
            self._set_mark(self.runner.scalar("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                              "WHERE datname = %s", (self.scratch_db,)))

    def compare(self):
        """Count and fingerprint the restored database; compare with the manifest.

        Returns dict(tables, differences, fingerprint, note). A schema
        version 1 manifest (no fingerprint, unquoted keys) is compared by row
        counts as far as it goes, and the note says so.
        """
        database = self.manifest.get('database')
        if not database:
            return dict(tables=[], differences=[], fingerprint=None, note=None)
        legacy = self.manifest.get('schema_version', 1) < 2
        expected = database.get('fingerprint')
        try:
            scratch_conn = connect(dict(self.params, login_db=self.scratch_db))
        except PostgresError as exc:
            raise DrillFailure('restored database cannot be opened: %s' % exc) from exc
        scratch_runner = StatementRunner(scratch_conn)
        try:
            for line in self.deferred:  # the connection limit, now that the comparison is connected
                run_ddl(self.runner, sql.SQL(line))
            actual = count_tables(scratch_runner, EXACT_EVERYWHERE, legacy_keys=legacy)
            restored = take_fingerprint(scratch_runner, expected['mode'], like=expected) if expected else None
        finally:
            scratch_conn.close()
        if restored and restored.get('database'):
            restored['database']['comment'] = unmarked(restored['database']['comment'])
        self.executed.extend(scratch_runner.executed)
        source_major = server_major(database['server_version']) if database.get('server_version') else None
        ignored = newer_privileges(source_major, self.conn.server_version // 10000)
        differences = compare_fingerprints(expected, restored, owners=self.owners, ignore_privileges=ignored) if expected else []
        compared = dict(full='content', counts='counts_only').get(expected['mode']) if expected else None
        tables = mark_differences(compare_tables(database.get('tables') or {}, actual,
                                                 self.params['estimate_tolerance_pct'], compared), differences)
        note = None
        if legacy:
            note = ('manifest schema version 1: no fingerprint recorded, only row counts compared (keys unquoted); '
                    'take a new snapshot for content fingerprints')
        elif not expected:
            note = 'the snapshot holds no fingerprint (fingerprint: none, or a container dump): only row counts compared'
        elif not self.owners:
            note = 'restored without owners and ACLs (no_owner, or a plain dump): owners and grants not compared'
        return dict(tables=tables, differences=differences, fingerprint=expected['mode'] if expected else None,
                    note=note)

    def cleanup(self):
        """Drop the scratch database and directory unless kept; hand the server statements to the result."""
        if not self.params['keep']:
            if self.created:
                run_ddl(self.runner, sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(
                    sql.Identifier(self.scratch_db)))
            if self.scratch_dir:
                shutil.rmtree(self.scratch_dir, ignore_errors=True)
        if self.conn is not None:
            self.executed[:0] = self.runner.executed
            self.runner.executed = []

    def run(self):
        """Restore and compare (after :meth:`pick`, :meth:`verify`, :meth:`check_scratch`); returns the report."""
        started = time.monotonic()
        try:
            files = self.restore()
            restored_at = time.monotonic()
            restore_ms = elapsed_ms(started)
            compare_started = time.monotonic()
            outcome = self.compare()
        finally:
            self.cleanup()
        outcome.update(files=files, restored_at=restored_at, restore_ms=restore_ms,
                       compare_ms=elapsed_ms(compare_started))
        return outcome


def drill_summary(path, outcome, rto_s, kept):
    """The one-line verdict of a drill: what was restored, whether it matches (naming the first differences)."""
    tables, files, differences = outcome['tables'], outcome['files'], outcome['differences']
    mismatched = [row for row in tables if not row['match']]
    what = '%d tables, %d rows' % (len(tables), sum(row['actual'] or 0 for row in tables))
    if files:
        what += ', %d files / %d bytes' % (files['restored_count'], files['restored_bytes'])
    if outcome['fingerprint']:
        what += ' (fingerprint %s)' % outcome['fingerprint']
    verdict = 'all match'
    if differences:
        verdict = 'MISMATCH: %s' % describe_differences(differences)
    elif mismatched:
        verdict = 'MISMATCH in %s' % ', '.join('%s (manifest %s, restored %s)' % (row['table'], row['expected'], row['actual'])
                                               for row in mismatched)
    return 'restore drill of %s: %s, %s; usable after %.1f s%s' % (
        os.path.basename(path), what, verdict, rto_s, ' (kept %s)' % kept if kept else '')

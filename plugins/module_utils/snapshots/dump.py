# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_dump as a stream whose end is checked: locally, or inside a container through the Docker API.

A dump counts only when pg_dump exited 0 and its stderr holds no error line;
anything else raises :class:`DumpError`, so an interrupted dump can never pass
for a short one. Locally, pg_dump reads from a snapshot exported by the
module's own connection (``--snapshot``), and the per-table row counts of the
manifest are taken in that same snapshot: they describe exactly what the dump
holds. In a container, the versions are read through ``psql`` in the
container before the dump, and the counts by a second ``psql`` beside it.

pg_dump 15 compresses only with zlib; zstd is applied outside it (see
docs/DESIGN.md), which keeps the file restorable through a pipe.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import threading

from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.client import (
    DockerExecError,
    ExecStream,
    docker_client,
    running_container,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.os_user import client_process_options
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
    StatementRunner,
    connect,
    describe_target,
    ssl_environment,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import format_argv
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.fingerprint import (
    qualified,
    roles_needed,
    take as take_fingerprint,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.roles import (
    SUPERUSER_SQL,
    database_block,
    globals_sql,
)

try:
    import psycopg2
    # Server errors of a query (lock timeout, permission denied), caught next to PostgresError by the modules.
    DATABASE_ERRORS = (psycopg2.Error,)
except ImportError:
    DATABASE_ERRORS = ()  # connect() reports the missing library before any query runs

try:
    import docker.errors
    DOCKER_ERRORS = docker.errors.DockerException
except ImportError:
    DOCKER_ERRORS = ()  # docker_client() reports the missing library before any exec

CHUNK_BYTES = 1024 * 1024
PG_BIN_TEMPLATE = '/usr/lib/postgresql/%d/bin'
VERSION_RE = re.compile(r'\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?')
ERROR_LINE = re.compile(r'(^|\s)(error|fatal|panic):', re.IGNORECASE)
COUNT_SETTING = 'engineroom.exact_count_max_rows'

# Per-table row counts in one constant statement: exact (count(*)) for tables
# whose estimate is below the threshold (or never analyzed, reltuples -1),
# the planner's estimate beyond. Identifiers are quoted by the server (%I);
# the threshold comes from a session setting, so the same text runs through
# psycopg2 and through psql in a container.
TABLE_ROWS_SQL = (
    "SELECT n.nspname, c.relname, c.reltuples::bigint, "
    "CASE WHEN c.reltuples < current_setting('" + COUNT_SETTING + "')::float8 THEN "
    "(xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM ONLY %I.%I', n.nspname, c.relname), "
    "false, true, '')))[1]::text::bigint END "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
    "AND d.deptype = 'e') "
    "ORDER BY 1, 2"
)
# What a dump will roughly hold: the data of user tables (indexes are rebuilt, not dumped).
DATA_BYTES_SQL = (
    "SELECT coalesce(sum(pg_table_size(c.oid)), 0)::bigint FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
)
SERVER_VERSION_SQL = "SELECT current_setting('server_version')"
# In a container every query is an exec (three API calls): version and size come in one.
VERSION_AND_DATA_BYTES_SQL = "SELECT current_setting('server_version'), (" + DATA_BYTES_SQL + ")"
SET_COUNT_SQL = "SELECT set_config('" + COUNT_SETTING + "', %s, false)"
EXPORT_SNAPSHOT_SQL = 'SELECT pg_export_snapshot()'
LOCK_TIMEOUT_SQL = "SELECT set_config('lock_timeout', %s, false)"


def lock_timeout_setting(params):
    """``lock_timeout`` value (``<ms>ms``) from the ``lock_wait_timeout_s`` option, or None when not set."""
    seconds = params.get('lock_wait_timeout_s')
    return '%dms' % (seconds * 1000) if seconds else None


class DumpError(Exception):
    """pg_dump (or pg_restore/psql) failed, or its versions do not fit; phrased for an operator."""


def parse_version(text):
    """``pg_dump (PostgreSQL) 15.14 (Debian …)`` -> (15, '15.14'); None when not recognised."""
    match = VERSION_RE.search(text or '')
    if not match:
        return None
    full = match.group(1) + ('.' + match.group(2) if match.group(2) else '')
    return int(match.group(1)), full


def server_major(version):
    """'15.14' or '15.14 (Debian …)' -> 15."""
    return int(re.match(r'\d+', version.strip()).group(0))


def stderr_error(text):
    """The first error line of a tool's stderr, or None when it only warned."""
    for line in (text or '').splitlines():
        if ERROR_LINE.search(line):
            return line.strip()
    return None


def installed_clients(name):
    """``/usr/lib/postgresql/<major>/bin/<name>`` of every installed major version, newest first."""
    root = os.path.dirname(os.path.dirname(PG_BIN_TEMPLATE))
    try:
        majors = sorted((int(entry) for entry in os.listdir(root) if entry.isdigit()), reverse=True)
    except OSError:
        return []
    return [os.path.join(PG_BIN_TEMPLATE % found, name) for found in majors]


def find_program(name, major=None, near=None):
    """Path of a PostgreSQL client program: beside ``near``, in the server's major version directory, else the newest
    installed one (what Debian's pg_wrapper runs for a connection with -h, which the callers check), or PATH.

    PATH comes last because there ``pg_dump`` is Debian's pg_wrapper, which runs the client of the local cluster's
    version when no -h is given (``pg_dump --version``) and fails when that client is missing.
    """
    candidates = []
    if near:
        candidates.append(os.path.join(os.path.dirname(near), name))
    if major:
        candidates.append(os.path.join(PG_BIN_TEMPLATE % major, name))
    candidates.extend(installed_clients(name))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if not found:
        raise DumpError('%s not found: install postgresql-client-%s or set pg_dump_path' % (name, major or ''))
    return found


def connection_env(params):
    """libpq environment for a client program: the password never goes on the command line."""
    env = {}
    if params.get('login_password'):
        env['PGPASSWORD'] = params['login_password']
    env['PGSSLMODE'] = params.get('ssl_mode') or 'prefer'
    env.update(ssl_environment(params))
    env['PGCONNECT_TIMEOUT'] = str(max(1, int(params.get('connect_timeout') or 10)))
    return env


def connection_args(params, database):
    """-h/-p/-U/-d arguments; inside a container an empty host means its local socket."""
    host = params.get('login_unix_socket') or params.get('login_host')
    args = []
    if host:
        args += ['-h', host]
    args += ['-p', str(params.get('login_port') or 5432), '-U', params.get('login_user') or 'postgres']
    args += ['-d', database]
    return args


def dump_format_args(fmt, compression, level):
    """pg_dump's own format/compression arguments.

    custom/directory + gzip use pg_dump's built-in zlib (seekable for
    ``pg_restore -j``); every other combination dumps uncompressed (``-Z0``)
    and the module compresses the stream (or the directory's tar).
    """
    if fmt in ('custom', 'directory'):
        args = ['--format=%s' % fmt, '-Z%d' % (level if compression == 'gzip' else 0)]
    else:
        # Into an empty database (psql -v ON_ERROR_STOP=1 --single-transaction), owners and grants included:
        # --clean's drop section could not be replayed there (a view over a GROUP BY on a primary key is
        # "replaced" before its schema exists).
        args = ['--format=plain']
    return args


def table_rows(rows, legacy_keys=False):
    """Manifest ``tables`` from (schema, table, estimate, exact-or-None) rows.

    Keys are quoted qualified names (:func:`fingerprint.qualified`);
    ``legacy_keys`` gives the unquoted ``schema.table`` of schema version 1
    manifests, to compare with those.
    """
    tables = {}
    for schema, table, estimate, exact in rows:
        key = '%s.%s' % (schema, table) if legacy_keys else qualified(schema, table)
        if exact is not None:
            tables[key] = dict(rows=int(exact), exact=True)
        else:
            tables[key] = dict(rows=max(int(estimate), 0), exact=False)
    return tables


def count_tables(runner, exact_count_max_rows, legacy_keys=False):
    """Manifest ``tables`` of the database ``runner`` is connected to (exact below the threshold, ``ONLY``)."""
    runner.scalar(SET_COUNT_SQL, (str(exact_count_max_rows),))
    return table_rows(runner.rows(TABLE_ROWS_SQL), legacy_keys)


def tables_and_fingerprint(runner, exact_count_max_rows, mode, passwords=False, database=None):
    """(manifest ``tables``, fingerprint or None): with a fingerprint, its exact counts are the tables' counts.

    The fingerprint carries (under ``_globals``, taken out by the writer) the
    globals artifact's text: the roles and the database-level state of
    ``database``. ``passwords``: with the roles' password hashes
    (``no_role_passwords: false``).
    """
    if mode == 'none':
        return count_tables(runner, exact_count_max_rows), None
    fingerprint = take_fingerprint(runner, mode)
    fingerprint['_globals'] = globals_sql(runner, roles_needed(fingerprint), passwords) + database_block(
        fingerprint['database'], database)
    tables = dict((key, dict(rows=value['rows'], exact=True)) for key, value in fingerprint['tables'].items())
    return tables, fingerprint


class _Process:
    """A local child whose stdout is streamed and whose stderr is collected by a thread."""

    def __init__(self, argv, env, name, os_user=''):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, close_fds=True, **client_process_options(os_user, env))
        self.stderr = b''
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self):
        for line in self.proc.stderr:
            self.stderr = (self.stderr + line)[-65536:]

    def chunks(self):
        while True:
            chunk = self.proc.stdout.read(CHUNK_BYTES)
            if not chunk:
                break
            yield chunk
        self.proc.wait()
        self._reader.join()

    @property
    def exit_code(self):
        return self.proc.returncode

    def abort(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def check_finished(name, exit_code, stderr):
    """Raise :class:`DumpError` unless the tool exited 0 with no error on stderr."""
    text = (stderr.decode('utf-8', 'replace') if isinstance(stderr, bytes) else stderr or '').strip()
    error = stderr_error(text) or (text.splitlines()[-1] if text else 'no message')
    if exit_code != 0:
        if exit_code is not None and exit_code < 0:
            cause = 'was killed by signal %d' % -exit_code
        else:
            cause = 'exited with code %s' % exit_code
        raise DumpError('%s %s (%s): the output is incomplete and was discarded' % (name, cause, error))
    if stderr_error(text):
        raise DumpError('%s reported an error although it exited 0 (%s): the output was discarded' % (name, error))


class LocalSource:
    """The database reached from this host: psycopg2 for metadata, a local pg_dump for the data."""

    where = 'local'
    compress_threads = -1  # zstd workers for the dump's stream: one per core beside the local pg_dump

    def __init__(self, params, database, pg_dump_path=None):
        self.params = dict(params, login_db=database)
        self.database = database
        try:
            self.conn = connect(self.params)
        except PostgresError as exc:
            if 'database "%s" does not exist' % database in str(exc):
                raise DumpError('database %r does not exist on %s: check the database option'
                                % (database, describe_target(self.params))) from exc
            raise
        self.runner = StatementRunner(self.conn)
        self.executed = self.runner.executed
        if lock_timeout_setting(params):  # the size query and row counts must not wait forever behind a lock either
            self.runner.scalar(LOCK_TIMEOUT_SQL, (lock_timeout_setting(params),))
        self.server_version = self.runner.scalar(SERVER_VERSION_SQL)
        self.server_major = self.conn.server_version // 10000
        self.pg_dump = pg_dump_path or find_program('pg_dump', self.server_major)
        self.pg_dump_version = self._check_pg_dump()

    def _check_pg_dump(self):
        argv = [self.pg_dump, '--version']
        self.executed.append(format_argv(argv))
        try:
            out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=30)
        except OSError as exc:
            raise DumpError('cannot run %s: %s (set pg_dump_path to a PostgreSQL %d client)'
                            % (self.pg_dump, exc.strerror or exc, self.server_major)) from exc
        said = out.stdout.decode('utf-8', 'replace') or out.stderr.decode('utf-8', 'replace')
        return check_pg_dump_version(self.pg_dump, said, self.server_version)

    def data_bytes(self):
        return int(self.runner.scalar(DATA_BYTES_SQL))

    def close(self):
        self.conn.close()

    def dump(self, dump_args, exact_count_max_rows, fingerprint='none'):
        """Start pg_dump in a snapshot of our own; return a :class:`DumpRun` (rows counted, fingerprint taken meanwhile).

        The counts and the fingerprint run on this connection, in the very
        snapshot pg_dump reads (``--snapshot``).
        """
        passwords = fingerprint != 'none' and self.params.get('no_role_passwords') is False
        if passwords and not self.runner.scalar(SUPERUSER_SQL):
            raise DumpError('no_role_passwords: false needs a superuser login (role passwords are read from pg_authid): '
                            'log in as one, or leave no_role_passwords at true')
        self.conn.autocommit = False
        self.conn.set_session(isolation_level='REPEATABLE READ', readonly=True)
        snapshot = self.runner.scalar(EXPORT_SNAPSHOT_SQL)
        argv = [self.pg_dump] + dump_args + ['--snapshot=%s' % snapshot] + connection_args(self.params, self.database)
        self.executed.append(format_argv(argv))
        env = dict(os.environ, **connection_env(self.params))
        process = _Process(argv, env, 'pg_dump', self.params.get('login_os_user'))
        return DumpRun(process, 'pg_dump',
                       lambda: tables_and_fingerprint(self.runner, exact_count_max_rows, fingerprint, passwords, self.database),
                       self.conn.commit)


def check_pg_dump_version(path, version_text, server_version):
    """pg_dump must be at least the server's major version; return its version string."""
    parsed = parse_version(version_text)
    if parsed is None:
        raise DumpError('%s did not report a PostgreSQL version (%r): point pg_dump_path at a real pg_dump'
                        % (path, version_text.strip()[:80]))
    major = server_major(server_version)
    if parsed[0] < major:
        raise DumpError('pg_dump %s (%s) is older than server %s: install postgresql-client-%d or set pg_dump_path'
                        % (parsed[1], path, server_version, major))
    return parsed[1]


class ContainerSource:
    """The database inside a container: psql and pg_dump run there through the Docker API.

    Each exec costs a few API round trips (about 60 ms here), so the work
    before pg_dump starts is kept to two execs run side by side (versions
    and size in one psql; ``pg_dump --version`` on a client of its own);
    the row counts run beside the dump (see :meth:`dump`).
    """

    where = 'container'
    # zstd workers for the dump's stream (``_archive.open_compressor``): one zstd thread outpaces the Docker
    # stream (about 350 MB/s against 100-130 MB/s here), so worker threads only add hand-offs and contend with
    # the engine for the cores (measured 2.34 s against 2.63 s, scale 20).
    compress_threads = 0

    def __init__(self, params, database, container, container_user, docker_host):
        self.params = dict(params, login_db=database)
        self.database = database
        self.container = container
        self.user = container_user
        self.docker_host = docker_host
        self.executed = []
        self.client = docker_client(docker_host)
        running_container(self.client, container)
        self.pg_dump = 'pg_dump'
        version_argv = ['pg_dump', '--version']
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pg_dump_says = pool.submit(self._run, version_argv, alone=True)
            self.server_version, data_bytes = self._psql(VERSION_AND_DATA_BYTES_SQL, self._options({}))[0]
            self._record(version_argv)
            code, out, err = pg_dump_says.result()
        self._data_bytes = int(data_bytes)
        self.server_major = server_major(self.server_version)
        if code != 0:
            raise DumpError('pg_dump cannot run in container %r (exit %s): %s' % (
                container, code, err.decode('utf-8', 'replace').strip() or out.decode('utf-8', 'replace').strip()))
        self.pg_dump_version = check_pg_dump_version('pg_dump in container %s' % container,
                                                     out.decode('utf-8', 'replace'), self.server_version)

    def _record(self, argv):
        self.executed.append('docker exec %s %s' % (self.container, format_argv(argv)))

    def _exec(self, argv, extra_env=None, client=None):
        env = dict(connection_env(self.params), **(extra_env or {}))
        return ExecStream(client or self.client, self.container, argv, user=self.user, environment=env)

    def _run(self, argv, extra_env=None, alone=False):
        """(exit code, stdout, stderr) of a short command; ``alone``: on a Docker client of its own.

        Execs running at the same time (beside another exec or the dump's
        stream) must not share a client. Such a command is recorded in
        ``executed`` by its caller, so the order there does not depend on
        which thread came first.
        """
        if not alone:
            self._record(argv)
            return self._exec(argv, extra_env).run()
        client = docker_client(self.docker_host)
        try:
            return self._exec(argv, extra_env, client).run()
        finally:
            client.close()

    def _psql_argv(self, statement):
        return ['psql', '-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', statement] + connection_args(
            self.params, self.database)

    def _psql(self, statement, extra_env=None, alone=False):
        code, out, err = self._run(self._psql_argv(statement), extra_env, alone)
        if code != 0:
            message = err.decode('utf-8', 'replace').strip()
            raise DumpError('psql in container %r could not query database %r (exit %s): %s' % (
                self.container, self.database, code, message or 'no message'))
        return [line.split('\t') for line in out.decode('utf-8').splitlines() if line]

    def _options(self, settings):
        """PGOPTIONS for psql: the given settings plus lock_timeout from ``lock_wait_timeout_s``."""
        settings = dict(settings, lock_timeout=lock_timeout_setting(self.params))
        return {'PGOPTIONS': ' '.join('-c %s=%s' % item for item in sorted(settings.items()) if item[1] is not None)}

    def data_bytes(self):
        return self._data_bytes

    def close(self):
        self.client.close()

    def dump(self, dump_args, exact_count_max_rows, fingerprint='none'):  # pylint: disable=unused-argument
        """Start pg_dump, with the row counts taken beside it by a second exec on a client of its own.

        No fingerprint: it would not describe the dump's own snapshot.

        Counted first, the exact counts of the small tables held the dump
        back by their whole duration. Neither way are they in the dump's own
        snapshot (a container offers no shared one); :meth:`DumpRun.finish`
        reports a failed dump before a failed count.
        """
        count_env = self._options({COUNT_SETTING: exact_count_max_rows})
        self._record(self._psql_argv(TABLE_ROWS_SQL))
        argv = ['pg_dump'] + dump_args + connection_args(self.params, self.database)
        self._record(argv)
        stream = self._exec(argv)

        def count():
            rows = self._psql(TABLE_ROWS_SQL, count_env, alone=True)
            return table_rows((r[0], r[1], r[2], r[3] or None) for r in rows), None
        return DumpRun(stream, 'pg_dump in container %s' % self.container, count, lambda: None,
                       lambda: self._stop(stream))

    def _stop(self, stream):
        """Best effort after a local failure: end the exec's program (pg_dump), which Docker keeps running otherwise.

        Docker reports an exec's PID as the host sees it (not the container's
        own PID), so the signal is sent from here when the engine runs on this
        host (the usual unix socket; ``/proc/<pid>`` then shows the process
        inside the container's PID namespace). A new exec of ``kill`` is not
        used: while the dump's exec stream is open, further execs on the
        container can hang. Nothing is raised: the dump has already failed.
        """
        try:
            info = self.client.api.exec_inspect(stream.exec_id)
            pid = info.get('Pid') if info.get('Running') else None
            if not pid:
                return
            with open('/proc/%d/status' % pid) as handle:
                nested = [line for line in handle if line.startswith('NSpid:') and len(line.split()) > 2]
            if nested:  # the process lives in a container's PID namespace: the exec's own, not a reused host PID
                self.executed.append('kill -TERM %d  # pg_dump in container %s (PID %s there)'
                                     % (pid, self.container, nested[0].split()[-1]))
                os.kill(pid, signal.SIGTERM)
        except (OSError, DOCKER_ERRORS):
            pass


class DumpRun:
    """One running dump: iterate :meth:`chunks`, then :meth:`finish` checks the exit and returns the row counts."""

    def __init__(self, process, name, counter, release, stop=None):
        self.process = process
        self.name = name
        self._stop = stop
        self.source_bytes = 0
        self._release = release
        self._tables = None
        self.fingerprint = None
        self._count_error = None
        self._counter = threading.Thread(target=self._count, args=(counter,), daemon=True)
        self._counter.start()

    def _count(self, counter):
        try:
            self._tables, self.fingerprint = counter()
        except Exception as exc:  # pylint: disable=broad-except
            self._count_error = exc  # re-raised in finish(), in the module's thread

    def chunks(self):
        stream = self.process.stdout_chunks() if isinstance(self.process, ExecStream) else self.process.chunks()
        try:
            for chunk in stream:
                self.source_bytes += len(chunk)
                yield chunk
        except DockerExecError as exc:
            raise DumpError(str(exc)) from exc

    def finish(self):
        self._counter.join()
        self._release()
        check_finished(self.name, self.process.exit_code, self.process.stderr)
        if self._count_error is not None:
            raise DumpError('counting rows for the manifest failed: %s' % self._count_error)
        return self._tables

    def abort(self):
        self._counter.join()
        try:
            self._release()
        except Exception:  # pylint: disable=broad-except
            pass  # the connection is closed on the way out anyway
        if isinstance(self.process, _Process):
            self.process.abort()
        elif self._stop is not None:
            self._stop()


def open_source(params, database, container=None, container_user='postgres', docker_host=None, pg_dump_path=None):
    """A :class:`LocalSource` or :class:`ContainerSource`; DockerExecError/PostgresError/DumpError when unusable."""
    if container:
        try:
            return ContainerSource(params, database, container, container_user, docker_host)
        except DockerExecError as exc:
            raise DumpError(str(exc)) from exc
    return LocalSource(params, database, pg_dump_path)

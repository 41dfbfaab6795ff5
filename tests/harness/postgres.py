"""A throwaway PostgreSQL cluster: initdb in a directory, a free loopback port, stopped on request.

Used by the pytest fixtures and by the ``make demo`` sandbox alike. The server
refuses to run as root, so when we are root every server command runs as the
``postgres`` OS user, and the cluster directory is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time

import psycopg2
from psycopg2 import sql

from tests.harness.ports import free_port

PG_BIN_CANDIDATES = ('/usr/lib/postgresql/15/bin',)
SERVER_USER = 'postgres'


def find_pg_bin():
    """Directory holding initdb/pg_ctl: PG_BIN, Debian's PostgreSQL 15, or PATH."""
    for candidate in (os.environ.get('PG_BIN'),) + PG_BIN_CANDIDATES:
        if candidate and os.path.exists(os.path.join(candidate, 'initdb')):
            return candidate
    initdb = shutil.which('initdb')
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    raise RuntimeError('initdb not found: apt-get install postgresql-15 (or set PG_BIN)')


def _server_user_ids():
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(SERVER_USER)
    return entry.pw_uid, entry.pw_gid


class PostgresCluster:
    """One cluster under ``base_dir`` (data/, socket/, server.log, superuser password file)."""

    superuser = 'postgres'

    def __init__(self, base_dir, port=None, superuser_password='postgres-sandbox-pw', durable=False):
        self.base_dir = os.path.abspath(base_dir)
        self.data_dir = os.path.join(self.base_dir, 'data')
        self.socket_dir = os.path.join(self.base_dir, 'socket')
        self.log_file = os.path.join(self.base_dir, 'server.log')
        self.port = port or free_port()
        self.host = '127.0.0.1'
        self.superuser_password = superuser_password
        self.bin_dir = find_pg_bin()
        self._ids = _server_user_ids()
        # Tests trade durability for speed (fsync off); benchmarks measure a real server (durable=True).
        self.durable = durable

    # -- running server commands as the server's user ---------------------------------
    def _run(self, argv, check=True):
        """Run a PostgreSQL program from bin_dir; with ``check``, fail with its output."""
        ids = dict(user=self._ids[0], group=self._ids[1], extra_groups=[]) if self._ids else {}
        completed = subprocess.run([os.path.join(self.bin_dir, argv[0])] + argv[1:], cwd=self.base_dir, check=False,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **ids)
        if check and completed.returncode != 0:
            raise RuntimeError('%s exited %d: %s' % (argv[0], completed.returncode,
                                                     completed.stdout.decode('utf-8', 'replace')[-2000:]))
        return completed

    def _give_to_server_user(self, path):
        if self._ids:
            os.chown(path, *self._ids)

    @property
    def initialized(self):
        return os.path.exists(os.path.join(self.data_dir, 'PG_VERSION'))

    def init(self):
        """initdb with scram for TCP and trust on the cluster's private socket."""
        os.makedirs(self.base_dir, exist_ok=True)
        self._give_to_server_user(self.base_dir)
        os.chmod(self.base_dir, 0o755)
        for directory in (self.socket_dir,):
            os.makedirs(directory, exist_ok=True)
            self._give_to_server_user(directory)
        pwfile = os.path.join(self.base_dir, '.superuser-pw')
        with open(pwfile, 'w') as handle:
            handle.write(self.superuser_password + '\n')
        os.chmod(pwfile, 0o600)
        self._give_to_server_user(pwfile)
        try:
            self._run(['initdb', '-D', self.data_dir, '-U', self.superuser, '--pwfile', pwfile, '-E', 'UTF8',
                       '--no-locale', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync'])
        finally:
            os.unlink(pwfile)

    def start(self):
        if not self.initialized:
            self.init()
        options = '-p %d -k %s -c listen_addresses=%s -c fsync=%s -c max_connections=50' % (
            self.port, self.socket_dir, self.host, 'on' if self.durable else 'off')
        self._run(['pg_ctl', '-D', self.data_dir, '-l', self.log_file, '-o', options, '-w', '-t', '60', 'start'])
        return self

    def stop(self):
        if self.initialized and os.path.exists(os.path.join(self.data_dir, 'postmaster.pid')):
            self._run(['pg_ctl', '-D', self.data_dir, '-m', 'fast', '-w', 'stop'], check=False)

    @property
    def running(self):
        if not self.initialized:
            return False
        return self._run(['pg_ctl', '-D', self.data_dir, 'status'], check=False).returncode == 0

    # -- client side ------------------------------------------------------------------
    def connect(self, dbname='postgres', user=None):
        """Superuser (or ``user``) connection over the private socket, autocommit."""
        conn = psycopg2.connect(host=self.socket_dir, port=self.port, user=user or self.superuser, dbname=dbname)
        conn.autocommit = True
        return conn

    def execute(self, statement, params=None, dbname='postgres'):
        """Run one statement; return its rows (or None when it returns none)."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall() if cursor.description else None
        finally:
            conn.close()

    def create_role(self, name, password, *grants):
        """Create (or reset the password of) a login role, granted ``grants`` roles."""
        exists = self.execute('SELECT 1 FROM pg_roles WHERE rolname = %s', (name,))
        verb = 'ALTER' if exists else 'CREATE'
        self.execute(sql.SQL(verb + ' ROLE {} LOGIN PASSWORD %s').format(sql.Identifier(name)), (password,))
        for grant in grants:
            self.execute(sql.SQL('GRANT {} TO {}').format(sql.Identifier(grant), sql.Identifier(name)))

    def create_database(self, name, owner=None):
        if self.execute('SELECT 1 FROM pg_database WHERE datname = %s', (name,)):
            return
        statement = sql.SQL('CREATE DATABASE {}').format(sql.Identifier(name))
        if owner:
            statement = sql.SQL('{} OWNER {}').format(statement, sql.Identifier(owner))
        self.execute(statement)

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.execute('SELECT 1')
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

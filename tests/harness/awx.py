"""A real AWX 24.6.1 controller API on loopback, for tests: own PostgreSQL cluster, own redis, uwsgi.

No container images and no job execution (no receptor, no execution environments here): the API,
its validation and the scheduler's ``next_run`` are real. The install comes from tests/harness/awx_install.py
(cached by content hash outside the clone). The database is migrated once into ``awx_template``, which
is also kept as a ``pg_dump`` next to the cached install (so later sessions restore it in seconds
instead of migrating for minutes); every test then starts from ``CREATE DATABASE awx TEMPLATE
awx_template`` and a fresh uwsgi. ``stop()`` ends everything it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from psycopg2 import sql

from tests.harness.awx_install import AwxInstall
from tests.harness.ports import free_port
from tests.harness.postgres import PostgresCluster
from tests.harness.servers import RedisServer

TEMPLATE_DB = 'awx_template'
DATABASE = 'awx'
NODE = 'awx-test'
ADMIN = 'admin'
ADMIN_PASSWORD = 'awx-test-admin-pw'
DB_PASSWORD = 'awx-test-db-pw'
# A fixed key: the template's encrypted fields must decrypt in every session that restores it.
SECRET_KEY = 'engineroom-awx-test-secret-key-not-for-production'
SETTINGS = '''# Written by tests/harness/awx.py for a throwaway test controller.
import os
DATABASES = {{'default': {{
    'ENGINE': 'awx.main.db.profiled_pg', 'NAME': os.environ.get('ENGINEROOM_AWX_DATABASE', {database!r}),
    'USER': 'postgres', 'PASSWORD': {db_password!r}, 'HOST': '127.0.0.1', 'PORT': {pg_port},
    'OPTIONS': {{'sslmode': 'disable'}},
}}}}
BROKER_URL = 'redis://127.0.0.1:{redis_port}'
CACHES = {{'default': {{'BACKEND': 'awx.main.cache.AWXRedisCache', 'LOCATION': 'redis://127.0.0.1:{redis_port}/1'}}}}
CHANNEL_LAYERS = {{'default': {{'BACKEND': 'channels_redis.core.RedisChannelLayer',
                               'CONFIG': {{'hosts': [BROKER_URL], 'capacity': 10000, 'group_expiry': 157784760}}}}}}
SECRET_KEY = {secret_key!r}
BROADCAST_WEBSOCKET_SECRET = {secret_key!r}
ALLOWED_HOSTS = ['*']
CLUSTER_HOST_ID = {node!r}
PROJECTS_ROOT = {projects!r}
JOBOUTPUT_ROOT = {joboutput!r}
STATIC_ROOT = {static!r}
LOG_ROOT = {logs!r}
'''


class ControllerError(RuntimeError):
    """A step of starting the test controller failed (its output is in the message)."""


class AwxController:
    """One throwaway controller: ``start()`` once per session, ``fresh()`` before each test, ``stop()`` at the end."""

    def __init__(self, install=None, work_dir=None):
        self.install = install or AwxInstall()
        self.work_dir = work_dir or tempfile.mkdtemp(prefix='engineroom-awx-')
        os.chmod(self.work_dir, 0o755)  # the postgres OS user traverses it to its cluster
        self.projects_root = os.path.join(self.work_dir, 'projects')
        self.settings_file = os.path.join(self.work_dir, 'settings.py')
        self.pg = PostgresCluster(os.path.join(self.work_dir, 'pg'), superuser_password=DB_PASSWORD)
        self.redis = RedisServer(os.path.join(self.work_dir, 'redis'))
        self.port = None
        self.token = None
        self.pidfile = os.path.join(self.work_dir, 'uwsgi.pid')
        self.timings = {}  # what each step took, in seconds

    # -- addresses ---------------------------------------------------------------------
    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.port

    @property
    def dump_file(self):
        """The migrated template database, kept with the cached install."""
        return os.path.join(self.install.root, 'template.dump')

    @property
    def token_file(self):
        return os.path.join(self.install.root, 'template.token')

    def env(self, database=DATABASE):
        """Environment of awx-manage and uwsgi: the install's venv, this controller's settings file."""
        env = dict((k, v) for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'DJANGO_SETTINGS_MODULE'))
        env.update(DJANGO_SETTINGS_MODULE='awx.settings.production', AWX_SETTINGS_FILE=self.settings_file,
                   AWX_SETTINGS_DIR=os.path.join(self.work_dir, 'conf.d'), AWX_LOGGING_MODE='stdout',
                   ENGINEROOM_AWX_DATABASE=database, PATH=os.path.dirname(self.install.bin('python')) + os.pathsep +
                   env.get('PATH', ''))
        return env

    # -- the session ---------------------------------------------------------------------
    def start(self):
        """Install (cached), start PostgreSQL and redis, and have the template database ready."""
        self.timings['install_s'] = self.install.ensure()
        began = time.monotonic()
        for name in ('conf.d', 'projects', 'job_status', 'static', 'logs'):
            os.makedirs(os.path.join(self.work_dir, name), exist_ok=True)
        self.pg.start()
        self.pg.create_database(TEMPLATE_DB)
        self.redis.start()
        self.port = free_port()
        with open(self.settings_file, 'w') as handle:
            handle.write(SETTINGS.format(
                database=DATABASE, db_password=DB_PASSWORD, pg_port=self.pg.port, redis_port=self.redis.port,
                secret_key=SECRET_KEY, node=NODE, projects=self.projects_root + '/',
                joboutput=os.path.join(self.work_dir, 'job_status') + '/', static=os.path.join(self.work_dir, 'static'),
                logs=os.path.join(self.work_dir, 'logs') + '/'))
        self.timings['servers_s'] = time.monotonic() - began
        began = time.monotonic()
        if os.path.exists(self.dump_file) and os.path.exists(self.token_file):
            self._restore_template()
            self.timings['template_restore_s'] = time.monotonic() - began
        else:
            self._migrate_template()
            self.timings['template_migrate_s'] = time.monotonic() - began
        with open(self.token_file) as handle:
            self.token = handle.read().strip()
        return self

    def _manage(self, *args, database=TEMPLATE_DB, extra_env=None):
        env = self.env(database)
        env.update(extra_env or {})
        completed = subprocess.run([self.install.bin('awx-manage')] + list(args), cwd=self.install.src, env=env,
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise ControllerError('awx-manage %s exited %d:\n%s\n%s' % (
                ' '.join(args), completed.returncode, completed.stdout[-3000:], completed.stderr[-3000:]))
        return completed.stdout

    def _migrate_template(self):
        """Migrate, create the admin and its token, register this node and its queues; keep a dump of it."""
        self._manage('migrate', '--noinput')
        self._manage('createsuperuser', '--noinput', '--username', ADMIN, '--email', 'admin@example.invalid',
                     extra_env=dict(DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD))
        self._manage('register_default_execution_environments')
        self._manage('provision_instance', '--hostname=%s' % NODE, '--node_type=hybrid')
        for queue in ('controlplane', 'default'):
            self._manage('register_queue', '--queuename=%s' % queue, '--instance_percent=100')
        token = self._manage('create_oauth2_token', '--user', ADMIN).strip().splitlines()[-1]
        self._dump_template(token)

    def _dump_template(self, token):
        """pg_dump of the template and the admin token, written beside the cached install (temp file, rename)."""
        for path, write in ((self.dump_file, self._write_dump), (self.token_file, lambda tmp: _write_secret(tmp, token))):
            tmp = '%s.%d.tmp' % (path, os.getpid())
            write(tmp)
            os.replace(tmp, path)

    def _write_dump(self, dest):
        completed = subprocess.run([os.path.join(self.pg.bin_dir, 'pg_dump'), '-Fc', '-Z1', '-h', self.pg.socket_dir,
                                    '-p', str(self.pg.port), '-U', 'postgres', '-f', dest, TEMPLATE_DB],
                                   capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise ControllerError('pg_dump of the template failed: %s' % completed.stderr[-2000:])

    def _restore_template(self):
        completed = subprocess.run([os.path.join(self.pg.bin_dir, 'pg_restore'), '-h', self.pg.socket_dir,
                                    '-p', str(self.pg.port), '-U', 'postgres', '-d', TEMPLATE_DB, '--no-owner',
                                    '-j', '2', self.dump_file], capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise ControllerError('pg_restore of the cached template %s failed: %s'
                                  % (self.dump_file, completed.stderr[-2000:]))

    # -- each test -----------------------------------------------------------------------
    def fresh(self):
        """Stop the API, copy the template into a new ``awx`` database, clear redis and projects, start the API."""
        began = time.monotonic()
        self.stop_api()
        self.pg.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(DATABASE)))
        self.pg.execute(sql.SQL('CREATE DATABASE {} TEMPLATE {}').format(sql.Identifier(DATABASE),
                                                                         sql.Identifier(TEMPLATE_DB)))
        subprocess.run(['redis-cli', '-p', str(self.redis.port), 'FLUSHALL'], capture_output=True, check=True)
        shutil.rmtree(self.projects_root, ignore_errors=True)
        os.makedirs(self.projects_root)
        self.start_api()
        self.timings.setdefault('test_start_s', []).append(round(time.monotonic() - began, 1))
        return self

    def start_api(self, timeout=90):
        log = os.path.join(self.work_dir, 'logs', 'uwsgi.log')
        argv = [self.install.bin('uwsgi'), '--http', '127.0.0.1:%d' % self.port, '--home', self.install.venv,
                '--chdir', self.install.src, '--master', '--processes', '2', '--lazy-apps', '--manage-script-name',
                '--mount', '/=awx.wsgi:application', '--buffer-size', '32768', '--die-on-term',
                '--pidfile', self.pidfile, '--daemonize', log]
        subprocess.run(argv, env=self.env(), check=True, capture_output=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.request('/api/v2/ping/', auth=False)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                with open(log, errors='replace') as handle:
                    raise ControllerError('the API did not answer /api/v2/ping/ within %d s:\n%s'
                                          % (timeout, handle.read()[-3000:]))
            time.sleep(0.25)

    def stop_api(self):
        """End uwsgi by its pidfile and wait until the master process is gone."""
        try:
            with open(self.pidfile) as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        os.unlink(self.pidfile)

    def stop(self):
        """Stop what start() and fresh() started, and remove the work directory."""
        self.stop_api()
        self.redis.stop()
        self.pg.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- talking to it ---------------------------------------------------------------------
    def request(self, path, method='GET', data=None, auth=True, token=None):
        """``(status, decoded JSON or text)`` of one API call, with the admin token unless told otherwise."""
        headers = {'Content-Type': 'application/json'}
        if auth:
            headers['Authorization'] = 'Bearer %s' % (token or self.token)
        body = json.dumps(data).encode() if data is not None else None
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path):
        """The JSON of a GET that must answer 200."""
        status, body = self.request(path)
        assert status == 200, 'GET %s answered %s: %s' % (path, status, body)
        return body

    def named(self, kind, name):
        """The one object of ``/api/v2/<kind>/`` called ``name``."""
        results = self.get('/api/v2/%s/?name=%s' % (kind, urllib.parse.quote(name)))['results']
        assert len(results) == 1, '%d %s named %r' % (len(results), kind, name)
        return results[0]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours is gone for our purpose
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _write_secret(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as handle:
        handle.write(text + '\n')


def main():
    """``python -m tests.harness.awx``: install (cached) and prepare the template dump (cached), then stop."""
    from tests.harness.awx_install import AwxUnavailable  # pylint: disable=import-outside-toplevel
    try:
        controller = AwxController(work_dir=os.environ.get('ENGINEROOM_AWX_WORK_DIR'))
    except AwxUnavailable as exc:
        print('skipped: %s' % exc)
        return 0
    try:
        controller.start()
    finally:
        controller.stop()
    print('AWX test controller ready: %s %s' % (controller.install.root, json.dumps(controller.timings)))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""Fixtures of the maintenance_lock tests: PostgreSQL roles, a real nginx gateway, module runs.

The roles and the database carry the ``mlock_`` prefix so that the shared
``pg`` cluster of other tests is unaffected; they are dropped at the end.
nginx is Debian's binary, started in the foreground on a free loopback port
with the gateway snippets rendered by a real ``ansible-playbook`` template
task from roles/maintenance_window/templates, in front of a small loopback
backend that answers every method.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from psycopg2 import sql

from tests.harness.playbook import REPO_ROOT, run_tasks
from tests.harness.ports import free_port, wait_listening

MODULE = 'engineroom.maintenance.maintenance_lock'
MODULE_PATH = os.path.join(REPO_ROOT, 'plugins', 'modules', 'maintenance_lock.py')
COLLECTIONS_DIR = os.path.join(REPO_ROOT, 'collections')
TEMPLATES_DIR = os.path.join(REPO_ROOT, 'roles', 'maintenance_window', 'templates')

DATABASE = 'mlock_db'
APP_ROLE = 'mlock_app'            # no setting of its own before maintenance
APP2_ROLE = 'mlock_app2'          # its own per-database value (off) and another role-wide setting
ADMIN_ROLE = 'mlock_admin'
SUPER_ROLE = 'mlock_super'
GROUP_ROLE = 'mlock_group'        # NOLOGIN: gets a warning
ROLE_PASSWORD = 'mlock-test-pw'
ALL_ROLES = (APP_ROLE, APP2_ROLE, ADMIN_ROLE, SUPER_ROLE, GROUP_ROLE)

ADMIN_TOKEN = 'mlock-admin-token-4f1c9a'
ADMIN_HEADER = 'X-Maintenance-Token'
ADMIN_SOURCE = '127.0.0.2'        # the allow-listed "admin network" (loopback alias)
GATEWAY_MESSAGE = 'Back at 18:00 UTC: "writes" are paused; it\'s $free to read'
RETRY_AFTER_S = 120


# --- PostgreSQL --------------------------------------------------------------------------

@pytest.fixture(scope='session')
def mlock_pg(pg):
    """Roles and a database of our own on the shared cluster; dropped at the end."""
    ident = sql.Identifier
    drop_all(pg)
    for role in (APP_ROLE, APP2_ROLE, ADMIN_ROLE):
        pg.create_role(role, ROLE_PASSWORD)
    pg.execute(sql.SQL('CREATE ROLE {} LOGIN SUPERUSER PASSWORD %s').format(ident(SUPER_ROLE)), (ROLE_PASSWORD,))
    pg.execute(sql.SQL('CREATE ROLE {} NOLOGIN').format(ident(GROUP_ROLE)))
    pg.create_database(DATABASE)
    pg.execute('CREATE TABLE mlock_t (id serial PRIMARY KEY, who text NOT NULL)', dbname=DATABASE)
    for role in (APP_ROLE, APP2_ROLE, ADMIN_ROLE):
        pg.execute(sql.SQL('GRANT INSERT, SELECT ON mlock_t TO {}').format(ident(role)), dbname=DATABASE)
        pg.execute(sql.SQL('GRANT USAGE ON SEQUENCE mlock_t_id_seq TO {}').format(ident(role)), dbname=DATABASE)
    reset_role_settings(pg)
    yield pg
    drop_all(pg)


def drop_all(pg):
    """Database first (it holds the grants), then the roles with their settings."""
    pg.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(DATABASE)))
    for role in ALL_ROLES:
        pg.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))


def reset_role_settings(pg):
    """The settings every test starts from (see the role comments above)."""
    ident = sql.Identifier
    for role in (APP_ROLE, APP2_ROLE, ADMIN_ROLE):
        pg.execute(sql.SQL('ALTER ROLE {} RESET ALL').format(ident(role)))
        pg.execute(sql.SQL('ALTER ROLE {} IN DATABASE {} RESET ALL').format(ident(role), ident(DATABASE)))
    pg.execute(sql.SQL('ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = off')
               .format(ident(APP2_ROLE), ident(DATABASE)))
    pg.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '7s'").format(ident(APP2_ROLE)))


@pytest.fixture
def roles(mlock_pg):
    """Fresh role settings for one test; returns the cluster."""
    reset_role_settings(mlock_pg)
    yield mlock_pg
    reset_role_settings(mlock_pg)


def role_settings(pg, *names):
    """{(role, database or ''): sorted setconfig} of the roles, straight from pg_db_role_setting."""
    rows = pg.execute('SELECT r.rolname, coalesce(d.datname, %s), s.setconfig FROM pg_db_role_setting s '
                      'JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase '
                      'WHERE r.rolname = ANY(%s)', ('', list(names)))
    return dict(((role, database), sorted(config)) for role, database, config in rows)


def db_params(pg, **overrides):
    """Connection options of the module: the superuser over TCP with its password."""
    params = dict(login_host=pg.host, login_port=pg.port, login_user='postgres',
                  login_password=pg.superuser_password, login_db=DATABASE)
    params.update(overrides)
    return params


def insert_as(pg, role, who):
    """INSERT a row as ``role`` in a new session; return None on success, else the error text."""
    import psycopg2
    conn = psycopg2.connect(host=pg.host, port=pg.port, user=role, password=ROLE_PASSWORD, dbname=DATABASE)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute('INSERT INTO mlock_t (who) VALUES (%s)', (who,))
        return None
    except psycopg2.Error as exc:
        return str(exc).strip()
    finally:
        conn.close()


# --- module runs -------------------------------------------------------------------------

def lock_task(name, **args):
    return {'name': name, MODULE: args, 'ignore_errors': True}


def run_lock(check=False, diff=False, **args):
    """One maintenance_lock task through ansible-playbook; returns (run, result)."""
    run = run_tasks([lock_task('lock', **args)], check=check, diff=diff)
    return run, run.result('lock')


def module_process(args, **popen):
    """Start the module file itself as a separate Python process (the code path Ansible runs)."""
    handle = tempfile.NamedTemporaryFile('w', prefix='mlock-args-', suffix='.json', delete=False)
    with handle:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_DIR)
    proc = subprocess.Popen([sys.executable, MODULE_PATH, handle.name], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen)
    proc.args_file = handle.name
    return proc


def module_result(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    os.unlink(proc.args_file)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError('module printed no JSON (rc %s): %s %s' % (proc.returncode, out[-2000:], err[-2000:]))


@pytest.fixture
def lock_dir():
    """A root-owned 0755 directory for the lock file, as on a host."""
    path = tempfile.mkdtemp(prefix='engineroom-mlock-')
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- the nginx gateway -------------------------------------------------------------------

class _BackendHandler(BaseHTTPRequestHandler):
    """Answers every method with 200 and a JSON echo; ``/status/503`` answers 503 (an upstream failure)."""

    def _answer(self):
        length = int(self.headers.get('Content-Length') or 0)
        body_in = self.rfile.read(length) if length else b''
        code = 503 if self.path.startswith('/status/503') else 200
        self.server.seen.append((self.command, self.path))
        body = json.dumps(dict(backend=True, method=self.command, path=self.path, received_bytes=len(body_in),
                               admin_header=self.headers.get(ADMIN_HEADER))).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer  # noqa: N815

    def log_message(self, *args):
        return


class Gateway:
    """nginx in front of the backend; ``flag_file`` is the file the snippet tests."""

    def __init__(self, work_dir, port, backend, process, flag_file):
        self.work_dir = work_dir
        self.port = port
        self.backend = backend
        self.process = process
        self.flag_file = flag_file

    def request(self, method, path='/api/orders', body=None, headers=None, source=None):
        """(status, headers dict, body bytes) of one request, optionally from another loopback address."""
        import http.client
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict((k.lower(), v) for k, v in response.getheaders()), response.read()
        finally:
            conn.close()

    def flag(self, on):
        if on:
            with open(self.flag_file, 'w') as handle:
                handle.write('{}\n')
        elif os.path.exists(self.flag_file):
            os.unlink(self.flag_file)


def render_gateway_snippets(work_dir, flag_file):
    """Render both nginx snippets with a real ansible-playbook template task; return their paths."""
    variables = dict(maintenance_window_flag_file=flag_file, maintenance_window_admin_networks=['127.0.0.2/32'],
                     maintenance_window_admin_header=ADMIN_HEADER, maintenance_window_admin_token=ADMIN_TOKEN,
                     maintenance_window_retry_after_s=RETRY_AFTER_S, maintenance_window_message=GATEWAY_MESSAGE)
    server_conf = os.path.join(work_dir, 'maintenance.conf')
    http_conf = os.path.join(work_dir, 'maintenance-http.conf')
    run = run_tasks([
        {'name': 'server part', 'ansible.builtin.template': dict(
            src=os.path.join(TEMPLATES_DIR, 'nginx-maintenance.conf.j2'), dest=server_conf, mode='0644')},
        {'name': 'http part', 'ansible.builtin.template': dict(
            src=os.path.join(TEMPLATES_DIR, 'nginx-maintenance-http.conf.j2'), dest=http_conf, mode='0640')},
    ], extra_vars=variables)
    assert run.rc == 0, run.stderr + json.dumps(run.tasks)[-3000:]
    return server_conf, http_conf


NGINX_CONF = """
worker_processes 1;
{user}
error_log {work}/error.log;
pid {work}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    include {http_conf};
    server {{
        listen 127.0.0.1:{port};
        include {server_conf};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}
}}
"""


@pytest.fixture(scope='session')
def gateway():
    nginx = shutil.which('nginx') or '/usr/sbin/nginx'
    if not os.path.exists(nginx):
        pytest.fail('nginx not found: apt-get install nginx-light')
    work = tempfile.mkdtemp(prefix='engineroom-nginx-')
    os.chmod(work, 0o755)
    os.makedirs(os.path.join(work, 'tmp'))
    flag_file = os.path.join(work, 'maintenance.flag')
    backend = ThreadingHTTPServer(('127.0.0.1', free_port()), _BackendHandler)
    backend.daemon_threads = True
    backend.seen = []
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    server_conf, http_conf = render_gateway_snippets(work, flag_file)
    user = ''
    if os.geteuid() == 0:
        user = 'user www-data;'
        entry = pwd.getpwnam('www-data')
        os.chown(os.path.join(work, 'tmp'), entry.pw_uid, entry.pw_gid)
    port = free_port()
    conf = os.path.join(work, 'nginx.conf')
    with open(conf, 'w') as handle:
        handle.write(NGINX_CONF.format(user=user, work=work, http_conf=http_conf, server_conf=server_conf,
                                       port=port, backend=backend.server_address[1]))
    process = subprocess.Popen([nginx, '-g', 'daemon off;', '-p', work, '-c', conf], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, timeout=10)
    except TimeoutError:
        process.kill()
        output = process.communicate()[0].decode(errors='replace')
        pytest.fail('nginx did not start: %s' % output)
    yield Gateway(work, port, backend, process, flag_file)
    process.send_signal(signal.SIGQUIT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    backend.shutdown()
    backend.server_close()
    shutil.rmtree(work, ignore_errors=True)

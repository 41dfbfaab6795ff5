"""The embedded sandbox `make demo` runs the maintenance calendar against.

    python -m tests.harness.sandbox up .demo      # start (or restart) it, idempotent
    python -m tests.harness.sandbox down .demo    # stop PostgreSQL and remove it

It holds a PostgreSQL 15 cluster on a free loopback port with a small
application schema and data, an ``uploads/`` tree and a ``logs/`` folder with
``audit.log`` and ``system.log``. ``up`` writes ``sandbox.yml``: the inventory
variables that point the playbooks at it.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import secrets
import shutil
import stat
import sys

from tests.harness.playbook import run_playbook, start_playbook
from tests.harness.ports import free_port
from tests.harness.postgres import PostgresCluster

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id),
    total_cents integer NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
    id bigserial PRIMARY KEY, actor text NOT NULL, action text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
    id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id),
    body text NOT NULL, read boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL);
"""

# Deterministic sample data; ages spread over two years so retention rules have something to find.
SEED = """
INSERT INTO customers (email, created_at)
  SELECT 'customer' || g || '@example.test', now() - (g || ' hours')::interval FROM generate_series(1, 2000) g;
INSERT INTO orders (customer_id, total_cents, status, created_at)
  SELECT 1 + (g % 2000), 100 + (g * 37) % 90000, (ARRAY['paid','shipped','refunded'])[1 + g % 3],
         now() - ((g % 700) || ' days')::interval FROM generate_series(1, 20000) g;
INSERT INTO audit_log (actor, action, created_at)
  SELECT 'user' || (g % 50), (ARRAY['login','update','export','delete'])[1 + g % 4],
         now() - ((g % 730) || ' days')::interval FROM generate_series(1, 30000) g;
INSERT INTO notifications (customer_id, body, read, created_at)
  SELECT 1 + (g % 2000), 'Your order ' || g || ' has shipped', g % 3 = 0,
         now() - ((g % 400) || ' days')::interval FROM generate_series(1, 10000) g;
"""

LOG_MESSAGES = (
    ('INFO', 'request completed path=/api/orders status=200 duration_ms={n}'),
    ('INFO', 'user user{n} logged in'),
    ('WARNING', 'slow query took {n} ms on orders'),
    ('ERROR', 'payment gateway timeout after {n} ms for order {n}'),
    ('ERROR', 'could not send notification {n}: SMTP connection refused'),
    ('INFO', 'export finished rows={n}'),
)


class Sandbox:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.state_file = os.path.join(self.root, 'sandbox.json')
        self.vars_file = os.path.join(self.root, 'sandbox.yml')
        # Where the calendar's runs against this sandbox keep their maintenance log.
        self.maintenance_log_dir = os.path.join(self.root, 'maintenance-log')

    def variables(self):
        """The inventory variables ``up`` wrote (sandbox.yml is JSON after a comment line)."""
        with open(self.vars_file) as handle:
            return json.loads(handle.read().split('\n', 1)[1])

    # -- running the calendar against it ----------------------------------------------------
    def _run_options(self, extra_vars, with_box_vars, options):
        """A run against the sandbox: its inventory variables (unless not wanted) and its maintenance log."""
        variables = self.variables() if with_box_vars else {}
        variables.update(extra_vars or {})
        options['env'] = dict(options.get('env') or {}, ENGINEROOM_MAINTENANCE_LOG_DIR=self.maintenance_log_dir)
        return dict(options, extra_vars=variables)

    def play(self, name, extra_vars=None, with_box_vars=True, **options):
        """Run ``playbooks/<name>`` against the sandbox to its end (``options``: run_playbook's); its PlaybookRun."""
        return run_playbook(name, **self._run_options(extra_vars, with_box_vars, options))

    def start_play(self, name, extra_vars=None, with_box_vars=True, **options):
        """Start ``playbooks/<name>`` against the sandbox (``options``: start_playbook's); the process."""
        return start_playbook(name, **self._run_options(extra_vars, with_box_vars, options))

    # -- where the cluster lives ----------------------------------------------------------
    def _cluster_dir(self):
        """``<root>/postgres``, or a link to /var/tmp when the postgres user cannot reach ``root``.

        A checkout under /root (mode 0700) is not traversable by the ``postgres``
        OS user that must own the cluster; rather than loosening the
        permissions of someone's home, the cluster then lives in /var/tmp.
        """
        inside = os.path.join(self.root, 'postgres')
        if os.path.islink(inside) or os.geteuid() != 0 or _others_can_traverse(self.root):
            return inside
        outside = '/var/tmp/engineroom-demo-%s' % hashlib.sha256(self.root.encode()).hexdigest()[:12]
        os.makedirs(outside, mode=0o755, exist_ok=True)
        os.symlink(outside, inside)
        return inside

    def _load_state(self):
        if os.path.exists(self.state_file):
            with open(self.state_file) as handle:
                return json.load(handle)
        return {}

    def up(self):
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)
        state = self._load_state()
        for role in ('monitor', 'app', 'superuser'):
            state.setdefault('%s_password' % role, secrets.token_urlsafe(18))
        # The real path: the postgres user may not traverse the link's own parents.
        cluster = PostgresCluster(os.path.realpath(self._cluster_dir()), port=state.get('port'))
        if not cluster.running:
            if state.get('port') and not _port_free(state['port']):
                cluster.port = free_port()
            cluster.start()
        state['port'] = cluster.port
        cluster.wait_ready()
        cluster.create_role(cluster.superuser, state['superuser_password'])
        cluster.create_role('app', state['app_password'])
        cluster.create_role('monitor', state['monitor_password'], 'pg_monitor')
        cluster.create_database('app', owner='app')
        conn = cluster.connect('app', user='app')
        try:
            with conn.cursor() as cursor:
                cursor.execute(SCHEMA)
                cursor.execute('SELECT count(*) FROM customers')
                if cursor.fetchone()[0] == 0:
                    cursor.execute(SEED)
        finally:
            conn.close()
        _write_uploads(os.path.join(self.root, 'uploads'))
        _write_env_file(os.path.join(self.root, '.env'), state['app_password'])
        _write_logs(os.path.join(self.root, 'logs'))
        for folder in ('results', 'backups', 'state', 'state/logrotate.d'):
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        _write_private(self.state_file, json.dumps(state, indent=2) + '\n')
        _write_private(self.vars_file, self._inventory_vars(cluster, state))
        return cluster

    def _inventory_vars(self, cluster, state):
        """Inventory variables pointing the playbooks at the sandbox (JSON is valid YAML)."""
        database = dict(login_host=cluster.host, login_port=cluster.port, login_user='monitor',
                        login_password=state['monitor_password'], login_db='app')
        data = dict(
            # The fleet-wide variables every role derives its own from (see inventories/example/).
            engineroom_postgres=dict(login_host=cluster.host, login_port=cluster.port, login_user=cluster.superuser,
                                     login_password=state['superuser_password']),
            engineroom_database='app',
            engineroom_uploads_dir=os.path.join(self.root, 'uploads'),
            engineroom_logs_dir=os.path.join(self.root, 'logs'),
            engineroom_backup_dir=os.path.join(self.root, 'backups'),
            engineroom_state_dir=os.path.join(self.root, 'state'),
            engineroom_app_root=self.root,
            engineroom_readonly_roles=['app'],
            engineroom_admin_roles=[],
            # The seeds' retention: audit rows after 365 days, notifications after 180 (weekly, after the archive).
            db_optimize_purge_rules=[
                dict(table='public.audit_log', timestamp_column='created_at', older_than_days=365),
                dict(table='public.notifications', timestamp_column='created_at', older_than_days=180),
            ],
            # Keep the demo's logrotate policy inside the sandbox instead of /etc/logrotate.d.
            log_oversight_logrotate_file=os.path.join(self.root, 'state', 'logrotate.d', 'engineroom-app'),
            sandbox_root=self.root,
            sandbox_postgres=database,
            # Probes the role does not build from the engineroom_* variables above.
            health_check_probes=[
                dict(name='monitor-login', kind='postgres', **database),
                dict(name='postgres-server', kind='process',
                     pidfile=os.path.join(cluster.data_dir, 'postmaster.pid')),
                dict(name='memory', kind='memory'),
                # The sandbox shares its machine with test runs and benchmarks: only a machine that is
                # truly swamped (20 runnable tasks per CPU) fails the health check.
                dict(name='load', kind='load', degraded_load=4.0, unhealthy_load=20.0),
                dict(name='pg-isready', kind='command',
                     argv=['pg_isready', '-h', cluster.host, '-p', str(cluster.port)]),
            ],
            health_check_prometheus_textfile=os.path.join(self.root, 'results', 'engineroom_health.prom'),
        )
        return '# Written by `python -m tests.harness.sandbox up`; secrets inside: mode 0600.\n' + \
            json.dumps(data, indent=2) + '\n'

    def down(self):
        if not os.path.isdir(self.root):
            return
        inside = os.path.join(self.root, 'postgres')
        if os.path.exists(inside):
            PostgresCluster(os.path.realpath(inside)).stop()
        if os.path.islink(inside):
            shutil.rmtree(os.path.realpath(inside), ignore_errors=True)
        shutil.rmtree(self.root)


def _others_can_traverse(path):
    """True when every directory from / to ``path`` lets other users pass (o+x)."""
    current = path
    while True:
        if os.path.exists(current) and not os.stat(current).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(current)
        if parent == current:
            return True
        current = parent


def _port_free(port):
    import socket
    with socket.socket() as sock:
        return sock.connect_ex(('127.0.0.1', port)) != 0


def _write_private(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as handle:
        handle.write(text)


def _write_env_file(path, app_password):
    """The application's .env, world-readable as the seeds leave it, for the security audit to find."""
    if not os.path.exists(path):
        with open(path, 'w') as handle:
            handle.write('DATABASE_URL=postgresql://app:%s@127.0.0.1/app\n' % app_password)
        os.chmod(path, 0o644)


def _write_uploads(root):
    """A few hundred files in nested folders: compressible text and incompressible images."""
    rng = random.Random(7)
    for folder in ('avatars', 'invoices/2025', 'invoices/2026', 'exports'):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    for index in range(60):
        path = os.path.join(root, 'avatars', 'user%03d.png' % index)
        if not os.path.exists(path):
            with open(path, 'wb') as handle:
                handle.write(b'\x89PNG\r\n\x1a\n' + rng.randbytes(rng.randint(2000, 40000)))
    for year in (2025, 2026):
        for index in range(80):
            path = os.path.join(root, 'invoices', str(year), 'invoice-%d-%04d.txt' % (year, index))
            if not os.path.exists(path):
                with open(path, 'w') as handle:
                    handle.write(('Invoice %d-%04d\nTotal: %d.00 EUR\n' % (year, index, index * 17)) * 40)


def _write_logs(root):
    """audit.log and system.log in the application's format, with errors to review."""
    os.makedirs(root, exist_ok=True)
    start = datetime.datetime(2026, 11, 20, tzinfo=datetime.timezone.utc)
    for name, lines in (('audit.log', 4000), ('system.log', 6000)):
        path = os.path.join(root, name)
        if os.path.exists(path):
            continue
        rng = random.Random(name)
        with open(path, 'w') as handle:
            for index in range(lines):
                level, template = rng.choice(LOG_MESSAGES)
                stamp = (start + datetime.timedelta(seconds=index * 37)).strftime('%Y-%m-%dT%H:%M:%SZ')
                handle.write('%s %s %s\n' % (stamp, level, template.format(n=rng.randint(1, 9999))))


def main(argv=None):
    parser = argparse.ArgumentParser(description='Start or remove the engineroom.maintenance demo sandbox.')
    parser.add_argument('action', choices=['up', 'down'])
    parser.add_argument('root', nargs='?', default='.demo')
    args = parser.parse_args(argv)
    sandbox = Sandbox(args.root)
    if args.action == 'up':
        cluster = sandbox.up()
        print('sandbox up: PostgreSQL %s:%d (data %s), uploads and logs under %s'
              % (cluster.host, cluster.port, os.path.realpath(cluster.data_dir), sandbox.root))
        print('inventory variables: %s' % sandbox.vars_file)
    else:
        sandbox.down()
        print('sandbox removed: %s' % sandbox.root)
    return 0


if __name__ == '__main__':
    sys.exit(main())

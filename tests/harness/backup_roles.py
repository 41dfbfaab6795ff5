"""Shared pieces of the db_snapshot, full_archive and dr_drill role tests: an app database, an uploads tree,
a snapshot history to prune, and plays that include a role and hand back what it registered.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os

from psycopg2 import sql

APP_TABLES = {'public.customers': 300, 'public.orders': 1200, 'public.empty': 0}


def fill_app_database(pg, dbname):
    """A fresh database with the rows of APP_TABLES."""
    drop_database(pg, dbname)
    pg.create_database(dbname)
    for statement in (
        'CREATE TABLE customers (id int PRIMARY KEY, name text)',
        "INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 300) g",
        'CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers, note text)',
        'INSERT INTO orders SELECT g, 1 + g % 300, md5(g::text) FROM generate_series(1, 1200) g',
        'CREATE TABLE empty (id int)',
    ):
        pg.execute(statement, dbname=dbname)


def drop_database(pg, dbname):
    pg.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(dbname)))


def databases_like(pg, prefix):
    return sorted(row[0] for row in pg.execute('SELECT datname FROM pg_database WHERE starts_with(datname, %s)',
                                               (prefix,)))


def make_tree(root, files):
    """Write ``files`` ({relative path: bytes}) under ``root``; return the total bytes."""
    for relative, content in files.items():
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as handle:
            handle.write(content)
    return sum(len(content) for content in files.values())


UPLOADS = {'avatars/1.png': b'\x89PNG' + bytes(range(256)) * 40, 'invoices/2026/11/inv-1.pdf': b'%PDF-1.7 ' * 500,
           'readme.txt': b'uploads\n'}
LOGS = {'app.log': b'INFO started\n' * 200, 'app.log.1': b'INFO older\n' * 100}


def seed_history(dest, prefix, database, days_ago, now=None):
    """Older database-tier snapshots of ``database`` (one per entry of ``days_ago``, at 02:00 UTC) with manifests.

    Retention judges snapshots by their manifest, so these are real candidates; their
    content is not a dump (nothing verifies them). Returns {days ago: artifact path}.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    os.makedirs(dest, mode=0o700, exist_ok=True)
    seeded = {}
    for days in days_ago:
        moment = (now - datetime.timedelta(days=days)).replace(hour=2, minute=0, second=0, microsecond=0)
        name = '%s-database-%s.dump' % (prefix, moment.strftime('%Y%m%dT%H%M%SZ'))
        path = os.path.join(dest, name)
        content = ('seeded snapshot of %s\n' % moment.isoformat()).encode()
        with open(path, 'wb') as handle:
            handle.write(content)
        stamp = moment.strftime('%Y-%m-%dT%H:%M:%SZ')
        manifest = dict(schema_version=1, tier='database', created_at=stamp, verified_at=stamp, host='seed',
                        artifact=dict(file=name, size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest(),
                                      format='custom', compression='gzip'),
                        database=dict(name=database, tables={}))
        with open(path + '.manifest.json', 'w') as handle:
            json.dump(manifest, handle)
        seeded[days] = path
    return seeded


def role_task(role, role_vars, name=None):
    return {'name': name or 'apply %s' % role,
            'ansible.builtin.include_role': {'name': 'engineroom.maintenance.%s' % role}, 'vars': role_vars}


def show(variable, name):
    """A task that puts ``variable`` into the run's JSON under ``name``."""
    return {'name': name, 'ansible.builtin.debug': {'var': variable}}


def expect_failure(role, role_vars, name):
    """Include the role, expecting it to fail; the failed task's result is shown as task ``name``."""
    return {'name': 'expect %s to fail' % name,
            'block': [role_task(role, role_vars)],
            'rescue': [show('ansible_failed_result', name)]}


def assert_ran(run):
    """The play finished (failures expected by :func:`expect_failure` are rescued)."""
    assert run.rc == 0, ([(t['_task'], t.get('msg')) for t in run.tasks if t.get('failed')], run.stderr[-3000:])


def listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []

"""Fixtures of the snapshot tests: a sample database of our own, a dest directory, a tiny filesystem."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest
from psycopg2 import sql

SAMPLE_TABLES = {'public.customers': 500, 'public.orders': 2000, 'shop.items': 37, 'public.empty': 0}


def fill_sample(pg, dbname):
    """A database with a few tables in two schemas; row counts as in SAMPLE_TABLES."""
    pg.execute(sql.SQL('DROP DATABASE IF EXISTS {}').format(sql.Identifier(dbname)))
    pg.create_database(dbname)
    for statement in (
        'CREATE SCHEMA shop',
        'CREATE TABLE customers (id int PRIMARY KEY, name text)',
        "INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 500) g",
        'CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers, note text)',
        "INSERT INTO orders SELECT g, 1 + g % 500, md5(g::text) FROM generate_series(1, 2000) g",
        'CREATE TABLE shop.items (sku text PRIMARY KEY)',
        "INSERT INTO shop.items SELECT 'sku-' || g FROM generate_series(1, 37) g",
        'CREATE TABLE empty (id int)',
    ):
        pg.execute(statement, dbname=dbname)


def drop_database(pg, dbname):
    pg.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(dbname)))


@pytest.fixture(scope='module')
def sample_db(pg):
    """A fresh database named after this process, with the sample tables; dropped afterwards."""
    name = 'snap_sample_%d' % os.getpid()
    fill_sample(pg, name)
    yield name
    drop_database(pg, name)


@pytest.fixture
def dest():
    path = tempfile.mkdtemp(prefix='engineroom-snap-dest-')
    yield os.path.join(path, 'snapshots')
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tiny_fs():
    """A 2 MiB tmpfs, unmounted afterwards."""
    path = tempfile.mkdtemp(prefix='engineroom-snap-tiny-')
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', path], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        os.rmdir(path)
        pytest.skip('cannot mount a tmpfs here: %s' % mounted.stderr.decode().strip())
    yield path
    subprocess.run(['umount', path], check=False)
    os.rmdir(path)

"""Databases for the database-care tests (pg_vacuum, pg_insight, pg_purge) in the session's ``pg`` cluster.

Statistics lag: PostgreSQL 15 publishes a session's table counters at most once
a second or when the session ends, and a closing client does not wait for the
server to finish. Every helper that writes therefore ends its session with
``SELECT pg_stat_force_next_flush()`` (present in 15, undocumented there):
the flush happens before the server answers that statement. It then waits,
from a new connection, until ``pg_stat_user_tables`` shows what was written,
so a test never selects from stale statistics.
"""

from __future__ import annotations

import datetime
import json
import os
import time

import pytest
from psycopg2 import sql

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots import manifest as mf
from ansible_collections.engineroom.maintenance.plugins.module_utils.common import time as clock
from tests.harness.postgres import PostgresCluster

VACUUM_DB = 'care_vacuum'
VACUUM_DB_B = 'care_vacuum_b'
LIMITED_ROLE = 'care_limited'
LIMITED_PASSWORD = 'care-limited-pw'
ROWS = 2000
PLAIN_TABLES = ['t%02d' % i for i in range(40)]
SIZES = dict(dict.fromkeys(PLAIN_TABLES, ROWS), big=6000, owned_a=ROWS, owned_b=ROWS, y=10)
SIZES['archive.full_target'] = 3000


def qualified(name):
    schema, table = name.split('.') if '.' in name else ('public', name)
    return sql.Identifier(schema, table)


def flush_and_close(conn):
    """Publish the session's pending statistics now, then close the session."""
    with conn.cursor() as cursor:
        cursor.execute('SELECT pg_stat_force_next_flush()')
    conn.close()


def table_stats(pg, dbname, names):
    """{name: (n_live_tup, n_dead_tup, n_mod_since_analyze)} read from a new connection."""
    rows = pg.execute('SELECT schemaname, relname, n_live_tup, n_dead_tup, n_mod_since_analyze '
                      'FROM pg_stat_user_tables', dbname=dbname)
    found = dict(('%s.%s' % (s, r), (live, dead, mod)) for s, r, live, dead, mod in rows)
    return dict((n, found.get(n if '.' in n else 'public.' + n)) for n in names)


def wait_for_stats(pg, dbname, expected, timeout=15):
    """Wait until each table's (live, dead) statistics equal ``expected`` {name: (live, dead)}."""
    deadline = time.monotonic() + timeout
    while True:
        seen = table_stats(pg, dbname, expected)
        if all(seen[n] and seen[n][:2] == tuple(v) for n, v in expected.items()):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError('statistics never showed %s; last seen %s' % (expected, seen))
        time.sleep(0.1)


def fill(conn, name, rows):
    with conn.cursor() as cursor:
        cursor.execute(sql.SQL("INSERT INTO {} SELECT g, md5(g::text) || repeat('x', 60), 0 "
                               "FROM generate_series(1, %s) g ON CONFLICT DO NOTHING").format(qualified(name)), (rows,))


class VacuumDatabase:
    """``care_vacuum``: 45 tables, autovacuum off, put back clean (full, vacuumed, analyzed) per test."""

    def __init__(self, pg, name):
        self.pg = pg
        self.name = name

    def create(self):
        self.pg.create_database(self.name)
        conn = self.pg.connect(self.name)
        with conn.cursor() as cursor:
            cursor.execute('CREATE SCHEMA IF NOT EXISTS archive')
            for table in SIZES:
                cursor.execute(sql.SQL('CREATE TABLE IF NOT EXISTS {} (id int PRIMARY KEY, payload text, n int) '
                                       'WITH (autovacuum_enabled = false)').format(qualified(table)))
            for table in ('owned_a', 'owned_b'):
                cursor.execute(sql.SQL('ALTER TABLE {} OWNER TO {}').format(qualified(table),
                                                                            sql.Identifier(LIMITED_ROLE)))
        flush_and_close(conn)
        return self

    def reset(self):
        """Every table full and clean: rows refilled, then VACUUM ANALYZE in a later session."""
        conn = self.pg.connect(self.name)
        for table, rows in SIZES.items():
            fill(conn, table, rows)
            with conn.cursor() as cursor:
                cursor.execute(sql.SQL('DELETE FROM {} WHERE id > %s').format(qualified(table)), (rows,))
        flush_and_close(conn)
        self.pg.execute('VACUUM ANALYZE', dbname=self.name)
        wait_for_stats(self.pg, self.name, dict((t, (r, 0)) for t, r in SIZES.items()))

    def bloat(self, updated=(), deleted=(), inserted=(), fraction=0.6):
        """Make dead tuples: UPDATE or DELETE ``fraction`` of the rows; INSERT adds 25 % new rows (stale stats)."""
        conn = self.pg.connect(self.name)
        expected = {}
        with conn.cursor() as cursor:
            for table in updated:
                cursor.execute(sql.SQL('UPDATE {} SET n = n + 1 WHERE id <= %s').format(qualified(table)),
                               (int(SIZES[table] * fraction),))
                expected[table] = (SIZES[table], int(SIZES[table] * fraction))
            for table in deleted:
                cursor.execute(sql.SQL('DELETE FROM {} WHERE id <= %s').format(qualified(table)),
                               (int(SIZES[table] * fraction),))
                expected[table] = (SIZES[table] - int(SIZES[table] * fraction), int(SIZES[table] * fraction))
            for table in inserted:
                extra = SIZES[table] // 4
                cursor.execute(sql.SQL("INSERT INTO {} SELECT g, 'new', 0 FROM generate_series(%s, %s) g")
                               .format(qualified(table)), (SIZES[table] + 1, SIZES[table] + extra))
                expected[table] = (SIZES[table] + extra, 0)
        flush_and_close(conn)
        return wait_for_stats(self.pg, self.name, expected)

    def stats(self, names):
        return table_stats(self.pg, self.name, names)


@pytest.fixture(scope='session')
def care_role(pg):
    pg.create_role(LIMITED_ROLE, LIMITED_PASSWORD)
    return LIMITED_ROLE


@pytest.fixture(scope='session')
def vacuum_databases(pg, care_role):
    return VacuumDatabase(pg, VACUUM_DB).create(), VacuumDatabase(pg, VACUUM_DB_B).create()


@pytest.fixture
def vacuum_db(vacuum_databases):
    """``care_vacuum`` put back clean for this test."""
    db = vacuum_databases[0]
    db.reset()
    return db


def connection_options(pg, dbname, user=None, password=None):
    """Module connection options: TCP with a password, like a real inventory."""
    return dict(login_host=pg.host, login_port=pg.port, login_user=user or pg.superuser,
                login_password=password or pg.superuser_password, login_db=dbname)


PURGE_DB = 'care_purge'


class PurgeDatabase:
    """``care_purge``: audit_log (timestamptz, one row per day back 1000 days), notices (date), refilled per test."""

    def __init__(self, pg):
        self.pg = pg
        self.name = PURGE_DB

    def create(self):
        self.pg.create_database(self.name)
        self.pg.execute('CREATE TABLE IF NOT EXISTS audit_log (id int PRIMARY KEY, created_at timestamptz, '
                        'kind text, level int, created_text text)', dbname=self.name)
        self.pg.execute('CREATE TABLE IF NOT EXISTS notices (id int PRIMARY KEY, sent_on date, status text)',
                        dbname=self.name)
        self.pg.execute('CREATE TABLE IF NOT EXISTS y (id int)', dbname=self.name)
        self.pg.execute('CREATE TABLE IF NOT EXISTS parents (id int PRIMARY KEY, created_at timestamptz)',
                        dbname=self.name)
        self.pg.execute('CREATE TABLE IF NOT EXISTS children (id int, parent_id int REFERENCES parents)',
                        dbname=self.name)
        return self

    def reset(self):
        """Row i is i days and one hour old; kinds cycle a/b/c, levels 0..4; every 50th row has no timestamp."""
        self.pg.execute('TRUNCATE audit_log, notices, y, parents, children', dbname=self.name)
        # parents: row i is i days and one hour old; row 40 is still referenced by a child.
        self.pg.execute("INSERT INTO parents SELECT i, now() - make_interval(days => i, hours => 1) "
                        "FROM generate_series(1, 100) i", dbname=self.name)
        self.pg.execute('INSERT INTO children VALUES (1, 40)', dbname=self.name)
        self.pg.execute(
            "INSERT INTO audit_log SELECT i, CASE WHEN i % 50 = 0 THEN NULL "
            "ELSE now() - make_interval(days => i, hours => 1) END, "
            "(ARRAY['a', 'b', 'c'])[i % 3 + 1], i % 5, i::text FROM generate_series(1, 1000) i", dbname=self.name)
        self.pg.execute("INSERT INTO notices SELECT i, (now() AT TIME ZONE 'UTC')::date - i, "
                        "CASE WHEN i % 2 = 0 THEN 'read' ELSE 'unread' END FROM generate_series(0, 399) i",
                        dbname=self.name)
        self.pg.execute('INSERT INTO y VALUES (1)', dbname=self.name)

    def count(self, where='true', table='audit_log'):
        return self.pg.execute('SELECT count(*) FROM %s WHERE %s' % (table, where), dbname=self.name)[0][0]


@pytest.fixture(scope='session')
def purge_database(pg):
    return PurgeDatabase(pg).create()


@pytest.fixture
def purge_db(purge_database):
    purge_database.reset()
    return purge_database


def write_snapshot(dest, database, age_h=1.0, verified=True, size_ok=True, with_artifact=True):
    """A snapshot as the snapshot module writes it: artifact, then its manifest (schema 1)."""
    moment = clock.utc_now() - datetime.timedelta(hours=age_h)
    name = mf.artifact_name(database, 'database', moment, 'dump.zst')
    body = b'snapshot of %s' % database.encode()
    if with_artifact:
        with open(os.path.join(dest, name), 'wb') as handle:
            handle.write(body)
    manifest = dict(
        schema_version=mf.SCHEMA_VERSION, tier='database', created_at=clock.iso_utc(moment),
        verified_at=clock.iso_utc(moment + datetime.timedelta(minutes=1)) if verified else None, host='db1',
        artifact=dict(file=name, size_bytes=len(body) if size_ok else len(body) + 1, sha256='0' * 64,
                      format='custom', compression='zstd'),
        database=dict(name=database, server_version='15', pg_dump_version='15', tables={}))
    path = os.path.join(dest, name + mf.MANIFEST_SUFFIX)
    with open(path, 'w') as handle:
        json.dump(manifest, handle)
    return path


INSIGHT_DB = 'care_insight'
INSIGHT_DB_B = 'care_insight_b'


@pytest.fixture(scope='session')
def insight_db(pg):
    """``care_insight``: an unused index, a bloated table, a sequentially scanned one, autovacuum settings per table.

    ``care_insight_b`` has pg_stat_statements installed, which the cluster does not preload.
    """
    pg.create_database(INSIGHT_DB)
    pg.create_database(INSIGHT_DB_B)
    conn = pg.connect(INSIGHT_DB)
    with conn.cursor() as cursor:
        cursor.execute('DROP TABLE IF EXISTS orders, events, tuned')
        cursor.execute('CREATE TABLE orders (id int PRIMARY KEY, ref text UNIQUE, note text, n int) '
                       'WITH (autovacuum_enabled = false)')
        cursor.execute('CREATE INDEX orders_note_idx ON orders (note)')
        cursor.execute("INSERT INTO orders SELECT g, 'r' || g, md5(g::text), 0 FROM generate_series(1, 20000) g")
        cursor.execute('CREATE TABLE events (id int, kind text) WITH (autovacuum_enabled = off)')
        cursor.execute("INSERT INTO events SELECT g, 'k' || (g % 7) FROM generate_series(1, 12000) g")
        cursor.execute('CREATE TABLE tuned (id int) WITH (autovacuum_vacuum_scale_factor = 0.05)')
    flush_and_close(conn)
    # ANALYZE in its own session: run after DML in the same one, the DML's counters would be
    # published after ANALYZE's and double n_live_tup (the pitfall in docs/DESIGN.md).
    pg.execute('ANALYZE', dbname=INSIGHT_DB)
    conn = pg.connect(INSIGHT_DB)
    with conn.cursor() as cursor:
        cursor.execute('UPDATE orders SET n = 1 WHERE id <= 6000')
        for scan in range(3):
            cursor.execute("SELECT count(*) FROM events WHERE kind = %s", ('k%d' % scan,))
    flush_and_close(conn)
    wait_for_stats(pg, INSIGHT_DB, dict(orders=(20000, 6000), events=(12000, 0)))
    pg.execute('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', dbname=INSIGHT_DB_B)
    return INSIGHT_DB


@pytest.fixture(scope='module')
def pg_statements(scratch_dir):
    """A second cluster that preloads pg_stat_statements, for the statements section's working case."""
    cluster = PostgresCluster(os.path.join(scratch_dir, 'pg-statements'))
    cluster.init()
    with open(os.path.join(cluster.data_dir, 'postgresql.conf'), 'a') as handle:
        handle.write("\nshared_preload_libraries = 'pg_stat_statements'\n")
    cluster.start()
    try:
        cluster.create_database(INSIGHT_DB)
        cluster.execute('CREATE EXTENSION pg_stat_statements', dbname=INSIGHT_DB)
        cluster.execute('CREATE TABLE busy AS SELECT g FROM generate_series(1, 5000) g', dbname=INSIGHT_DB)
        for limit in (1000, 2000, 3000, 4000, 5000):
            cluster.execute('SELECT sum(g) FROM busy WHERE g <= %s', (limit,), dbname=INSIGHT_DB)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope='session')
def truth_pg(scratch_dir):
    """A cluster of its own for the "PostgreSQL's own truth" tests: autovacuum off (nothing cleans behind the
    tests' back), prepared transactions allowed, WAL for replication slots, pgstattuple in template1 so every
    database created from it can be judged by it."""
    cluster = PostgresCluster(os.path.join(scratch_dir, 'pg-truth'))
    cluster.init()
    with open(os.path.join(cluster.data_dir, 'postgresql.conf'), 'a') as handle:
        handle.write('\nautovacuum = off\nmax_prepared_transactions = 5\nwal_level = replica\n'
                     'max_wal_senders = 4\nmax_replication_slots = 4\n')
    cluster.start()
    try:
        cluster.execute('CREATE EXTENSION IF NOT EXISTS pgstattuple', dbname='template1')
        cluster.create_role('monitor', 'truth-monitor-pw', 'pg_monitor')
        yield cluster
    finally:
        cluster.stop()


def pgstattuple(pg, dbname, relation, toast=False):
    """(live tuples, dead tuples) of ``relation`` (or of its TOAST table) measured by pgstattuple: the judge."""
    oid = "(SELECT reltoastrelid FROM pg_class WHERE oid = %s::regclass)" if toast else '%s::regclass'
    return tuple(pg.execute('SELECT tuple_count, dead_tuple_count FROM pgstattuple(' + oid + ')',
                            (relation,), dbname=dbname)[0])

"""The database side of a fault case: ballast rows, the application's table contents, role settings,
whether the application can write, and the state a check-mode run must leave alone.
"""

from __future__ import annotations

import psycopg2
import psycopg2.errors


def add_ballast(cluster, rows, dead_fraction=0.0):
    """``ballast.rows`` in the app database: ``rows`` rows of incompressible text, outside the application's
    ``public`` schema (so table_fingerprints does not include it), with ``dead_fraction`` of them deleted
    again to leave dead tuples for VACUUM."""
    cluster.execute(
        'CREATE SCHEMA IF NOT EXISTS ballast; '
        'CREATE TABLE ballast.rows AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body '
        'FROM generate_series(1, %d) g' % rows, dbname='app')
    if dead_fraction:
        cluster.execute('DELETE FROM ballast.rows WHERE id %% 100 < %d' % int(dead_fraction * 100), dbname='app')


def table_fingerprints(cluster, dbname='app'):
    """``{table: (bytes, md5 of all rows in key order)}`` for the application's tables."""
    tables = [row[0] for row in cluster.execute(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        dbname=dbname)]
    prints = {}
    for table in tables:
        row = cluster.execute(
            'SELECT pg_total_relation_size(%s::regclass), md5(coalesce(string_agg(t::text, chr(10) ORDER BY t::text), %s))'
            ' FROM %s t' % ("'%s'" % table, "''", table), dbname=dbname)[0]
        prints[table] = (int(row[0]), row[1])
    return prints


def table_contents(cluster):
    """``{table: md5 of its rows}`` from table_fingerprints, without the on-disk size.

    The size (pg_total_relation_size) moves without any row changing: autovacuum adds the visibility
    and free-space maps of a table it visits. The rows are what a fault must not lose.
    """
    return dict((table, digest) for table, (dummy, digest) in table_fingerprints(cluster).items())


def role_read_only(cluster, role='app'):
    """The role's own default_transaction_read_only (role-wide), or None when it has none."""
    config = cluster.execute('SELECT rolconfig FROM pg_roles WHERE rolname = %s', (role,))[0][0] or []
    for item in config:
        key, dummy, value = item.partition('=')
        if key == 'default_transaction_read_only':
            return value
    return None


def role_config(cluster, role):
    """``rolconfig`` of a role (role-wide settings) and its per-database settings, as sorted lists."""
    rows = cluster.execute(
        "SELECT coalesce(d.datname, '*'), s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = %s ORDER BY 1", (role,))
    return sorted((name, sorted(config or [])) for name, config in rows)


def app_can_write(cluster):
    """Whether a new session of the application role can write: an UPDATE in a transaction rolled back."""
    conn = cluster.connect('app', user='app')
    try:
        with conn.cursor() as cursor:
            cursor.execute('SHOW default_transaction_read_only')
            setting = cursor.fetchone()[0]
            try:
                cursor.execute('UPDATE customers SET email = email WHERE id = 1')
                return setting == 'off'
            except psycopg2.errors.ReadOnlySqlTransaction:
                return False
            finally:
                conn.rollback()
    finally:
        conn.close()


def database_state(cluster):
    """What a check-mode run must leave as it is: app tables, every role's settings, the list of databases."""
    return dict(
        tables=table_fingerprints(cluster),
        roles=cluster.execute('SELECT rolname, rolconfig FROM pg_roles ORDER BY 1'),
        role_settings=cluster.execute(
            'SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2'),
        databases=cluster.execute('SELECT datname FROM pg_database ORDER BY 1'),
    )

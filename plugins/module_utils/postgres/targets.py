# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which databases a database-care module works on, and connections to each.

pg_vacuum and pg_insight accept ``databases: [app, billing]`` or
``databases: all``; each database needs its own connection, opened through
the shared helper with only ``login_db`` replaced, so every connection option
(and every connection error message) stays the operator's.
"""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
    StatementRunner,
    connect_or_fail,
    describe_target,
)

try:
    import psycopg2
    DB_ERRORS = (psycopg2.Error,)
except ImportError:  # without psycopg2 no connection opens: the module reports the missing library first
    DB_ERRORS = ()

ALL = 'all'

LIST_DATABASES = (
    "SELECT datname, has_database_privilege(datname, 'CONNECT') FROM pg_database "
    "WHERE datallowconn AND NOT datistemplate ORDER BY datname"
)


def params_for(params, database):
    """Module parameters with ``login_db`` replaced: the connection options for ``database``."""
    return dict(params, login_db=database)


def default_database(params):
    return params.get('login_db') or 'postgres'


def resolve_databases(runner, requested, params):
    """The databases to work on, checked against ``pg_database`` before anything runs.

    ``requested`` empty means the database of ``login_db``; ``[all]`` means every
    database that allows connections, is not a template and that the login role
    may connect to. A named database that does not exist, or that the role may
    not connect to, raises :class:`PostgresError` naming it and the choices; so
    does a catalog read that the server refuses or cancels.
    """
    try:
        rows = runner.rows(LIST_DATABASES)
    except DB_ERRORS as exc:
        raise PostgresError(
            'cannot list the databases (pg_database) on %s: %s; nothing was changed: give the login role read access '
            'to pg_database (or log in as a role that has it) and check its statement_timeout'
            % (describe_target(params), (str(exc).strip().splitlines() or [type(exc).__name__])[0])) from None
    connectable = [name for name, allowed in rows if allowed]
    if requested == [ALL]:
        return connectable
    wanted = list(requested or [default_database(params)])
    known = dict(rows)
    for name in wanted:
        if name not in known:
            raise PostgresError('database %r does not exist (or is a template or refuses connections) on %s:%s: '
                                'check databases (connectable: %s)'
                                % (name, params.get('login_host') or params.get('login_unix_socket') or 'local socket',
                                   params.get('login_port'), ', '.join(connectable) or 'none'))
        if not known[name]:
            raise PostgresError('role %r may not connect to database %r: grant CONNECT or remove it from databases'
                                % (params.get('login_user'), name))
    return list(dict.fromkeys(wanted))


def connect_and_resolve(module):
    """Open the module's login connection and resolve ``databases``, or fail_json with the SQL run so far.

    Returns (connection, StatementRunner, databases); the caller closes the connection.
    """
    conn = connect_or_fail(module)
    runner = StatementRunner(conn)
    try:
        return conn, runner, resolve_databases(runner, module.params['databases'], module.params)
    except PostgresError as exc:
        conn.close()
        module.fail_json(msg=str(exc), executed_commands=runner.executed)
    return None  # not reached: fail_json exits

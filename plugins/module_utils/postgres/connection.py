# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One PostgreSQL connection helper for every module of the collection.

Private to the collection. Modules take their connection options from the
``engineroom.maintenance.postgres`` doc fragment and the argument spec below,
and open connections only through :func:`connect`, so that every module gives
the same clear message for the same failure (wrong password, refused port,
unknown database, missing psycopg2) instead of a driver traceback.
"""

from __future__ import annotations

import sys
import traceback

try:
    import psycopg2
    import psycopg2.extensions
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError:
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.os_user import OsUserError, acting_as

SSL_MODES = ['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']

# Connection options, in the names community.postgresql uses. Defaults match
# doc_fragments/postgres.py (validate-modules compares the two).
POSTGRES_CONNECTION_SPEC = dict(
    login_host=dict(type='str', default='', aliases=['host']),
    login_port=dict(type='int', default=5432, aliases=['port']),
    login_user=dict(type='str', default='postgres', aliases=['user']),
    login_password=dict(type='str', default='', no_log=True, aliases=['password']),
    login_db=dict(type='str', default='', aliases=['db']),
    login_unix_socket=dict(type='str', default='', aliases=['unix_socket']),
    ssl_mode=dict(type='str', default='prefer', choices=SSL_MODES),
    ca_cert=dict(type='path', aliases=['ssl_rootcert']),
    ssl_cert=dict(type='path'),
    ssl_key=dict(type='path', no_log=False),
    connect_timeout=dict(type='int', default=10),
    login_os_user=dict(type='str', default=''),
)

# Certificate options and the libpq connection keywords (and environment variables) they become.
SSL_FILE_OPTIONS = (
    ('ca_cert', 'sslrootcert', 'PGSSLROOTCERT'),
    ('ssl_cert', 'sslcert', 'PGSSLCERT'),
    ('ssl_key', 'sslkey', 'PGSSLKEY'),
)


class PostgresError(Exception):
    """A PostgreSQL failure already phrased for an operator (object, cause, next step)."""


def postgres_argument_spec():
    """Return a fresh copy of the shared connection argument spec."""
    return dict((name, dict(spec)) for name, spec in POSTGRES_CONNECTION_SPEC.items())


def describe_target(params):
    """Say where a connection goes, e.g. ``monitor@127.0.0.1:5432/app``."""
    host = params.get('login_unix_socket') or params.get('login_host') or 'local socket'
    port = params.get('login_port') or 5432
    database = params.get('login_db') or params.get('login_user') or 'postgres'
    return '%s@%s:%s/%s' % (params.get('login_user') or 'postgres', host, port, database)


def connection_kwargs(params):
    """Translate module options into psycopg2.connect keyword arguments.

    A unix socket directory wins over a host name, as with libpq itself.
    """
    kwargs = dict(
        user=params.get('login_user') or 'postgres',
        port=params.get('login_port') or 5432,
        dbname=params.get('login_db') or 'postgres',
        sslmode=params.get('ssl_mode') or 'prefer',
        connect_timeout=max(1, int(params.get('connect_timeout') or 10)),
        application_name='engineroom.maintenance',
    )
    host = params.get('login_unix_socket') or params.get('login_host')
    if host:
        kwargs['host'] = host
    if params.get('login_password'):
        kwargs['password'] = params['login_password']
    for option, keyword, _variable in SSL_FILE_OPTIONS:
        if params.get(option):
            kwargs[keyword] = params[option]
    return kwargs


def ssl_environment(params):
    """The certificate options as libpq environment variables, for client programs (pg_dump, psql)."""
    return dict((variable, params[option]) for option, _keyword, variable in SSL_FILE_OPTIONS if params.get(option))


def explain_connect_error(params, error):
    """Turn a libpq connection error into a sentence that names the next step."""
    text = str(error).strip()
    lowered = text.lower()
    target = describe_target(params)
    if 'password authentication failed' in lowered or 'no password supplied' in lowered:
        hint = 'check login_user and login_password'
    elif 'does not exist' in lowered and 'database' in lowered:
        hint = 'check login_db: the database %r does not exist' % (params.get('login_db') or 'postgres')
    elif 'does not exist' in lowered and 'role' in lowered:
        hint = 'check login_user: the role %r does not exist' % (params.get('login_user') or 'postgres')
    elif 'could not translate host name' in lowered or 'name or service not known' in lowered:
        hint = 'check login_host: the name does not resolve'
    elif 'connection refused' in lowered or 'no such file or directory' in lowered:
        hint = 'is PostgreSQL running and listening there? check login_host/login_port/login_unix_socket'
    elif 'timeout expired' in lowered or 'timed out' in lowered:
        hint = 'no answer within connect_timeout: check the network path and login_host/login_port'
    elif 'peer authentication failed' in lowered:
        hint = ('the server admits %r only from the OS user of the same name over the unix socket: set '
                'login_os_user (with become: true) or connect over TCP with a password' % (params.get('login_user') or 'postgres'))
    elif 'no pg_hba.conf entry' in lowered:
        hint = 'the server refuses this client in pg_hba.conf'
    elif 'certificate' in lowered or 'ssl' in lowered:
        hint = 'check ssl_mode, ca_cert, ssl_cert and ssl_key (verify-full also needs login_host to match the ' \
               'server certificate\'s name)'
    else:
        hint = 'check the connection options'
    first_line = text.splitlines()[0] if text else type(error).__name__
    return 'cannot connect to PostgreSQL as %s: %s (%s)' % (target, first_line, hint)


def connect(params, autocommit=True):
    """Open a psycopg2 connection or raise :class:`PostgresError` with a clear message."""
    if not HAS_PSYCOPG2:
        raise PostgresError(
            'the Python library psycopg2 is not installed on the target host: '
            'install python3-psycopg2 or psycopg2-binary for %s' % (sys.executable or 'the target Python'))
    try:
        with acting_as(params.get('login_os_user')):
            conn = psycopg2.connect(**connection_kwargs(params))
    except OsUserError as exc:
        raise PostgresError(str(exc)) from exc
    except psycopg2.Error as exc:
        raise PostgresError(explain_connect_error(params, exc)) from exc
    conn.autocommit = autocommit
    return conn


def connect_or_fail(module, autocommit=True):
    """Module-level wrapper of :func:`connect`: fail_json with the message instead of raising."""
    if not HAS_PSYCOPG2:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('psycopg2'), exception=PSYCOPG2_IMPORT_ERROR)
    try:
        return connect(module.params, autocommit=autocommit)
    except PostgresError as exc:
        module.fail_json(msg=str(exc))
    return None  # not reached: fail_json exits


class StatementRunner:
    """Run statements on one cursor and remember them for ``executed_commands``.

    Statements are ``psycopg2.sql`` compositions or constant strings; values go
    through parameters, never through string formatting.
    """

    def __init__(self, conn):
        self.conn = conn
        self.executed = []

    def _record(self, cursor, statement):
        if isinstance(statement, str):
            self.executed.append(statement)
        else:
            self.executed.append(statement.as_string(cursor))

    def rows(self, statement, params=None):
        """Execute and return all rows."""
        with self.conn.cursor() as cursor:
            self._record(cursor, statement)
            cursor.execute(statement, params)
            return cursor.fetchall()

    def scalar(self, statement, params=None):
        """Execute and return the first column of the first row (None when no row)."""
        rows = self.rows(statement, params)
        return rows[0][0] if rows else None

    def run(self, statement, params=None):
        """Execute a statement that returns no rows (VACUUM, DELETE, SET, ALTER ROLE); return its rowcount."""
        with self.conn.cursor() as cursor:
            self._record(cursor, statement)
            cursor.execute(statement, params)
            return cursor.rowcount

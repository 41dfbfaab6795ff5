# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Access review: PostgreSQL superusers and application logins that went stale."""

from __future__ import annotations

import datetime

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:
    psycopg2 = sql = None  # the connect callable reports the missing library when the database checks are asked for

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    POSTGRES_CONNECTION_SPEC,
    StatementRunner,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import (
    DB_CHECKS,
    AuditConfigError,
    AuditFailure,
    finding,
)

SUPERUSERS_SQL = 'SELECT rolname, rolcanlogin FROM pg_catalog.pg_roles WHERE rolsuper ORDER BY rolname'
CONNECTION_KEYS = ('login_host', 'login_port', 'login_user', 'login_password', 'login_db', 'login_unix_socket')


def superuser_findings(rows, expected):
    """(superusers list, findings) from (name, can_login) rows."""
    superusers = [dict(name=name, can_login=bool(can_login), expected=name in expected) for name, can_login in rows]
    found = [finding('pg_superuser', 'medium' if entry['can_login'] else 'low',
                     'role %s is a superuser%s and not in expected_superusers: revoke SUPERUSER or add it there'
                     % (entry['name'], '' if entry['can_login'] else ' (NOLOGIN)'),
                     object='role:%s' % entry['name'])
             for entry in superusers if not entry['expected']]
    return superusers, found


def as_utc(value, name):
    """A timestamp from the last-login source in UTC; naive values are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = datetime.datetime.combine(value, datetime.time())
    if not isinstance(value, datetime.datetime):
        raise AuditConfigError('the last-login source gave %r for %s, not a timestamp: its second column must be a '
                               'timestamp or date' % (value, name))
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def stale_login_findings(rows, stale_days, now):
    """(checked entries, findings) for (name, last login) rows: never logged in or not for ``stale_days``."""
    entries = []
    found = []
    for row in rows:
        if len(row) < 2:
            raise AuditConfigError('the last-login source must return two columns (login name, last login time), got %d'
                                   % len(row))
        name, last = str(row[0]), as_utc(row[1], row[0])
        days = None if last is None else (now - last).days
        stale = last is None or days >= stale_days
        entries.append(dict(name=name, last_login=None if last is None else last.strftime('%Y-%m-%dT%H:%M:%SZ'),
                            days_since=days, stale=stale))
        if stale:
            found.append(finding('stale_login', 'low',
                                 'user %s %s: disable the account if it is no longer needed' % (
                                     name, 'has never logged in' if last is None
                                     else 'last logged in %s, %d days ago (limit %d)' % (
                                         last.strftime('%Y-%m-%d'), days, stale_days)),
                                 object='user:%s' % name, last_login=entries[-1]['last_login'], days_since=days))
    return entries, found


def table_identifier(name):
    """Split ``schema.table`` (or ``table``) into the parts sql.Identifier takes."""
    parts = name.split('.')
    if len(parts) > 2 or not all(parts):
        raise AuditConfigError('last_login_table %r is not "table" or "schema.table"' % name)
    return parts


def database_configured(params):
    """The database checks run only when a connection option was given (differs from its default)."""
    return any(params[key] != POSTGRES_CONNECTION_SPEC[key]['default'] for key in CONNECTION_KEYS)


def last_login_statement(params):
    """The statement reading (login name, last login): the operator's query, or a composed SELECT."""
    if params['last_login_query']:
        return params['last_login_query']
    return sql.SQL('SELECT {user}::text, {last} FROM {table} ORDER BY 1').format(
        user=sql.Identifier(params['last_login_user_column']),
        last=sql.Identifier(params['last_login_column']),
        table=sql.Identifier(*table_identifier(params['last_login_table'])))


def runnable_db_checks(params, checks, status, notes):
    """The database checks that can run; the others are marked skipped with a note."""
    wanted = [name for name in DB_CHECKS if name in checks]
    if wanted and not database_configured(params):
        for name in wanted:
            status[name] = 'skipped'
        notes.append('no PostgreSQL connection option given: %s skipped' % ', '.join(wanted))
        return []
    if 'stale_logins' in wanted and not (params['last_login_query'] or params['last_login_table']):
        status['stale_logins'] = 'skipped'
        notes.append('stale_logins skipped: PostgreSQL keeps no last-login time for roles; give the application\'s '
                     'users table (last_login_table, last_login_user_column, last_login_column) or last_login_query')
        wanted.remove('stale_logins')
    return wanted


def read_logins(runner, params, now):
    """(entries, findings) of the last-login source; AuditFailure when it cannot be read or has the wrong shape."""
    try:
        rows = runner.rows(last_login_statement(params))
    except psycopg2.Error as exc:
        raise AuditFailure('the last-login source on database %s cannot be read: %s (check %s)' % (
            params['login_db'] or 'postgres', (exc.pgerror or str(exc)).strip().splitlines()[0],
            'last_login_query' if params['last_login_query'] else
            'last_login_table, last_login_user_column and last_login_column'), runner.executed) from None
    try:
        return stale_login_findings(rows, params['stale_days'], now)
    except AuditConfigError as exc:
        raise AuditFailure(str(exc), runner.executed) from None


def access_review(params, checks, status, notes, executed, connect):
    """Superusers and stale logins as (access, findings); AuditFailure when a configured database cannot be read.

    ``connect`` opens the connection (the module's, which fails the task when it cannot).
    """
    access = dict(superusers=[], logins=[])
    wanted = runnable_db_checks(params, checks, status, notes)
    if not wanted:
        return access, []
    conn = connect()
    found = []
    try:
        conn.set_session(readonly=True, autocommit=True)
        runner = StatementRunner(conn)
        try:
            if 'superusers' in wanted:
                access['superusers'], more = superuser_findings(runner.rows(SUPERUSERS_SQL), params['expected_superusers'])
                found.extend(more)
            if 'stale_logins' in wanted:
                access['logins'], more = read_logins(runner, params, datetime.datetime.now(datetime.timezone.utc))
                found.extend(more)
        except psycopg2.Error as exc:
            raise AuditFailure('access review on %s failed: %s' % (params['login_db'] or 'postgres', str(exc).strip()),
                               executed + runner.executed) from None
        except AuditFailure as exc:
            raise AuditFailure(str(exc), executed + exc.executed) from None
        executed.extend(runner.executed)
    finally:
        conn.close()
    for name in wanted:
        status[name] = 'ran'
    return access, found

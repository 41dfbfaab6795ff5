# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make PostgreSQL roles read-only by default during maintenance, and put them back exactly.

The switch is the ``default_transaction_read_only`` setting of a role. A role
can carry it role-wide (``ALTER ROLE r SET``) and per database (``ALTER ROLE r
IN DATABASE d SET``), and the per-database one wins; so making a role
read-only sets it role-wide *and* in every database where the role has its own
value, and the snapshot taken first lists exactly those entries with their
previous values (None for "not set"), so that a restore can ``RESET`` what was
not set and re-set what was. All changes of one step run in one transaction:
ALTER ROLE is transactional, so either every role changes or none does.

This is a session default: any client may still run ``SET
default_transaction_read_only = off``. It stops an application's writes, not a
deliberate user.
"""

from __future__ import annotations

import time

try:
    from psycopg2 import sql
except ImportError:  # the module reports the missing library through connect_or_fail
    sql = None

SETTING = 'default_transaction_read_only'
TRUE_WORDS = ('on', 'true', 'yes', '1', 't', 'y')
SESSION_POLL_S = 0.5


class RoleProblem(ValueError):
    """A role list that must not be applied (unknown role, superuser, admin role listed, the login role)."""


def check_roles(runner, readonly_roles, admin_roles):
    """Raise :class:`RoleProblem` unless every listed role may be made read-only.

    Returns the names of listed roles that cannot log in: their settings do
    not reach the members that log in through them, which the module warns about.
    """
    overlap = sorted(set(readonly_roles) & set(admin_roles))
    if overlap:
        raise RoleProblem('role(s) %s are listed in both readonly_roles and admin_roles: admin roles are never '
                          'made read-only, remove them from one list' % ', '.join(overlap))
    wanted = sorted(set(readonly_roles) | set(admin_roles))
    rows = runner.rows('SELECT rolname, rolsuper, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)', (wanted,))
    found = dict((name, (superuser, can_login)) for name, superuser, can_login in rows)
    unknown = [name for name in wanted if name not in found]
    if unknown:
        raise RoleProblem('role(s) %s do not exist on the server: check readonly_roles/admin_roles for typos'
                          % ', '.join(unknown))
    superusers = [name for name in readonly_roles if found[name][0]]
    if superusers:
        raise RoleProblem('role(s) %s are superusers: superusers ignore nothing and are never made read-only, '
                          'remove them from readonly_roles' % ', '.join(superusers))
    login = runner.rows('SELECT session_user, current_user')[0]
    own = [name for name in readonly_roles if name in login]
    if own:
        raise RoleProblem('role(s) %s are the role this module logs in as (login_user): made read-only, every later '
                          'session of it, the release included, would be read-only; log in as another role (a '
                          'superuser or an admin role with CREATEROLE) or remove it from readonly_roles'
                          % ', '.join(own))
    return [name for name in readonly_roles if not found[name][1]]


def _setting_value(setconfig):
    for entry in setconfig or []:
        name, _sep, value = entry.partition('=')
        if name == SETTING:
            return value
    return None


def snapshot(runner, role):
    """The role's current entries: role-wide always, per database where it sets the parameter."""
    rows = runner.rows(
        'SELECT d.datname, s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole '
        'LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = %s ORDER BY d.datname NULLS FIRST', (role,))
    settings = [dict(database=None, value=None)]
    for database, setconfig in rows:
        value = _setting_value(setconfig)
        if database is None:
            settings[0]['value'] = value
        elif value is not None:
            settings.append(dict(database=database, value=value))
    return dict(role=role, settings=settings)


def is_read_only(entry):
    """True when every entry of a snapshot already says read-only."""
    return all((s['value'] or '').lower() in TRUE_WORDS for s in entry['settings'])


def _alter(role, database, value):
    target = sql.SQL('ALTER ROLE {}').format(sql.Identifier(role))
    if database is not None:
        target = sql.SQL('{} IN DATABASE {}').format(target, sql.Identifier(database))
    if value is None:
        return sql.SQL('{} RESET {}').format(target, sql.Identifier(SETTING))
    return sql.SQL('{} SET {} = {}').format(target, sql.Identifier(SETTING), sql.Literal(value))


def _in_transaction(runner, statements):
    """Run ``statements`` in one transaction that is read-write whatever the session's default says.

    ``SET TRANSACTION READ WRITE`` comes first: should the login role itself
    have become read-only by default (set by hand, or by an older version),
    the restore must still be able to run its ALTER ROLEs.
    """
    conn = runner.conn
    conn.autocommit = False
    try:
        runner.run('SET TRANSACTION READ WRITE')
        for statement in statements:
            runner.run(statement)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True


def make_read_only(runner, entries):
    """Set every entry of the given snapshots to ``on``, in one transaction."""
    _in_transaction(runner, [_alter(e['role'], s['database'], 'on') for e in entries for s in e['settings']])


def restore(runner, entries):
    """Put every entry back to its recorded value (RESET where there was none), in one transaction.

    A per-database entry whose database was dropped meanwhile is skipped: DROP
    DATABASE removed its settings with it, and ``ALTER ROLE ... IN DATABASE``
    of a missing database would roll back the whole restore, for good.
    Returns the skipped entries as (role, database) pairs.
    """
    wanted = sorted(set(s['database'] for e in entries for s in e['settings'] if s['database'] is not None))
    existing = set(row[0] for row in runner.rows('SELECT datname FROM pg_database WHERE datname = ANY(%s)',
                                                 (wanted,))) if wanted else set()
    skipped = [(e['role'], s['database']) for e in entries for s in e['settings']
               if s['database'] is not None and s['database'] not in existing]
    _in_transaction(runner, [_alter(e['role'], s['database'], s['value']) for e in entries for s in e['settings']
                             if s['database'] is None or s['database'] in existing])
    return skipped


def count_sessions(runner, roles):
    return runner.scalar('SELECT count(*) FROM pg_stat_activity WHERE usename = ANY(%s) AND pid <> pg_backend_pid()',
                         (list(roles),))


def terminate_sessions(runner, roles, grace_s, sleep=time.sleep):
    """Give the roles' sessions ``grace_s`` seconds to end, then terminate the rest; return how many."""
    deadline = time.monotonic() + grace_s
    while count_sessions(runner, roles) and time.monotonic() < deadline:
        sleep(min(SESSION_POLL_S, max(0.0, deadline - time.monotonic())))
    return runner.scalar('SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity '
                         'WHERE usename = ANY(%s) AND pid <> pg_backend_pid()', (list(roles),))


def merge_snapshot(recorded, current):
    """Add to a recorded snapshot the per-database entries it lacks, with their current values.

    Used when a role of a held lock drifted (someone reset it, or added a
    per-database value): the recorded previous values stay authoritative, new
    entries are remembered so that a release puts them back too.
    """
    known = set(s['database'] for s in recorded['settings'])
    extra = [dict(s) for s in current['settings'] if s['database'] not in known]
    return dict(recorded, settings=list(recorded['settings']) + extra)

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster globals a database snapshot needs: its roles, their attributes, memberships and settings.

After them, a ``-- database: <name>`` block holds the database-level state a
dump into an existing database does not carry (owner, connection limit,
comment, ACL, ``ALTER DATABASE``/``ALTER ROLE ... IN DATABASE`` settings),
as statements on that database: what a restore drill (or an operator
restoring by hand) applies after the dump.

Written as a sibling artifact (``<artifact>.globals.sql``, mode 0600, its
sha256 in the manifest) in the style of ``pg_dumpall --globals-only
--no-role-passwords``: one block per role, so that a drill can create
exactly the roles a server lacks (``create_missing_roles``). Role passwords
(their stored hashes, from ``pg_authid``) are written only when asked
(``no_role_passwords: false``, which needs a superuser).
"""

from __future__ import annotations

import re

GLOBALS_SUFFIX = '.globals.sql'
BLOCK = '-- role: '
ROLES_SQL = (
    "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, "
    "rolconnlimit FROM pg_roles WHERE rolname = ANY(%s) ORDER BY 1")
MEMBERSHIPS_SQL = (
    "SELECT r.rolname, m.rolname, m2.admin_option FROM pg_auth_members m2 JOIN pg_roles r ON r.oid = m2.roleid "
    "JOIN pg_roles m ON m.oid = m2.member WHERE m.rolname = ANY(%s) ORDER BY 2, 1")
ROLE_SETTINGS_SQL = (
    "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
    "WHERE s.setdatabase = 0 AND r.rolname = ANY(%s) ORDER BY 1")
PASSWORDS_SQL = "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s) AND rolpassword IS NOT NULL"
SUPERUSER_SQL = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
PASSWORD_CLAUSE = re.compile(r"( PASSWORD )'(?:[^']|'')*'")
DATABASE_BLOCK = '-- database: '
# One item of a database ACL (as to_jsonb gives them): grantee (empty for PUBLIC, double-quoted when needed)=privileges/grantor.
ACL_ITEM = re.compile(r'^("(?:[^"]|"")*"|[^=]*)=([A-Za-z*]*)/(.*)$')
DATABASE_PRIVILEGES = dict(C='CREATE', T='TEMPORARY', c='CONNECT')
# The roles a statement of the database block names (quoted identifiers after TO, FROM or ROLE; PUBLIC is not one).
ROLE_REFERENCE = re.compile(r'(?:TO|FROM|ROLE) ("(?:[^"]|"")*")')
LIST_SETTINGS = ('search_path', 'temp_tablespaces', 'session_preload_libraries', 'local_preload_libraries')
GRANT_LINE = re.compile(r'^GRANT ("(?:[^"]|"")*") TO ("(?:[^"]|"")*")')
FLAGS = ('SUPERUSER', 'INHERIT', 'CREATEROLE', 'CREATEDB', 'LOGIN', 'REPLICATION', 'BYPASSRLS')


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def quote_literal(value):
    """A string constant; an escape string (E'...') when the value holds a backslash or a line break."""
    if '\\' in value or '\n' in value or '\r' in value:
        return "E'%s'" % value.replace('\\', '\\\\').replace("'", "''").replace('\n', '\\n').replace('\r', '\\r')
    return "'%s'" % value.replace("'", "''")


def setting_sql(name, value):
    """A stored setting (``pg_db_role_setting``) as ``SET`` takes it: list settings item by item, as pg_dumpall writes them."""
    if name.lower() not in LIST_SETTINGS:
        return quote_literal(value)
    items = [item.strip() for item in value.split(',')]
    return ', '.join(quote_literal(unquote_ident(item) if item.startswith('"') else item) for item in items)


def mask_password(statement):
    """A statement of the globals artifact as it may be shown (``executed_commands``): its password masked."""
    return PASSWORD_CLAUSE.sub(r"\1'********'", statement)


def globals_sql(runner, roles, passwords=False):
    """SQL creating ``roles`` as they are on this server, one ``-- role: name`` block each.

    ``passwords``: with each role's stored password hash (read from
    ``pg_authid``: superuser only, see :data:`SUPERUSER_SQL`); otherwise no
    password is written.
    """
    blocks = {}
    for row in runner.rows(ROLES_SQL, (list(roles),)):
        name, flags, limit = row[0], row[1:8], row[8]
        options = ' '.join(('' if flag else 'NO') + word for flag, word in zip(flags, FLAGS))
        blocks[name] = ['CREATE ROLE %s;' % quote_ident(name),
                        'ALTER ROLE %s WITH %s CONNECTION LIMIT %d;' % (quote_ident(name), options, limit)]
    if passwords:
        for name, password in runner.rows(PASSWORDS_SQL, (list(roles),)):
            blocks[name].append('ALTER ROLE %s PASSWORD %s;' % (quote_ident(name), quote_literal(password)))
    for name, config in runner.rows(ROLE_SETTINGS_SQL, (list(roles),)):
        for item in config or ():
            key, _sep, value = item.partition('=')
            blocks[name].append('ALTER ROLE %s SET %s TO %s;' % (quote_ident(name), quote_ident(key), setting_sql(key, value)))
    grants = ['GRANT %s TO %s%s;' % (quote_ident(role), quote_ident(member), ' WITH ADMIN OPTION' if admin else '')
              for role, member, admin in runner.rows(MEMBERSHIPS_SQL, (list(roles),))]
    lines = ['-- Roles this snapshot needs (engineroom.maintenance); %s.'
             % ('with password hashes' if passwords else 'no passwords')]
    for name in sorted(blocks):
        lines.append(BLOCK + name)
        lines.extend(blocks[name])
    lines.append('-- memberships')
    lines.extend(grants)
    return '\n'.join(lines) + '\n'


def database_sql(state, name):
    """The database-level state of ``state`` (``fingerprint.database_state``) as statements on database ``name``.

    What ``pg_dump --create`` would add and a dump into an existing database
    lacks: owner, connection limit, comment, ACL (replayed item by item, so
    that the restored ACL reads the same), ``ALTER DATABASE ... SET`` and
    ``ALTER ROLE ... IN DATABASE ... SET``. One statement a line.
    """
    database = 'DATABASE ' + quote_ident(name)
    owner = state.get('owner')
    lines = ['ALTER %s OWNER TO %s;' % (database, quote_ident(owner))] if owner else []
    if state.get('connection_limit') not in (None, -1):
        lines.append('ALTER %s WITH CONNECTION LIMIT %d;' % (database, state['connection_limit']))
    if state.get('comment') is not None:
        lines.append('COMMENT ON %s IS %s;' % (database, quote_literal(state['comment'])))
    if state.get('acl') is not None:
        lines.extend(_acl_sql(state['acl'], database, owner))
    for key, value in sorted((state.get('settings') or {}).items()):
        role, _sep, setting = key[len('role '):].partition(': ') if key.startswith('role ') else (None, '', key)
        target = 'ALTER ROLE %s IN %s' % (quote_ident(role), database) if role else 'ALTER ' + database
        lines.append('%s SET %s TO %s;' % (target, quote_ident(setting), setting_sql(setting, value)))
    return lines


def database_block(state, name):
    """The ``-- database:`` block of a globals artifact (:func:`database_sql`), read back by :func:`parse_database_block`."""
    return DATABASE_BLOCK + name + '\n' + ''.join(line + '\n' for line in database_sql(state, name))


def _acl_sql(acl, database, owner):
    items = acl if isinstance(acl, list) else acl.strip('{}').split(',')
    lines = ['REVOKE ALL ON %s FROM PUBLIC;' % database]
    if owner:
        lines.append('REVOKE ALL ON %s FROM %s;' % (database, quote_ident(owner)))
    for item in items:
        match = ACL_ITEM.match(item)
        if not match:
            continue
        grantee, privileges, grantor = match.groups()
        grantee, grantor = _acl_role(grantee), _acl_role(grantor)
        for option in (False, True):
            words = [DATABASE_PRIVILEGES[letter] for index, letter in enumerate(privileges)
                     if letter in DATABASE_PRIVILEGES and privileges[index + 1:index + 2].startswith('*') == option]
            if not words:
                continue
            grant = 'GRANT %s ON %s TO %s%s;' % (', '.join(words), database, grantee or 'PUBLIC',
                                                 ' WITH GRANT OPTION' if option else '')
            if grantor and owner and grantor != quote_ident(owner):
                grant = 'SET ROLE %s; %s RESET ROLE;' % (grantor, grant)  # granted by a role holding the grant option
            lines.append(grant)
    return lines


def _acl_role(name):
    """An ACL item's role name as a quoted identifier ('' for PUBLIC)."""
    if not name:
        return ''
    return quote_ident(unquote_ident(name) if name.startswith('"') else name)


def roles_named(statement):
    """The roles a statement of :func:`database_sql` names."""
    return [unquote_ident(name) for name in ROLE_REFERENCE.findall(statement)]


def parse_database_block(text):
    """(database name, [statements]) of the ``-- database:`` block of a globals artifact; (None, []) without one."""
    name, lines = None, []
    for line in text.splitlines():
        if line.startswith(DATABASE_BLOCK):
            name = line[len(DATABASE_BLOCK):]
        elif name is not None and line and not line.startswith('--'):
            lines.append(line)
    return name, lines


def unquote_ident(name):
    return name[1:-1].replace('""', '"')


def grant_roles(statement):
    """(role, member) of a membership grant line of :func:`globals_sql`."""
    match = GRANT_LINE.match(statement)
    return (unquote_ident(match.group(1)), unquote_ident(match.group(2))) if match else (None, None)


def parse_globals(text):
    """({role: [statements]}, [membership grants]) from :func:`globals_sql` output."""
    blocks, grants, current = {}, [], None
    for line in text.splitlines():
        if line.startswith(BLOCK):
            current = blocks.setdefault(line[len(BLOCK):], [])
        elif line == '-- memberships':
            current = grants
        elif line.startswith(DATABASE_BLOCK):
            current = None
        elif line and not line.startswith('--') and current is not None:
            current.append(line)
    return blocks, grants

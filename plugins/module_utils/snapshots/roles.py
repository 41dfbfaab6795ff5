# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster globals a database snapshot needs: its roles, their attributes, memberships and settings.

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
GRANT_LINE = re.compile(r'^GRANT ("(?:[^"]|"")*") TO ("(?:[^"]|"")*")')
FLAGS = ('SUPERUSER', 'INHERIT', 'CREATEROLE', 'CREATEDB', 'LOGIN', 'REPLICATION', 'BYPASSRLS')


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def quote_literal(value):
    return "'%s'" % value.replace("'", "''")


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
            blocks[name].append('ALTER ROLE %s SET %s TO %s;' % (quote_ident(name), quote_ident(key), quote_literal(value)))
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
        elif line and not line.startswith('--') and current is not None:
            current.append(line)
    return blocks, grants

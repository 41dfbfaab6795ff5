# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content fingerprints of a database, and comparing two of them.

Taken on the dump's own connection, inside the snapshot pg_dump reads
(``pg_export_snapshot``), so the fingerprint describes exactly the data the
dump holds; the restore drill takes the same fingerprint of the restored
database and :func:`compare` names the first differences.

A fingerprint (``fingerprint: full``) holds per table (leaf partitions and
plain tables, ``ONLY`` so an inheritance parent's rows are its own) the row
count and an order-independent content hash: the sum, as numeric, of each
row's 64-bit hash (duplicates count, order does not). The row hash is the
server's own ``hash_record_extended`` (PostgreSQL 14+; the type hash
functions hash partitioning relies on, stable across versions) where every
column type has one (``hashed_by: record``), about five times cheaper than
hashing the row's text; otherwise (a ``json``, ``xml`` or ``point`` column, an
older server) the first 64 bits of the md5 of the row's text. The drill
hashes each table the way its snapshot did. Per
sequence ``last_value``/``is_called``; the large objects (count and hash of
oid and content); per materialized view whether it is populated and its
content hash; and an inventory of the objects by kind and qualified name
with owner and ACL. ``fingerprint: counts`` keeps everything but the
content hashes of tables and materialized views.

Keys are qualified names with each part quoted when it is not a plain
lower-case identifier, so ``"a.b".c`` and ``a."b.c"`` never collide.
"""

from __future__ import annotations

import re

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.roles import unquote_ident

FINGERPRINT_MODES = ('full', 'counts', 'none')
# Row text does not depend on the session: the same output formats on both sides.
SESSION_SQL = ("SELECT set_config('DateStyle', 'ISO, YMD', false), set_config('TimeZone', 'UTC', false), "
               "set_config('IntervalStyle', 'postgres', false), set_config('extra_float_digits', '3', false), "
               "set_config('bytea_output', 'hex', false), set_config('search_path', '', false)")
PLAIN_IDENTIFIER = re.compile(r'^[a-z_][a-z0-9_$]*$')
USER_SCHEMA = ("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%' "
               "AND n.nspname NOT LIKE 'pg\\_temp\\_%%'")


def _not_extension(classid, oid):
    return ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '%s'::regclass AND d.objid = %s "
            "AND d.deptype = 'e')" % (classid, oid))


RELATIONS_SQL = (
    "SELECT n.nspname, c.relname, c.relkind, c.relispopulated FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm', 'S') AND " + USER_SCHEMA + " AND "
    + _not_extension('pg_class', 'c.oid') + " ORDER BY 1, 2")
CONTENT_HASH = "coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0)::text"
RECORD_HASH = "coalesce(sum(hash_record_extended(t, 0)), 0)::text"
RECORD_HASH_SINCE = 140000
UNDEFINED_FUNCTION = '42883'  # a column type without an extended hash function
LARGE_OBJECTS_SQL = (
    "SELECT count(*), coalesce(sum(('x' || left(md5(oid::text || ':' || md5(lo_get(oid))), 16))::bit(64)"
    "::bigint::numeric), 0)::text FROM pg_largeobject_metadata")
INVENTORY_SQL = ' UNION ALL '.join((
    "SELECT 'schema', quote_ident(n.nspname), pg_get_userbyid(n.nspowner), n.nspacl::text, NULL FROM pg_namespace n "
    "WHERE " + USER_SCHEMA + " AND n.nspname <> 'public' AND " + _not_extension('pg_namespace', 'n.oid'),
    "SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN "
    "'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' ELSE 'index' END, "
    "quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_userbyid(c.relowner), c.relacl::text, "
    "CASE WHEN c.relrowsecurity THEN 'row security' || CASE WHEN c.relforcerowsecurity THEN ' forced' ELSE '' END END "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I') AND " + USER_SCHEMA + " AND "
    + _not_extension('pg_class', 'c.oid'),
    "SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, p.oid::regprocedure::text, "
    "pg_get_userbyid(p.proowner), p.proacl::text, NULL FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE " + USER_SCHEMA + " AND " + _not_extension('pg_proc', 'p.oid'),
    "SELECT 'trigger', t.tgrelid::regclass::text || '.' || quote_ident(t.tgname), NULL, NULL, t.tgenabled::text "
    "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE NOT t.tgisinternal AND " + USER_SCHEMA,
    "SELECT 'event trigger', quote_ident(e.evtname), pg_get_userbyid(e.evtowner), NULL, e.evtenabled::text "
    "FROM pg_event_trigger e WHERE " + _not_extension('pg_event_trigger', 'e.oid'),
    "SELECT 'policy', p.polrelid::regclass::text || '.' || quote_ident(p.polname), NULL, NULL, "
    "coalesce(pg_get_expr(p.polqual, p.polrelid), '') FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " + USER_SCHEMA,
    "SELECT 'constraint', c.conrelid::regclass::text || '.' || quote_ident(c.conname), NULL, NULL, c.contype::text "
    # User schemas only: PostgreSQL 14 and later give the system catalogs constraints of their own, which
    # would make a snapshot of 13 differ from its restore on a newer server.
    "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.conrelid <> 0 AND " + USER_SCHEMA,
    "SELECT 'type', t.oid::regtype::text, pg_get_userbyid(t.typowner), t.typacl::text, NULL FROM pg_type t "
    "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('c', 'd', 'e', 'r', 'm') "
    "AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c') AND " + USER_SCHEMA
    + " AND " + _not_extension('pg_type', 't.oid'),
    "SELECT 'extension', quote_ident(x.extname), NULL, NULL, x.extversion FROM pg_extension x",
    "SELECT 'large object', l.oid::text, pg_get_userbyid(l.lomowner), l.lomacl::text, NULL "
    "FROM pg_largeobject_metadata l",
))
DATABASE_SQL = ("SELECT to_jsonb(d), pg_encoding_to_char(d.encoding), shobj_description(d.oid, 'pg_database'), "
                "pg_get_userbyid(d.datdba) FROM pg_database d WHERE d.datname = current_database()")
DATABASE_SETTINGS_SQL = (
    "SELECT coalesce(r.rolname, ''), s.setconfig FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole "
    "WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1")
# What a scratch database is created with, so that sorting and case folding give what a real restore gives.
LOCALE_KEYS = ('encoding', 'locale_provider', 'collate', 'ctype', 'icu_locale')
# Grantees in an ACL item: "name=privileges/grantor" (an empty name is PUBLIC; names may be double-quoted).
ACL_ROLE = re.compile(r'(?:^|[{,])("(?:[^"]|"")*"|[^=,{}"]*)=[^/]*/("(?:[^"]|"")*"|[^,}]*)')


def qualified(schema, name):
    """``schema.name`` with each part double-quoted unless it is a plain lower-case identifier."""
    return '.'.join(part if PLAIN_IDENTIFIER.match(part) else '"%s"' % part.replace('"', '""')
                    for part in (schema, name))


def take(runner, mode, counts_only=False, like=None):
    """The fingerprint of the database ``runner`` is connected to (in its current transaction), or None for ``none``.

    ``counts_only`` (or ``mode`` counts) leaves out the content hashes.
    ``like``: a fingerprint whose tables and materialized views are hashed
    the same way here (the drill follows its snapshot's ``hashed_by``).
    """
    if mode == 'none':
        return None
    hashed = mode == 'full' and not counts_only
    record = getattr(runner.conn, 'server_version', 0) >= RECORD_HASH_SINCE
    methods = _hash_methods(like) if like else None
    runner.scalar(SESSION_SQL)
    tables, sequences, matviews = {}, {}, {}
    for schema, name, kind, populated in runner.rows(RELATIONS_SQL):
        key = qualified(schema, name)
        ident = '%s.%s' % (_quote(schema), _quote(name))
        if kind == 'S':
            last_value, is_called = runner.rows('SELECT last_value::text, is_called FROM ' + ident)[0]
            sequences[key] = dict(last_value=last_value, is_called=is_called)
        elif kind == 'm':
            matviews[key] = dict(populated=bool(populated))
            if populated:
                matviews[key].update(_content(runner, ident, hashed, _method(methods, 'matviews', key, record)))
        else:
            tables[key] = _content(runner, 'ONLY ' + ident, hashed, _method(methods, 'tables', key, record))
    count, digest = runner.rows(LARGE_OBJECTS_SQL)[0]
    large_objects = dict(count=int(count))
    if hashed:
        large_objects['hash'] = digest
    inventory = {}
    for kind, name, owner, acl, detail in runner.rows(INVENTORY_SQL):
        inventory['%s %s' % (kind, name)] = dict(owner=owner, acl=acl, detail=detail)
    return dict(mode='full' if hashed else 'counts', tables=tables, sequences=sequences, matviews=matviews,
                large_objects=large_objects, inventory=inventory, database=database_state(runner))


def database_state(runner):
    """Encoding, locale, settings (``ALTER DATABASE``/``ALTER ROLE ... IN DATABASE ... SET``), comment, limit, ACL."""
    row, encoding, comment, owner = runner.rows(DATABASE_SQL)[0]
    provider = dict(c='libc', i='icu').get(row.get('datlocprovider'), row.get('datlocprovider'))
    settings = {}
    for role, config in runner.rows(DATABASE_SETTINGS_SQL):
        for item in config or ():
            name, _sep, value = item.partition('=')
            settings['%s%s' % ('role %s: ' % role if role else '', name)] = value
    return dict(encoding=encoding, locale_provider=provider or 'libc', collate=row.get('datcollate'),
                ctype=row.get('datctype'), icu_locale=row.get('daticulocale') or row.get('datlocale'),
                settings=settings, comment=comment, connection_limit=row.get('datconnlimit'), acl=row.get('datacl'),
                owner=owner)


def _quote(part):
    return '"%s"' % part.replace('"', '""')


def _hash_methods(fingerprint):
    return dict((section, dict((key, item.get('hashed_by', 'text')) for key, item in (fingerprint.get(section) or {}).items()))
                for section in ('tables', 'matviews'))


def _method(methods, section, key, record):
    """How to hash one relation: as ``like`` did (text when it did not have it), else by record where the server can."""
    if methods is not None:
        return methods[section].get(key, 'text')
    return 'record' if record else 'text'


def _content(runner, source, hashed, method):
    if not hashed:
        return dict(rows=int(runner.rows('SELECT count(*) FROM %s t' % source)[0][0]))
    if method == 'record':
        found = _record_hashed(runner, source)
        if found:
            return found
    rows, digest = runner.rows('SELECT count(*), %s FROM %s t' % (CONTENT_HASH, source))[0]
    return dict(rows=int(rows), hash=digest)


def _record_hashed(runner, source):
    """Count and record hash of ``source``, or None when one of its column types has no extended hash function.

    The attempt runs under a savepoint when the connection is in a
    transaction (the dump's snapshot), so a refusal leaves it usable.
    """
    savepoint = not getattr(runner.conn, 'autocommit', True)
    if savepoint:
        _quietly(runner, 'SAVEPOINT engineroom_fingerprint')
    try:
        rows, digest = runner.rows('SELECT count(*), %s FROM %s t' % (RECORD_HASH, source))[0]
    except Exception as exc:  # pylint: disable=broad-except
        if getattr(exc, 'pgcode', None) != UNDEFINED_FUNCTION:
            raise
        if savepoint:
            _quietly(runner, 'ROLLBACK TO SAVEPOINT engineroom_fingerprint')
        return None
    if savepoint:
        _quietly(runner, 'RELEASE SAVEPOINT engineroom_fingerprint')
    return dict(rows=int(rows), hash=digest, hashed_by='record')


def _quietly(runner, statement):
    """Transaction bookkeeping, left out of ``executed_commands``."""
    with runner.conn.cursor() as cursor:
        cursor.execute(statement)


# Privileges a server version added; an owner's default ACL on a newer server carries them (PostgreSQL 17 gives
# MAINTAIN, ``m``, to every table owner), so they are left out when a snapshot of an older server is compared.
PRIVILEGES_SINCE = {17: 'm'}


def newer_privileges(source_major, target_major):
    """The ACL letters that ``target_major`` knows and ``source_major`` did not."""
    if not source_major or not target_major:
        return ''
    return ''.join(letters for major, letters in sorted(PRIVILEGES_SINCE.items()) if source_major < major <= target_major)


def _without(acl, letters):
    if not acl or not letters:
        return acl
    return re.sub(r'=([^/]*)/', lambda m: '=' + ''.join(c for c in m.group(1) if c not in letters) + '/', acl)


def compare(expected, actual, owners=True, ignore_privileges=''):
    """Differences between two fingerprints, in a stable order: [dict(kind, name, what, expected, actual)].

    With ``owners`` false (a restore without owners and ACLs) the inventory
    is compared by presence only. Content hashes are compared where both
    sides have them. ``ignore_privileges``: ACL letters left out on both
    sides (see :func:`newer_privileges`).
    """
    found = []
    for section, kind in (('tables', 'table'), ('matviews', 'materialized view'), ('sequences', 'sequence')):
        want, got = expected.get(section) or {}, actual.get(section) or {}
        for name in sorted(set(want) | set(got)):
            found.extend(_differ(kind, name, want.get(name), got.get(name)))
    found.extend(_differ('large objects', 'all', expected.get('large_objects'), actual.get('large_objects')))
    want, got = expected.get('inventory') or {}, actual.get('inventory') or {}
    found.extend(_inventory_differences(want, got, owners, ignore_privileges))
    found.extend(_database_differences(expected.get('database'), actual.get('database'), owners))
    return found


def _database_differences(want, got, owners=True):
    """Locale, comment, connection limit, settings and (with ``owners``) owner and ACL of the database.

    Keys the snapshot did not record (an owner before it was recorded) are not compared.
    """
    if not want or not got:
        return []
    keys = LOCALE_KEYS + ('comment', 'connection_limit') + (('owner', 'acl') if owners else ())
    found = [dict(kind='database', name=key, what='grant' if key == 'acl' else 'differs', expected=want.get(key),
                  actual=got.get(key)) for key in keys if key in want and want.get(key) != got.get(key)]
    settings, restored = want.get('settings') or {}, got.get('settings') or {}
    for key in sorted(set(settings) | set(restored)):
        if settings.get(key) != restored.get(key):
            found.append(dict(kind='database', name='setting ' + key, what='missing' if key not in restored else 'differs',
                              expected=settings.get(key), actual=restored.get(key)))
    return found


def _inventory_differences(want, got, owners, ignore_privileges=''):
    found = []
    for name in sorted(set(want) | set(got)):
        if name not in got:
            found.append(dict(kind='object', name=name, what='missing', expected='present', actual=None))
        elif name not in want:
            found.append(dict(kind='object', name=name, what='unexpected', expected=None, actual='present'))
        else:
            for field in ('detail', 'owner', 'acl') if owners else ('detail',):
                if field == 'acl' and _without(want[name].get('acl'), ignore_privileges) == _without(
                        got[name].get('acl'), ignore_privileges):
                    continue
                if want[name].get(field) != got[name].get(field):
                    found.append(dict(kind='object', name=name, what='grant' if field == 'acl' else field,
                                      expected=want[name].get(field), actual=got[name].get(field)))
    return found


def _differ(kind, name, want, got):
    if want is None or got is None:
        return [dict(kind=kind, name=name, what='missing' if got is None else 'unexpected',
                     expected=want, actual=got)]
    return [dict(kind=kind, name=name, what='content' if field == 'hash' else field, expected=want[field],
                 actual=got.get(field))
            for field in sorted(want) if (field != 'hash' or 'hash' in got) and want[field] != got.get(field)]


def roles_needed(fingerprint):
    """The roles a restore with owners and ACLs needs: every owner and grantee (and grantor) of the inventory and the
    database, and the roles with settings in the database."""
    roles = set()
    database = (fingerprint or {}).get('database') or {}
    acl = database.get('acl')
    items = list(((fingerprint or {}).get('inventory') or {}).values()) + [
        dict(owner=database.get('owner'), acl='{%s}' % ','.join(acl) if isinstance(acl, list) else acl)]
    for item in items:
        if item.get('owner'):
            roles.add(item['owner'])
        for grantee, grantor in ACL_ROLE.findall(item.get('acl') or ''):
            roles.update(_unquote(name) for name in (grantee, grantor) if name)
    for key in database.get('settings') or {}:
        if key.startswith('role '):
            roles.add(key[len('role '):].partition(': ')[0])
    return sorted(roles)


def _unquote(name):
    return unquote_ident(name) if name.startswith('"') else name


def describe(differences, limit=5):
    """The first ``limit`` differences in words."""
    words = ['%s %s: %s (snapshot %s, restored %s)' % (
        item['kind'], item['name'], item['what'], item['expected'], item['actual']) for item in differences[:limit]]
    if len(differences) > limit:
        words.append('and %d more' % (len(differences) - limit))
    return '; '.join(words)

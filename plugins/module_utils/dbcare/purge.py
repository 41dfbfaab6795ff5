# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention of old rows: resolve the table, compose the condition, prove a snapshot, delete in batches.

Why this shape:

* The table, the timestamp column and every ``where`` column are looked up in
  the catalog with parameters and reach SQL only as ``sql.Identifier``;
  operators come from a fixed list; values are parameters, sent as text so
  PostgreSQL converts them to the column's type (``'42'`` works for an
  integer column, ``'true'`` for a boolean one). No operator text is SQL.
* Each batch is one ``DELETE`` statement in autocommit, so one transaction:
  locks last one batch, and stopping (limit, budget, lock timeout, failure)
  loses nothing that was committed and leaves nothing half done. Rows go
  oldest first, picked by ``ctid`` from a sub-select under the same snapshot.
* "Backup before changes": rows are only deleted when a verified snapshot
  manifest of the same database, verified recently enough, exists and its
  artifact is there with the size the manifest records.
"""

from __future__ import annotations

import datetime
import os

try:
    from psycopg2 import sql
except ImportError:  # reported by the module through missing_required_lib
    pass

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import (
    MANIFEST_SUFFIX,
    ManifestError,
    latest_verified,
    load_manifest,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import parse_iso_utc, utc_now

# Operator name -> SQL text; the only operator text that ever reaches SQL.
OPERATORS = {
    '=': '=', '!=': '<>', '<': '<', '<=': '<=', '>': '>', '>=': '>=',
    'in': 'IN', 'not in': 'NOT IN', 'is null': 'IS NULL', 'is not null': 'IS NOT NULL',
}
NO_VALUE = ('is null', 'is not null')
LIST_VALUE = ('in', 'not in')
TIME_TYPES = ('date', 'timestamp', 'timestamptz')

RESOLVE_TABLE = ('SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace '
                 'WHERE n.nspname = %s AND c.relname = %s')
TABLE_COLUMNS = ('SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a '
                 'JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped')


class PurgeError(Exception):
    """A refusal already phrased for the operator (object, cause, next step)."""


def split_table(name):
    """``schema.table`` or ``table`` (schema ``public``)."""
    schema, dot, table = name.partition('.')
    return (schema, table) if dot else ('public', name)


def check_where(where):
    """Check the ``where`` triples' shape (the catalog check of the columns comes later)."""
    for index, clause in enumerate(where):
        op, value = clause['op'], clause.get('value')
        label = 'where[%d] (%s %s)' % (index, clause['column'], op)
        if op in NO_VALUE:
            if value is not None:
                raise PurgeError('%s takes no value (got %r): remove value' % (label, value))
        elif op in LIST_VALUE:
            if not isinstance(value, list) or not value:
                raise PurgeError('%s needs a non-empty list as value (got %r)' % (label, value))
            if any(isinstance(v, (list, dict)) or v is None for v in value):
                raise PurgeError('%s: list items must be plain values (got %r)' % (label, value))
        elif value is None or isinstance(value, (list, dict)):
            raise PurgeError('%s needs one plain value (got %r): use in/not in for lists, is null for NULL'
                             % (label, value))


def resolve(runner, table, timestamp_column, where):
    """Look the table and columns up in the catalog; return the timestamp column's type name."""
    schema, name = split_table(table)
    database = runner.scalar('SELECT current_database()')
    found = runner.rows(RESOLVE_TABLE, (schema, name))
    if not found:
        raise PurgeError('table %s.%s does not exist in database %s: check table (give schema.table)'
                         % (schema, name, database))
    oid, relkind = found[0]
    if relkind == 'p':
        raise PurgeError('%s.%s is a partitioned table: purge its partitions one by one, or detach and drop '
                         'the old partitions' % (schema, name))
    if relkind != 'r':
        raise PurgeError('%s.%s is not a table (relkind %s): pg_purge deletes rows of ordinary tables only'
                         % (schema, name, relkind))
    columns = dict((col, (typname, shown)) for col, typname, shown in runner.rows(TABLE_COLUMNS, (oid,)))
    if timestamp_column not in columns:
        raise PurgeError('column %s does not exist in %s.%s: check timestamp_column (columns: %s)'
                         % (timestamp_column, schema, name, ', '.join(sorted(columns))))
    typname, shown = columns[timestamp_column]
    if typname not in TIME_TYPES:
        raise PurgeError('column %s of %s.%s is %s, not a timestamp or date: give a timestamp, timestamptz or '
                         'date column as timestamp_column' % (timestamp_column, schema, name, shown))
    for clause in where:
        if clause['column'] not in columns:
            raise PurgeError('where column %s does not exist in %s.%s (columns: %s)'
                             % (clause['column'], schema, name, ', '.join(sorted(columns))))
    return typname


def cutoff_for(typname, older_than_days, now):
    """The cut-off: rows strictly older are purged. A date column cuts at the day, never inside it."""
    moment = now - datetime.timedelta(days=older_than_days)
    return moment.date() if typname == 'date' else moment


def condition(timestamp_column, where, cutoff):
    """(sql.Composed condition, parameters) for the rows to purge."""
    parts = [sql.SQL('{} < {}').format(sql.Identifier(timestamp_column), sql.Placeholder('cutoff'))]
    params = dict(cutoff=cutoff)
    for index, clause in enumerate(where):
        column, op = sql.Identifier(clause['column']), clause['op']
        if op in NO_VALUE:
            parts.append(sql.SQL('{} {}').format(column, sql.SQL(OPERATORS[op])))
            continue
        key = 'w%d' % index
        value = clause['value']
        params[key] = tuple(str(v) for v in value) if op in LIST_VALUE else str(value)
        parts.append(sql.SQL('{} {} {}').format(column, sql.SQL(OPERATORS[op]), sql.Placeholder(key)))
    return sql.SQL(' AND ').join(parts), params


def count_statement(table, timestamp_column, cond):
    schema, name = split_table(table)
    ts = sql.Identifier(timestamp_column)
    return sql.SQL('SELECT count(*), min({}), max({}) FROM {} WHERE {}').format(
        ts, ts, sql.Identifier(schema, name), cond)


def delete_statement(table, timestamp_column, cond):
    """One batch: the oldest ``limit`` matching rows, by ctid, in one statement (one transaction)."""
    schema, name = split_table(table)
    target = sql.Identifier(schema, name)
    return sql.SQL('DELETE FROM {} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {} WHERE {} ORDER BY {} LIMIT {}))').format(
        target, target, cond, sql.Identifier(timestamp_column), sql.Placeholder('limit'))


def moment_text(value):
    """Timestamps as UTC ISO 8601 with Z (the session runs in UTC); dates as YYYY-MM-DD."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ').replace('.000000Z', 'Z')
    return value.isoformat()


def _artifact_checked(manifest_path, manifest):
    """The artifact a manifest describes must lie beside it with the recorded size."""
    artifact = manifest.get('artifact') or {}
    directory = os.path.dirname(os.path.abspath(manifest_path))
    path = os.path.join(directory, artifact.get('file') or os.path.basename(manifest_path)[:-len(MANIFEST_SUFFIX)])
    try:
        size = os.stat(path).st_size
    except OSError:
        raise PurgeError('snapshot manifest %s describes %s, which is missing: the snapshot is not usable; '
                         'take a new snapshot before purging' % (manifest_path, path)) from None
    if artifact.get('size_bytes') is not None and artifact['size_bytes'] != size:
        raise PurgeError('snapshot %s is %d bytes but its manifest says %d: the snapshot is damaged; take a new '
                         'snapshot before purging' % (path, size, artifact['size_bytes']))
    return path


def snapshot_evidence(database, within_h, dest=None, manifest_path=None, now=None):
    """Prove a verified snapshot of ``database`` newer than ``within_h`` hours; return what proves it.

    Raises :class:`PurgeError` naming what is missing and the next step.
    """
    now = now or utc_now()
    if manifest_path:
        try:
            manifest = load_manifest(manifest_path)
        except ManifestError as exc:
            raise PurgeError('%s: refusing to delete rows without a trustworthy snapshot' % exc) from None
        if (manifest.get('database') or {}).get('name') != database:
            raise PurgeError('snapshot manifest %s is of database %r, not %r: give the manifest of a snapshot of %s'
                             % (manifest_path, (manifest.get('database') or {}).get('name'), database, database))
        if not manifest.get('verified_at'):
            raise PurgeError('snapshot manifest %s was never verified: verify (restore-test) the snapshot first'
                             % manifest_path)
        verified = parse_iso_utc(manifest['verified_at'])
        if now - verified > datetime.timedelta(hours=within_h):
            raise PurgeError('snapshot manifest %s was verified at %s, more than %d h ago: take a new snapshot of %s '
                             'before purging' % (manifest_path, manifest['verified_at'], within_h, database))
    else:
        found = latest_verified(dest, database=database, max_age_h=within_h, now=now)
        if found is None:
            raise PurgeError('no verified snapshot of database %s newer than %d h in %s: take (and verify) a '
                             'snapshot first, or point snapshot_dest/snapshot_manifest at it'
                             % (database, within_h, dest))
        manifest_path = found[0] + MANIFEST_SUFFIX
        manifest = found[1]
    artifact = _artifact_checked(manifest_path, manifest)
    return dict(manifest=manifest_path, artifact=artifact, created_at=manifest['created_at'],
                verified_at=manifest['verified_at'], age_h=round((now - parse_iso_utc(manifest['verified_at']))
                                                                 .total_seconds() / 3600.0, 2))

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Table selection by shell-style globs, done in Python over catalog rows.

Patterns come from inventories and could hold anything, including text
crafted to look like SQL. They are therefore never sent to the server: the
catalog is read with a fixed query and the patterns are matched here, so a
pattern can only ever select or not select tables that exist.
"""

from __future__ import annotations

import fnmatch


def pattern_matches(pattern, schema, table):
    """Does ``pattern`` select ``schema.table``?

    A pattern with a dot is matched against ``schema.table``
    (``public.audit_*``); one without a dot against the bare table name
    (``audit_*``, any schema). Matching is case-sensitive, like quoted
    PostgreSQL identifiers.
    """
    subject = '%s.%s' % (schema, table) if '.' in pattern else table
    return fnmatch.fnmatchcase(subject, pattern)


def select_tables(rows, schemas=None, include=None, exclude=None):
    """Filter catalog rows (dicts with ``schema`` and ``table``).

    Returns ``(selected rows, include patterns that matched nothing)``. An
    empty or missing ``include`` selects every table of ``schemas`` (all
    schemas when empty); ``exclude`` wins over ``include``. A partition
    (a row with ``ancestors``, ``[schema, table]`` pairs) is selected and
    excluded by its own name or by the name of any of its parents, so naming a
    partitioned table takes in its partitions.
    """
    include = list(include or [])
    exclude = list(exclude or [])
    wanted_schemas = set(schemas or [])
    used = set()
    selected = []
    for row in rows:
        if wanted_schemas and row['schema'] not in wanted_schemas:
            continue
        names = [(row['schema'], row['table'])] + [tuple(a) for a in row.get('ancestors') or []]
        if include:
            hits = [p for p in include if any(pattern_matches(p, schema, table) for schema, table in names)]
            if not hits:
                continue
            used.update(hits)
        if any(pattern_matches(p, schema, table) for p in exclude for schema, table in names):
            continue
        selected.append(row)
    return selected, [p for p in include if p not in used]

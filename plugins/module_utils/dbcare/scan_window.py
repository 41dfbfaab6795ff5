# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Missing-index hints from the sequential scans of a window, not from counters since the last reset.

``pg_stat_user_tables.seq_scan`` counts every sequential scan since the
statistics were reset, including the ones maintenance makes: each
``CREATE INDEX`` (and ``REINDEX``, or a table rewrite by ``VACUUM FULL``,
``CLUSTER`` or ``ALTER TABLE``) reads the whole table once per index built.
So the counters of each table are kept in a state file between runs, and a
hint needs, over a window of at least ``seq_scan_window_s``:

* at least ``seq_scan_min_scans`` sequential scans once the index builds of
  the window are taken off (an index whose file node is new since the last
  run was built, a table whose file node is new was rewritten with all its
  indexes: one scan of the live rows each);
* on average at least ``seq_scan_min_rows`` rows read per scan;
* more sequential scans than index scans in the window.

A first run only records; hints come from the next run far enough apart.
"""

from __future__ import annotations

import json
import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import atomic_write
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc, parse_iso_utc

SCHEMA_VERSION = 1

COUNTERS = """
SELECT s.schemaname, s.relname, s.seq_scan, s.seq_tup_read, coalesce(s.idx_scan, 0), s.n_live_tup,
       c.relfilenode::bigint, coalesce((SELECT array_agg(ic.relfilenode::bigint ORDER BY ic.oid) FROM pg_index i
                                        JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = s.relid), '{}'),
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid)
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
ORDER BY 1, 2"""
COUNTER_KEYS = ('schema', 'table', 'seq_scan', 'seq_tup_read', 'idx_scan', 'live_tuples', 'filenode', 'index_filenodes',
                'indexes')


class ScanStateError(Exception):
    """The state file exists but cannot be read as this collection's scan state."""


def load_state(path):
    """The previous run's counters ({database: {schema.table: counters}}, taken_at), or an empty state."""
    if not path or not os.path.exists(path):
        return dict(schema_version=SCHEMA_VERSION, databases={})
    try:
        with open(path) as handle:
            state = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ScanStateError('cannot read the scan state file %s: %s; remove it to start a new window' % (path, exc))
    if not isinstance(state, dict) or state.get('schema_version') != SCHEMA_VERSION:
        raise ScanStateError('%s is not a pg_insight scan state file (schema_version %s); remove it or choose '
                             'another state_file' % (path, SCHEMA_VERSION))
    return state


def save_state(path, state):
    atomic_write(path, (json.dumps(state, indent=1, sort_keys=True) + '\n').encode('utf-8'), mode=0o644)


def read_counters(runner, now):
    """{schema.table: counters} of the current database, stamped with ``now``."""
    found = {}
    for row in runner.rows(COUNTERS.strip()):
        counters = dict(zip(COUNTER_KEYS, row))
        counters['taken_at'] = iso_utc(now)
        found['%s.%s' % (counters['schema'], counters['table'])] = counters
    return found


def builds_in_window(before, after):
    """Whole-table reads that index builds and rewrites made between two readings of one table."""
    if after['filenode'] != before['filenode']:
        return 1 + after['indexes']  # rewritten: the table read once, and every index rebuilt from it
    return len(set(after['index_filenodes']) - set(before['index_filenodes']))


def window_hints(before, after, now, options):
    """Rows of the tables whose window says an index is missing (largest rows read first), or why none yet."""
    hints = []
    for name, current in sorted(after.items()):
        previous = before.get(name)
        if not previous or current['live_tuples'] < options['seq_scan_min_rows']:
            continue
        window_s = (now - parse_iso_utc(previous['taken_at'])).total_seconds()
        builds = builds_in_window(previous, current)
        scans = current['seq_scan'] - previous['seq_scan'] - builds
        rows_read = current['seq_tup_read'] - previous['seq_tup_read'] - builds * current['live_tuples']
        index_scans = current['idx_scan'] - previous['idx_scan']
        if window_s < options['seq_scan_window_s'] or scans < options['seq_scan_min_scans'] or scans <= index_scans:
            continue
        if rows_read < options['seq_scan_min_rows'] * scans:
            continue
        hints.append(dict(schema=current['schema'], table=current['table'], window_s=round(window_s, 1),
                          seq_scans=scans, seq_rows_read=rows_read, index_scans=index_scans,
                          index_builds_discounted=builds, live_tuples=current['live_tuples'],
                          indexes=current['indexes'], avg_rows_per_seq_scan=rows_read // scans))
    hints.sort(key=lambda r: (-r['seq_rows_read'], r['schema'], r['table']))
    return hints[:options['top_n']]

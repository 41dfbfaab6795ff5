# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pg_insight tells the operator: findings, metrics and the one-line summary of a review.

The sections (:mod:`postgres.insight`) collect rows; this module reads the
collected sections and words them, so the findings and the counts of the
summary come from the same rows.
"""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import format_size


def findings_of(result):
    """The review's notable points, in an operator's words."""
    found = []
    for row in result.get('bloat', []):
        if row['candidate']:
            found.append('%s: %s.%s has %d dead tuples (%.0f %% of live): vacuum it' % (
                row['database'], row['schema'], row['table'], row['dead_tuples'], row['dead_ratio'] * 100))
    unused = {}
    for row in result.get('unused_indexes', []):
        count, size = unused.get(row['database'], (0, 0))
        unused[row['database']] = (count + 1, size + (row['size_bytes'] or 0))
    for database, (count, size) in sorted(unused.items()):
        found.append('%s: %d unused indexes take %s' % (database, count, format_size(size)))
    for row in result.get('seq_scans', []):
        found.append('%s: %s.%s (%d rows) is read by sequential scans %d times against %d index scans' % (
            row['database'], row['schema'], row['table'], row['live_tuples'], row['seq_scans'], row['index_scans']))
    for row in result.get('autovacuum_disabled', []):
        if not row['autovacuum_enabled']:
            found.append('%s: autovacuum is off for %s.%s' % (row['database'], row['schema'], row['table']))
    if result.get('autovacuum', {}).get('autovacuum') == 'off':
        found.append('autovacuum is off for the whole cluster')
    connections = result.get('connections')
    if connections and connections['used_pct'] is not None and connections['used_pct'] >= 80:
        found.append('connections at %.0f %% of max_connections (%d/%d)' % (
            connections['used_pct'], connections['total'], connections['max_connections']))
    for row in result.get('long_queries', []):
        found.append('pid %d (%s on %s) has been %s for %.0f s' % (
            row['pid'], row['user'], row['database'], row['state'], row['duration_s']))
    for row in result.get('blocking', []):
        found.append('pid %d waits %.0f s for a %s on %s held by pid %d (%s)' % (
            row['blocked_pid'], row['waiting_s'] or 0, row['mode'], row['relation'] or row['locktype'],
            row['blocking_pid'], row['blocking_state']))
    for row in result.get('wraparound', []):
        if row['pct_of_freeze_max_age'] >= 50:
            found.append('database %s is at %.0f %% of autovacuum_freeze_max_age (xid age %d)' % (
                row['database'], row['pct_of_freeze_max_age'], row['xid_age']))
    return found


def metrics_of(result, databases, errors, duration_ms):
    """Flat numbers of a review; keys carry their unit."""
    sizes = [r['size_bytes'] or 0 for r in result.get('database_sizes', [])]
    connections = result.get('connections') or {}
    unused = result.get('unused_indexes', [])
    return dict(
        duration_ms=duration_ms, databases=len(databases), database_bytes_total=sum(sizes),
        connections_total=connections.get('total', 0), connections_used_pct=connections.get('used_pct') or 0,
        long_queries=len(result.get('long_queries', [])), blocked_sessions=len(set(
            r['blocked_pid'] for r in result.get('blocking', []))),
        bloat_candidates=sum(1 for r in result.get('bloat', []) if r['candidate']),
        unused_indexes=len(unused), unused_index_bytes=sum(r['size_bytes'] or 0 for r in unused),
        autovacuum_disabled_tables=sum(1 for r in result.get('autovacuum_disabled', []) if not r['autovacuum_enabled']),
        max_xid_age=max([r['xid_age'] for r in result.get('wraparound', [])] or [0]),
        section_errors=len(errors),
    )


def summary_of(result, databases, errors, metrics):
    """The review in one line for the maintenance log."""
    connections = result.get('connections') or {}
    parts = ['%d database(s)' % len(databases)]
    if 'database_sizes' in result:
        parts[0] += ', %s' % format_size(metrics['database_bytes_total'])
    if connections:
        parts.append('connections %d/%d' % (connections['total'], connections['max_connections']))
    if 'bloat' in result:
        parts.append('%d bloat candidates' % metrics['bloat_candidates'])
    if 'unused_indexes' in result:
        parts.append('%d unused indexes (%s)' % (metrics['unused_indexes'], format_size(metrics['unused_index_bytes'])))
    if 'long_queries' in result:
        parts.append('%d long queries' % metrics['long_queries'])
    if 'blocking' in result:
        parts.append('%d blocked' % metrics['blocked_sessions'])
    if errors:
        parts.append('%d section(s) not collected' % len(errors))
    return 'pg_insight: ' + '; '.join(parts)

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

# A B-tree leaf level under this density (percent, 90 when freshly built) is worth a REINDEX.
INDEX_DENSITY_FINDING_PCT = 50


def findings_of(result, warn_pct=50):
    """The review's notable points, in an operator's words: tables, then indexes, then sessions and the cluster."""
    return table_findings(result) + index_findings(result) + cluster_findings(result, warn_pct)


def table_findings(result):
    found = []
    for row in result.get('bloat', []):
        if 'heap' in row['candidate_by']:
            found.append('%s: %s.%s has %d dead tuples (%.0f %% of live): vacuum it' % (
                row['database'], row['schema'], row['table'], row['dead_tuples'], row['dead_ratio'] * 100))
        if 'toast' in row['candidate_by']:
            found.append('%s: the TOAST table of %s.%s has %d dead tuples (%.0f %% of live; %s): vacuum it' % (
                row['database'], row['schema'], row['table'], row['toast_dead_tuples'], row['toast_dead_ratio'] * 100,
                'measured by pgstattuple_approx' if row['source'] == 'pgstattuple_approx' else 'statistics estimate'))
    for row in result.get('stale_statistics', []):
        found.append('%s: the planner statistics of %s%s.%s are stale (%s): ANALYZE it (pg_vacuum does)' % (
            row['database'], 'partitioned table ' if row['partitioned'] else '', row['schema'], row['table'],
            row['reason']))
    for row in result.get('autovacuum_disabled', []):
        if not row['autovacuum_enabled']:
            found.append('%s: autovacuum is off for %s.%s' % (row['database'], row['schema'], row['table']))
        if not row['toast_autovacuum_enabled']:
            found.append('%s: autovacuum is off for the TOAST table of %s.%s (toast.autovacuum_enabled)' % (
                row['database'], row['schema'], row['table']))
    return found


def index_findings(result):
    found = []
    unused = {}
    for row in result.get('unused_indexes', []):
        count, size, age_s = unused.get(row['database'], (0, 0, row['stats_age_s']))
        unused[row['database']] = (count + 1, size + (row['size_bytes'] or 0), age_s)
    for database, (count, size, age_s) in sorted(unused.items()):
        found.append('%s: %d unused indexes take %s (no scan in the %.1f days since the statistics were reset or '
                     'the server started)' % (database, count, format_size(size), (age_s or 0) / 86400.0))
    for row in result.get('duplicate_indexes', []):
        found.append('%s: index %s.%s %s %s (%s): drop it' % (
            row['database'], row['schema'], row['index'],
            'duplicates' if row['kind'] == 'duplicate' else 'is covered by the leading columns of',
            row['covered_by'], format_size(row['size_bytes'] or 0)))
    for entry in result.get('index_bloat', []):
        for row in entry['indexes']:
            if row['avg_leaf_density'] is not None and row['avg_leaf_density'] < INDEX_DENSITY_FINDING_PCT:
                found.append('%s: index %s.%s is %.0f %% full (%s of %s is free space): REINDEX CONCURRENTLY it' % (
                    entry['database'], row['schema'], row['index'], row['avg_leaf_density'],
                    format_size(row['bloat_bytes'] or 0), format_size(row['size_bytes'] or 0)))
    for row in result.get('seq_scans', []):
        if row.get('window_s') is None:
            continue  # counters since the last reset include every index build and dump: no hint by themselves
        found.append('%s: %s.%s (%d rows) was read by %d sequential scans (%s rows, %s per scan) against %d index '
                     'scans in the last %.1f h: an index is probably missing' % (
                         row['database'], row['schema'], row['table'], row['live_tuples'], row['seq_scans'],
                         '{:,}'.format(row['seq_rows_read']), '{:,}'.format(row['avg_rows_per_seq_scan']),
                         row['index_scans'], row['window_s'] / 3600.0))
    return found


def cluster_findings(result, warn_pct):
    found = []
    if result.get('autovacuum', {}).get('autovacuum') == 'off':
        found.append('autovacuum is off for the whole cluster')
    connections = result.get('connections')
    if connections and connections['used_pct'] is not None and connections['used_pct'] >= 80:
        found.append('connections at %.0f %% of max_connections (%d/%d)' % (
            connections['used_pct'], connections['total'], connections['max_connections']))
    for row in result.get('long_queries', []):
        holds = ', '.join(text for text in (
            'xid age %d' % row['xid_age'] if row['xid_age'] is not None else '',
            'snapshot age %d xids' % row['xmin_age'] if row['xmin_age'] is not None else '') if text)
        found.append('pid %d (%s on %s) has had a transaction open for %.0f s, now %s%s' % (
            row['pid'], row['user'], row['database'], row['duration_s'], row['state'],
            ' (%s: holds back VACUUM)' % holds if holds else ''))
    found.extend(blocking_findings(result.get('blocking', [])))
    for row in result.get('wraparound', []):
        if row['pct_of_freeze_max_age'] >= warn_pct:
            found.append('database %s is at %.0f %% of autovacuum_freeze_max_age (xid age %s, %s xids before forced '
                         'anti-wraparound autovacuum, %s before PostgreSQL stops assigning xids): VACUUM (FREEZE) it' % (
                             row['database'], row['pct_of_freeze_max_age'], '{:,}'.format(row['xid_age']),
                             '{:,}'.format(max(0, row['xids_to_forced_autovacuum'])),
                             '{:,}'.format(row['xids_to_stop_limit'])))
    return found


def lock_target(row):
    """What a blocked session waits for, in words: a table, a row of a table, or the lock type."""
    table = row['relation'] or ('relation OID %s in %s' % (row['relation_oid'], row['database'])
                                if row['relation_oid'] else None)
    if row['locktype'] in ('transactionid', 'tuple') and table:
        return 'a row of %s (%s lock)' % (table, row['locktype'])
    return table or row['locktype'] or 'a lock'


def blocking_findings(rows):
    """One finding per blocked pair, then one per root of a blocking chain."""
    found = []
    waiters = {}
    for row in rows:
        found.append('pid %d waits %.0f s for a %s on %s held by pid %d (%s)' % (
            row['blocked_pid'], row['waiting_s'] or 0, row['mode'], lock_target(row), row['blocking_pid'],
            row['blocking_state']))
        waiters.setdefault(row['root_blocking_pid'], set()).add(row['blocked_pid'])
    for root, blocked in sorted(waiters.items()):
        about = [r for r in rows if r['blocking_pid'] == root][:1]
        detail = ' (%s, %s: %s)' % (about[0]['blocking_user'], about[0]['blocking_state'], about[0]['blocking_query']) \
            if about else ''
        found.append('pid %d%s is the root of a blocking chain: %d session(s) wait behind it' % (
            root, detail, len(blocked)))
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
        stale_statistics_tables=len(result.get('stale_statistics', [])),
        unused_indexes=len(unused), unused_index_bytes=sum(r['size_bytes'] or 0 for r in unused),
        redundant_indexes=len(result.get('duplicate_indexes', [])),
        redundant_index_bytes=sum(r['size_bytes'] or 0 for r in result.get('duplicate_indexes', [])),
        autovacuum_disabled_tables=sum(1 for r in result.get('autovacuum_disabled', [])
                                       if not (r['autovacuum_enabled'] and r['toast_autovacuum_enabled'])),
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
    if 'stale_statistics' in result:
        parts.append('%d with stale statistics' % metrics['stale_statistics_tables'])
    if 'unused_indexes' in result:
        parts.append('%d unused indexes (%s)' % (metrics['unused_indexes'], format_size(metrics['unused_index_bytes'])))
    if 'long_queries' in result:
        parts.append('%d long queries' % metrics['long_queries'])
    if 'blocking' in result:
        parts.append('%d blocked' % metrics['blocked_sessions'])
    if errors:
        parts.append('%d section(s) not collected' % len(errors))
    return 'pg_insight: ' + '; '.join(parts)

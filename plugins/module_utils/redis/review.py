# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Redis server says about itself (INFO, SLOWLOG), graded against thresholds, with deltas since last run.

Every figure is read from one ``INFO all`` reply so the numbers agree with
each other and with what ``redis-cli INFO`` shows; counters that only grow
(evicted and expired keys, hits and misses) are compared with the previous
run's values kept in a small state file, unless the server restarted in
between (its ``run_id`` changed), when the delta counts from zero.
"""

from __future__ import annotations

import datetime
import json
import os
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import atomic_write
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc, utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.client import parse_info
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.status import grade, worst

COUNTERS = ('evicted_keys', 'expired_keys', 'keyspace_hits', 'keyspace_misses')
INT_FIELDS = ('used_memory', 'used_memory_rss', 'used_memory_peak', 'maxmemory', 'mem_fragmentation_bytes',
              'connected_clients', 'blocked_clients', 'rdb_changes_since_last_save', 'rdb_last_save_time',
              'rdb_bgsave_in_progress', 'aof_enabled', 'aof_rewrite_in_progress', 'connected_slaves', 'loading',
              'uptime_in_seconds') + COUNTERS
DEFAULT_THRESHOLDS = dict(memory_degraded_pct=80.0, memory_unhealthy_pct=95.0, fragmentation_degraded_ratio=1.5,
                          fragmentation_unhealthy_ratio=3.0, fragmentation_min_bytes=100 * 1024 * 1024,
                          evictions_degraded=1, evictions_unhealthy=None, rdb_age_degraded_h=None,
                          rdb_age_unhealthy_h=None, replication_lag_degraded_s=10, replication_lag_unhealthy_s=60)


class ReviewError(ValueError):
    """A review option that cannot be used as given."""


def resolve_thresholds(given):
    """The thresholds with defaults filled in; a pair out of order or a negative value raises :class:`ReviewError`."""
    merged = dict(DEFAULT_THRESHOLDS)
    merged.update(dict((k, v) for k, v in (given or {}).items() if v is not None))
    for key, value in merged.items():
        if value is not None and value < 0:
            raise ReviewError('thresholds.%s must not be negative (got %s)' % (key, value))
    for low_key in [k for k in merged if '_degraded' in k]:
        high_key = low_key.replace('_degraded', '_unhealthy')
        low, high = merged[low_key], merged.get(high_key)
        if low is not None and high is not None and low > high:
            raise ReviewError('thresholds out of order: %s (%s) must not be above %s (%s)' % (low_key, low, high_key, high))
    return merged


def keyspace(info):
    """``db0:keys=1,expires=0,avg_ttl=0`` lines as {db0: {keys, expires, avg_ttl_ms}}."""
    spaces = {}
    for key, value in info.items():
        if key.startswith('db') and key[2:].isdigit() and '=' in value:
            fields = dict(part.split('=', 1) for part in value.split(','))
            spaces[key] = dict(keys=int(fields.get('keys', 0)), expires=int(fields.get('expires', 0)),
                               avg_ttl_ms=int(fields.get('avg_ttl', 0)))
    return spaces


def figures_of(info, now_s):
    """The numbers of one INFO reply the review uses, typed."""
    figures = dict((k, int(info[k])) for k in INT_FIELDS if info.get(k, '').lstrip('-').isdigit())
    if info.get('mem_fragmentation_ratio'):
        figures['fragmentation_ratio'] = float(info['mem_fragmentation_ratio'])
    if figures.get('maxmemory'):
        figures['memory_pct'] = round(100.0 * figures['used_memory'] / figures['maxmemory'], 1)
    lookups = figures.get('keyspace_hits', 0) + figures.get('keyspace_misses', 0)
    figures['hit_ratio_pct'] = round(100.0 * figures.get('keyspace_hits', 0) / lookups, 1) if lookups else None
    if figures.get('rdb_last_save_time'):
        figures['rdb_age_s'] = max(0, int(now_s) - figures['rdb_last_save_time'])
    figures['replication_lag_s'] = replication_lag(info)
    return figures


def replication_lag(info):
    """Seconds a replica is behind its master (last I/O), or the worst replica's lag seen by a master."""
    if info.get('role') == 'slave':
        seconds = info.get('master_last_io_seconds_ago', '')
        return int(seconds) if seconds.lstrip('-').isdigit() and int(seconds) >= 0 else None
    lags = []
    for key, value in info.items():
        if key.startswith('slave') and key[5:].isdigit() and 'lag=' in value:
            fields = dict(part.split('=', 1) for part in value.split(',') if '=' in part)
            if fields.get('lag', '').isdigit():
                lags.append(int(fields['lag']))
    return max(lags) if lags else None


def unix_iso(seconds):
    return iso_utc(datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)) if seconds else None


def slowlog(entries):
    """SLOWLOG GET replies as dicts (arguments cut at 8 and 60 characters each, so values do not leak whole)."""
    out = []
    for entry in entries or []:
        args = [a.decode('utf-8', 'replace') if isinstance(a, bytes) else str(a) for a in entry[3]]
        out.append(dict(id=entry[0], started=unix_iso(entry[1]),
                        duration_us=entry[2], command=' '.join(a[:60] for a in args[:8])))
    return out


def read_server(client, slowlog_count):
    """INFO all, the maxmemory policy and the slowlog's top entries, in one place."""
    info = parse_info(client.text('INFO', 'all'))
    slow = []
    if slowlog_count and not info.get('loading') == '1':
        slow = slowlog(client.command('SLOWLOG', 'GET', slowlog_count))
        slow.sort(key=lambda e: -e['duration_us'])
    return info, slow


def load_state(path):
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path) as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return {}  # a damaged state file only costs the deltas of one run
    return state if isinstance(state, dict) else {}


def deltas(figures, info, previous):
    """Counter increases since the previous run; counted from zero after a server restart; None on a first run."""
    if not previous:
        return dict((k, None) for k in COUNTERS + ('hit_ratio_pct',))
    restarted = previous.get('run_id') != info.get('run_id')
    since = dict((k, figures.get(k, 0) - (0 if restarted else previous.get(k, 0))) for k in COUNTERS)
    lookups = since['keyspace_hits'] + since['keyspace_misses']
    since['hit_ratio_pct'] = round(100.0 * since['keyspace_hits'] / lookups, 1) if lookups > 0 else None
    return since


def save_state(client, path):
    """Keep the counters as they are now, after this run's own lookups (so they do not count in the next delta)."""
    info = parse_info(client.text('INFO', 'stats'))
    info.update(parse_info(client.text('INFO', 'server')))
    state = dict((k, int(info.get(k, 0))) for k in COUNTERS)
    state.update(run_id=info.get('run_id'), checked=iso_utc(utc_now()))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    atomic_write(path, json.dumps(state, sort_keys=True) + '\n', mode=0o600)


def assess(figures, info, since, thresholds):
    """(status, reasons) of the server from its figures and the thresholds."""
    t = thresholds
    found = []

    def flag(status, reason):
        if status != 'healthy':
            found.append((status, reason))

    if info.get('loading') == '1':
        flag('unhealthy', 'Redis is loading its dataset (%s %% done): it answers LOADING to data commands'
             % info.get('loading_loaded_perc', '?'))
    flag(grade(figures.get('memory_pct'), t['memory_degraded_pct'], t['memory_unhealthy_pct']),
         'memory used is %s %% of maxmemory' % figures.get('memory_pct'))
    if figures.get('mem_fragmentation_bytes', 0) >= t['fragmentation_min_bytes']:
        flag(grade(figures.get('fragmentation_ratio'), t['fragmentation_degraded_ratio'], t['fragmentation_unhealthy_ratio']),
             'memory fragmentation ratio %s (%s bytes)' % (figures.get('fragmentation_ratio'), figures['mem_fragmentation_bytes']))
    flag(grade(since.get('evicted_keys'), t['evictions_degraded'], t['evictions_unhealthy']),
         '%s keys evicted since the last run (maxmemory reached)' % since.get('evicted_keys'))
    if info.get('rdb_last_bgsave_status') == 'err':
        flag('unhealthy', 'the last background save failed%s' % (
            ': writes are refused (MISCONF, stop-writes-on-bgsave-error)' if figures.get('rdb_changes_since_last_save') else ''))
    if figures.get('rdb_age_s') is not None and figures.get('rdb_changes_since_last_save'):
        age_h = figures['rdb_age_s'] / 3600.0
        flag(grade(age_h, t['rdb_age_degraded_h'], t['rdb_age_unhealthy_h']),
             'the last RDB save is %.1f h old with %s changes since' % (age_h, figures['rdb_changes_since_last_save']))
    for key in ('aof_last_bgrewrite_status', 'aof_last_write_status'):
        if figures.get('aof_enabled') and info.get(key) == 'err':
            flag('unhealthy', '%s is err' % key)
    if info.get('role') == 'slave' and info.get('master_link_status') != 'up':
        flag('unhealthy', 'replica link to its master is %s' % info.get('master_link_status'))
    flag(grade(figures.get('replication_lag_s'), t['replication_lag_degraded_s'], t['replication_lag_unhealthy_s']),
         'replication lag %s s' % figures.get('replication_lag_s'))
    return worst([s for s, dummy in found]), [r for dummy, r in found]


def review(client, thresholds, state_path, slowlog_count, now_s=None):
    """The review dict (the caller saves the state with :func:`save_state` at the end of its run)."""
    info, slow = read_server(client, slowlog_count)
    figures = figures_of(info, time.time() if now_s is None else now_s)
    previous = load_state(state_path)
    since = deltas(figures, info, previous)
    status, reasons = assess(figures, info, since, thresholds)
    return dict(
        status=status, reasons=reasons, redis_version=info.get('redis_version'), role=info.get('role'),
        loading=info.get('loading') == '1', maxmemory_policy=info.get('maxmemory_policy'), figures=figures,
        since_last_run=since, previous_run=previous.get('checked'), keyspace=keyspace(info), slowlog=slow,
        rdb=dict(last_bgsave_status=info.get('rdb_last_bgsave_status'), last_save=unix_iso(figures.get('rdb_last_save_time')),
                 age_s=figures.get('rdb_age_s'), changes_since_last_save=figures.get('rdb_changes_since_last_save')),
        aof=dict(enabled=bool(figures.get('aof_enabled')), last_bgrewrite_status=info.get('aof_last_bgrewrite_status'),
                 last_write_status=info.get('aof_last_write_status')),
        replication=dict(role=info.get('role'), connected_slaves=figures.get('connected_slaves'),
                         master_link_status=info.get('master_link_status'), lag_s=figures.get('replication_lag_s')),
    )

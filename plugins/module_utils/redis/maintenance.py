# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One redis_maintenance run: review, optional pattern scan, then the opt-in actions, in that order.

:func:`run` takes a connected :class:`RedisClient` and the module's options
and returns the result dict (``status``, ``review``, ``scan``, ``actions``,
``summary``, ``metrics``); the module adds ``executed_commands``. While the
server is loading its dataset nothing but INFO is asked, and the scan and
actions are reported as skipped. The first action that fails stops the ones
after it (reported ``skipped``), so an RDB that cannot be written is never
followed by a key change.
"""

from __future__ import annotations

import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import format_size
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis import actions as act
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.client import RedisReplyError
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.review import review, save_state, worst
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.scan import scan_patterns


def planned_actions(p):
    """The actions asked for, in the order they run: (name, callable(client, deadline, check_mode))."""
    bounds = (p['scan_count'], p['max_scan_keys'])
    steps = []
    if p['verify_rdb'] and not p['bgsave']:
        steps.append(('verify_rdb', lambda c, d, cm: act.verify_rdb(c, p['rdb_path'] or act.rdb_path(c),
                                                                    p['redis_check_rdb_path'], p['wait_s'])))
    for rule in p['expire_without_ttl'] or []:
        steps.append(('expire_without_ttl', lambda c, d, cm, r=rule: act.expire_without_ttl(c, r, bounds[0], bounds[1], d, cm)))
    for rule in p['unlink'] or []:
        steps.append(('unlink', lambda c, d, cm, r=rule: act.unlink_idle(c, r, bounds[0], bounds[1], d, cm)))
    if p['memory_purge']:
        steps.append(('memory_purge', lambda c, d, cm: act.memory_purge(c, cm)))
    if p['bgsave']:
        steps.append(('bgsave', lambda c, d, cm: act.bgsave(
            c, p['rdb_path'] or act.rdb_path(c), p['redis_check_rdb_path'], p['wait_s'], cm)))
    if p['bgrewriteaof']:
        steps.append(('bgrewriteaof', lambda c, d, cm: act.bgrewriteaof(c, p['wait_s'], cm)))
    return steps


def run_actions(client, steps, deadline, check_mode, loading):
    results, stopped = [], None
    for name, step in steps:
        if loading or stopped:
            results.append(dict(action=name, outcome='skipped',
                                reason='the server is loading its dataset' if loading else 'after the failure of %s' % stopped))
            continue
        try:
            entry = step(client, deadline, check_mode)
        except (act.ActionError, RedisReplyError) as exc:
            extra = '' if isinstance(exc, act.ActionError) else act.hint(exc.code)
            entry = dict(action=name, outcome='failed', reason=str(exc) + extra)
        if entry['outcome'] == 'failed':
            stopped = name
            entry.setdefault('reason', 'redis-check-rdb found the RDB damaged: %s' % (
                (entry.get('verification') or {}).get('output_tail') or '').strip()[-300:])
        results.append(entry)
    return results


def run(client, p, check_mode):
    started = time.monotonic()
    deadline = started + p['max_duration_s']
    rev = review(client, p['thresholds'], p['state_file'], p['slowlog_count'])
    client.server_version = rev['redis_version']
    scan = None
    if p['scan_patterns']:
        if rev['loading']:
            scan = dict(skipped=True, reason='the server is loading its dataset', patterns=[])
        else:
            scan = scan_patterns(client, p['scan_patterns'], p['scan_count'], p['max_scan_keys'], deadline,
                                 sample_keys=p['memory_sample_keys'], top_keys=p['top_keys'])
    actions = run_actions(client, planned_actions(p), deadline, check_mode, rev['loading'])
    if not check_mode:
        save_state(client, p['state_file'])
    failed = [a for a in actions if a['outcome'] == 'failed']
    status = worst([rev['status']] + (['unhealthy'] if failed else []))
    duration = elapsed_ms(started)
    return dict(
        changed=any(a['outcome'] in ('done', 'planned') and a['action'] != 'verify_rdb' for a in actions),
        status=status, reasons=rev['reasons'] + ['%s failed: %s' % (a['action'], a['reason']) for a in failed],
        review=rev, scan=scan, actions=actions,
        summary=summarize(client.where, rev, scan, actions, status, duration / 1000.0),
        metrics=metrics(rev, scan, actions, duration),
    )


def metrics(rev, scan, actions, duration):
    fig, since = rev['figures'], rev['since_last_run']
    out = dict(duration_ms=duration, used_memory_bytes=fig.get('used_memory'), maxmemory_bytes=fig.get('maxmemory'),
               memory_pct=fig.get('memory_pct'), fragmentation_ratio=fig.get('fragmentation_ratio'),
               hit_ratio_pct=fig.get('hit_ratio_pct'), connected_clients=fig.get('connected_clients'),
               blocked_clients=fig.get('blocked_clients'), rdb_age_s=fig.get('rdb_age_s'),
               keys_total=sum(db['keys'] for db in rev['keyspace'].values()),
               keys_with_ttl=sum(db['expires'] for db in rev['keyspace'].values()),
               slowlog_entries=len(rev['slowlog']), evicted_keys_since_last_run=since['evicted_keys'],
               expired_keys_since_last_run=since['expired_keys'],
               keys_scanned=(scan or {}).get('keys_scanned', 0),
               keys_ttl_set=sum(a.get('keys_changed', 0) for a in actions if a['action'] == 'expire_without_ttl'),
               keys_unlinked=sum(a.get('keys_changed', 0) for a in actions if a['action'] == 'unlink'))
    saved = [a for a in actions if a['action'] in ('bgsave', 'verify_rdb') and a.get('size_bytes') is not None]
    if saved:
        out['rdb_bytes'] = saved[-1]['size_bytes']
    return dict((k, v) for k, v in out.items() if v is not None)


def summarize(where, rev, scan, actions, status, seconds):
    fig, since = rev['figures'], rev['since_last_run']
    memory = format_size(fig.get('used_memory', 0))
    if fig.get('maxmemory'):
        memory += ' of %s (%s %%)' % (format_size(fig['maxmemory']), fig.get('memory_pct'))
    parts = ['redis %s (%s, %s): %s' % (where, rev['redis_version'], rev['role'], status),
             'memory %s, fragmentation %s' % (memory, fig.get('fragmentation_ratio'))]
    if since['hit_ratio_pct'] is not None:
        parts.append('hit ratio %s %% since last run' % since['hit_ratio_pct'])
    elif fig.get('hit_ratio_pct') is not None:
        parts.append('hit ratio %s %%' % fig['hit_ratio_pct'])
    if since['evicted_keys'] is not None:
        parts.append('%d evicted / %d expired since last run' % (since['evicted_keys'], since['expired_keys']))
    if scan and not scan.get('skipped'):
        parts.append('scanned %d keys for %d patterns%s' % (scan['keys_scanned'], len(scan['patterns']),
                                                            ' (stopped: %s)' % scan['stop_reason'] if scan['truncated'] else ''))
    for entry in actions:
        parts.append(describe_action(entry))
    return '%s in %.1f s' % ('; '.join(parts), seconds)


def describe_action(entry):
    name, outcome = entry['action'], entry['outcome']
    if outcome in ('failed', 'skipped', 'nothing to do'):
        return '%s %s' % (name, outcome)
    if name in ('expire_without_ttl', 'unlink'):
        verb = 'would change' if outcome == 'planned' else 'changed'
        return '%s %s: %s %d keys' % (name, entry['pattern'], verb, entry.get('keys_changed') or entry['keys_selected'])
    if name in ('bgsave', 'verify_rdb') and outcome == 'done':
        return '%s %s verified' % (name, format_size(entry['size_bytes']))
    return '%s %s' % (name, outcome)

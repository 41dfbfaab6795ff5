"""A realistic maintenance log of a fleet: the calendar playbooks' records in the callback's schema.

``fleet_events(hosts, days)`` returns what a year of ``daily.yml`` (health probe with disks, database
snapshot, VACUUM, log rotation, pg_insight), ``weekly.yml`` (maintenance lock, full archive, lock
released) and ``monthly.yml`` (restore drill) runs on ``hosts`` hosts writes, deterministically, with
the record shapes the collection's modules give the callback. ``faults`` adds what the first screen
must show: ``failed_drill`` (the newest drill of the first host mismatched), ``expired_lock`` (the last
weekly run of the first host never released its lock), ``unreachable`` (the second host unreachable in
the last daily run), ``killed`` (a run that ended without a summary) and ``report`` (the report's own
run, started and not ended); ``weekly`` and ``drill`` run the weekly and the monthly playbook on the last day
too (a demo-like log of one day). Used by the report tests and bench/bench_report.py (one generator).
"""

from __future__ import annotations

import datetime
import json
import random

START = datetime.datetime(2025, 12, 1, 2, 0, tzinfo=datetime.timezone.utc)
NS = 'engineroom.maintenance.'
GIB = 2 ** 30


def stamp(when):
    return when.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (when.microsecond // 1000)


def host_names(count):
    return ['db%02d' % (number + 1) for number in range(count)]


class Writer:
    """Events of one run at a time, with a clock that moves on a few seconds per event."""

    def __init__(self, rng):
        self.rng, self.events, self.clock, self.run_id = rng, [], None, None

    def start(self, when, playbook, user='ops'):
        self.clock = when
        self.run_id = when.strftime('%Y%m%dT%H%M%SZ') + '-%08x' % self.rng.getrandbits(32)
        self.add('run_start', invocation_id=self.run_id, playbook=playbook, inventory=['inventories/production'],
                 user=user, controller='ctl01', ansible_version='2.19.14', check_mode=False, limit=None, tags=[],
                 extra_vars=[])

    def add(self, kind, **fields):
        self.clock += datetime.timedelta(seconds=self.rng.uniform(0.5, 3.0))
        record = dict(schema_version=2, event=kind, run_id=self.run_id, time=stamp(self.clock))
        record.update(fields)
        self.events.append(record)

    def task(self, host, task, module, status='ok', **fields):
        self.add('task', host=host, play='Maintenance', task=task, module=NS + module, status=status,
                 duration_ms=round(self.rng.uniform(50, 4000), 1), **fields)

    def end(self, playbook, hosts, status=None):
        overall = status or next((s for s in ('unreachable', 'failed', 'changed', 'ok')
                                  if s in [h['status'] for h in hosts.values()]), 'ok')
        self.add('run_end', invocation_id=self.run_id, playbook=playbook, status=overall, hosts=hosts,
                 duration_ms=round(self.rng.uniform(60000, 900000), 1))


def stats(status, changed=0):
    counts = dict(ok=3, changed=changed, failures=0, unreachable=0, skipped=1, rescued=0, ignored=0)
    if status == 'failed':
        counts['failures'] = 1
    if status == 'unreachable':
        counts.update(ok=0, unreachable=1)
    return dict(counts, status=status)


def disk_entry(name, path, used_pct, size_bytes, inodes_pct):
    used = int(size_bytes * used_pct / 100.0)
    status = 'unhealthy' if used_pct >= 90 else 'degraded' if used_pct >= 80 else 'healthy'
    metrics = {'%s used_pct' % path: round(used_pct, 1), '%s used_bytes' % path: used,
               '%s free_bytes' % path: size_bytes - used, '%s size_bytes' % path: size_bytes,
               '%s inodes_used_pct' % path: round(inodes_pct, 1)}
    return dict(name=name, status=status, message='disk %s %.1f %% used' % (path, used_pct), metrics=metrics)


def daily(writer, hosts, day, when, unreachable=()):
    writer.start(when, 'playbooks/daily.yml')
    rng, outcome = writer.rng, {}
    for index, host in enumerate(hosts):
        if host in unreachable:
            writer.task(host, 'Probe the host\'s services', 'health_probe', 'unreachable',
                        msg='Failed to connect to the host via ssh: ssh: connect to host %s port 22: Connection timed out' % host)
            outcome[host] = stats('unreachable')
            continue
        growth = 0.01 + 0.012 * (index % 5)          # %/day: some hosts fill, some barely move
        data_pct = min(97.0, 30.0 + index % 20 + day * growth)
        probes = [dict(name='postgres', status='healthy', message='PostgreSQL 16 answered',
                       metrics=dict(response_ms=round(rng.uniform(2, 9), 1), connections_used_pct=21.0)),
                  disk_entry('data', '/var/lib/postgresql', data_pct, 500 * GIB, 2.0),
                  disk_entry('backups', '/srv/backups', 40.0 + (index % 7), 2000 * GIB, 2.0)]
        worst = next((s for s in ('unhealthy', 'degraded') if s in [p['status'] for p in probes]), 'healthy')
        writer.task(host, 'Probe the host\'s services', 'health_probe', result_status=worst,
                    summary='health %s: %d probes' % (worst, len(probes)),
                    metrics=dict(duration_ms=round(rng.uniform(30, 90), 1), probes_total=3,
                                 probes_healthy=sum(p['status'] == 'healthy' for p in probes)),
                    items=dict(probes=probes))
        database = int((20 + index) * GIB * (1 + day * 0.002))
        writer.task(host, 'Read the database figures', 'pg_insight', summary='pg_insight: 3 databases',
                    metrics=dict(database_bytes_total=database, connections_used_pct=21.0))
        size = database // 5
        writer.task(host, 'Take the database snapshot of the slot', 'snapshot_archive', 'changed',
                    summary='snapshot db-%s.dump: %.1f MB (verified); pruned 1, kept 14' % (when.strftime('%Y%m%d'), size / 1e6),
                    metrics=dict(duration_ms=round(rng.uniform(20000, 90000), 1), bytes_written=size, source_bytes=database,
                                 snapshots_pruned=1, snapshots_kept=14, database_snapshot_bytes=size))
        writer.task(host, 'VACUUM ANALYZE the tables that need it', 'pg_vacuum', 'changed',
                    summary='VACUUM ANALYZE on 12 tables', metrics=dict(tables_processed=12,
                                                                        dead_tuples_removed=rng.randint(2000, 900000)))
        writer.task(host, 'Audit the logs', 'log_rotation_check', summary='log rotation: 2 of 2 policies met',
                    metrics=dict(logs_checked=2, violations_count=0),
                    items=dict(logs=[dict(name='/var/log/postgresql/*.log', status='compliant', message='rotated daily'),
                                     dict(name='/var/log/app/*.log', status='compliant', message='rotated daily')]))
        outcome[host] = stats('changed', changed=2)
    writer.end('playbooks/daily.yml', outcome)


def weekly(writer, hosts, when, unreleased=()):
    writer.start(when + datetime.timedelta(hours=1), 'playbooks/weekly.yml')
    outcome = {}
    for index, host in enumerate(hosts):
        writer.task(host, 'Take the maintenance lock', 'maintenance_lock', 'changed',
                    summary='acquired: held by ops (weekly window %s)' % when.strftime('%G-W%V'),
                    metrics=dict(duration_ms=12.5, lock_expires_in_s=7200))
        size = (60 + index) * GIB
        writer.task(host, 'Full archive of the weekly slot', 'snapshot_archive', 'changed',
                    summary='snapshot full-%s.tar.zst: %.1f GB (verified)' % (when.strftime('%Y%m%d'), size / 1e9),
                    metrics=dict(bytes_written=size, full_snapshot_bytes=size))
        if host not in unreleased:
            writer.task(host, 'Release the maintenance lock', 'maintenance_lock', 'changed',
                        summary='released (held 41 min)', metrics=dict(duration_ms=8.0))
        outcome[host] = stats('changed', changed=3)
    writer.end('playbooks/weekly.yml', outcome)


def monthly(writer, hosts, when, mismatched=()):
    writer.start(when + datetime.timedelta(hours=3), 'playbooks/monthly.yml')
    outcome = {}
    for host in hosts:
        bad = host in mismatched
        rto = round(writer.rng.uniform(30, 400), 1)
        writer.task(host, 'Restore drill of the newest database snapshot', 'snapshot_restore', 'failed' if bad else 'ok',
                    summary='restore drill of db.dump: 12 tables compared, %s; usable after %.1f s'
                            % ('MISMATCH in orders' if bad else 'all match', rto),
                    metrics=dict(rto_s=rto, tables_compared=12, tables_mismatched=1 if bad else 0))
        outcome[host] = stats('failed' if bad else 'ok')
    writer.end('playbooks/monthly.yml', outcome)


def fleet_events(hosts=50, days=365, seed=24, faults=()):
    """The events of ``days`` days of the calendar on ``hosts`` hosts, oldest first."""
    writer, names = Writer(random.Random(seed)), host_names(hosts)
    faulty = set(faults)
    for day in range(days):
        when = START + datetime.timedelta(days=day)
        last = day == days - 1
        daily(writer, names, day, when, unreachable=names[1:2] if last and 'unreachable' in faulty else ())
        if when.weekday() == 5 or (last and faulty & {'expired_lock', 'weekly'}):
            weekly(writer, names, when, unreleased=names[:1] if last and 'expired_lock' in faulty else ())
        if when.day == 1 or (last and faulty & {'failed_drill', 'drill'}):
            monthly(writer, names, when, mismatched=names[:1] if last and 'failed_drill' in faulty else ())
    end = START + datetime.timedelta(days=days - 1, hours=5)
    if 'killed' in faulty:
        writer.start(end, 'playbooks/quarterly.yml')
        writer.task(names[0], 'VACUUM FULL the bloated tables', 'pg_vacuum', 'changed', summary='VACUUM FULL on 2 tables')
        writer.add('run_end', invocation_id=writer.run_id, playbook='playbooks/quarterly.yml', status='ended_without_summary',
                   hosts={names[0]: stats('changed', changed=1)},
                   last_task=dict(host=names[0], task='VACUUM FULL the bloated tables', status='changed',
                                  time=writer.events[-1]['time']))
    if 'report' in faulty:
        writer.start(end + datetime.timedelta(hours=1), 'playbooks/report.yml')
    return writer.events


def write_log(path, events):
    """Write ``events`` as the callback does: one JSON document per line."""
    with open(path, 'w', encoding='utf-8') as handle:
        for record in events:
            handle.write(json.dumps(record, separators=(',', ':')) + '\n')

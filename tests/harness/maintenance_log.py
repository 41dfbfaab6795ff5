"""A recorded maintenance history in the maintenance_log callback's JSONL schema.

Two weeks of a daily calendar on three hosts, generated deterministically: the
results the collection's modules return (health probes with a disk filling up,
VACUUM figures, snapshot sizes, log policy checks with an open violation), one
failed and one unreachable run. Used as the INPUT of the report tests, next to
histories that real playbook runs record.
"""

from __future__ import annotations

import datetime
import json
import random

START = datetime.datetime(2026, 11, 1, 2, 0, tzinfo=datetime.timezone.utc)
HOSTS = ('db1', 'app1', 'app2')
DAYS = 14


def stamp(when):
    return when.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (when.microsecond // 1000)


def synthetic_events(days=DAYS, seed=7):
    """Return the list of event dicts, oldest first."""
    rng = random.Random(seed)
    events = []
    for day in range(days):
        began = START + datetime.timedelta(days=day)
        run_id = began.strftime('%Y%m%dT%H%M%SZ') + '-%08x' % rng.getrandbits(32)
        clock = [began]

        def event(kind, **fields):
            clock[0] += datetime.timedelta(seconds=rng.uniform(0.5, 4.0))
            record = dict(schema_version=1, event=kind, run_id=run_id, time=stamp(clock[0]))
            record.update(fields)
            events.append(record)

        event('run_start', invocation_id=run_id, playbook='playbooks/daily.yml', inventory=['inventories/production'], user='ops',
              controller='ctl01', ansible_version='2.19.14', check_mode=False, limit=None, tags=[],
              extra_vars=['db_password'], awx_job_id=str(1000 + day) if day % 2 else None)
        hosts = {}
        for host in HOSTS:
            stats = dict(ok=0, changed=0, failures=0, unreachable=0, skipped=0, rescued=0, ignored=0)
            if host == 'app2' and day == 9:
                event('task', host=host, play='Daily', task='Probe the host\'s services',
                      module='engineroom.maintenance.health_probe', status='unreachable', duration_ms=10012.0,
                      msg='Failed to connect to the host via ssh: ssh: connect to host app2 port 22: Connection timed out')
                stats['unreachable'] = 1
                hosts[host] = dict(stats, status='unreachable')
                continue
            used = 55.0 + day * 2.1 + (5 if host == 'db1' else 0) + rng.uniform(-0.5, 0.5)
            api = 'degraded' if (host == 'app1' and day in (4, 5, 11)) else 'healthy'
            probes = [dict(name='db', status='healthy', message='PostgreSQL 15 answered',
                           metrics=dict(response_ms=round(rng.uniform(2, 9), 1))),
                      dict(name='api', status=api, message='HTTP 200 in %d ms' % (700 if api == 'degraded' else 40),
                           metrics=dict(response_ms=700.0 if api == 'degraded' else 40.0)),
                      dict(name='uploads', status='degraded' if used >= 70 else 'healthy',
                           message='/srv %.1f %% used' % used, metrics={'/srv used_pct': round(used, 1)})]
            counts = dict((s, sum(1 for p in probes if p['status'] == s)) for s in ('healthy', 'degraded', 'unhealthy'))
            worst = 'degraded' if counts['degraded'] else 'healthy'
            event('task', host=host, play='Daily', task='Probe the host\'s services',
                  module='engineroom.maintenance.health_probe', status='ok', duration_ms=round(rng.uniform(80, 300), 1),
                  summary='health %s: %d healthy, %d degraded, 0 unhealthy' % (worst, counts['healthy'], counts['degraded']),
                  metrics=dict(duration_ms=round(rng.uniform(30, 90), 1), probes_total=3,
                               probes_healthy=counts['healthy'], probes_degraded=counts['degraded'], probes_unhealthy=0),
                  result_status=worst, items=dict(probes=probes))
            stats['ok'] += 1
            if host == 'db1':
                dead = rng.randint(20000, 1500000)
                event('task', host=host, play='Daily', task='VACUUM ANALYZE the tables that need it',
                      module='engineroom.maintenance.pg_vacuum', status='changed', duration_ms=round(rng.uniform(900, 4000), 1),
                      summary='VACUUM ANALYZE on 12 tables, %s dead tuples removed' % '{:,}'.format(dead),
                      metrics=dict(duration_ms=round(rng.uniform(800, 3900), 1), tables_processed=12,
                                   dead_tuples_removed=dead))
                size = int(512 * 1024 * 1024 * (1 + day * 0.03))
                if day == 6:
                    event('task', host=host, play='Daily', task='Take a verified snapshot',
                          module='engineroom.maintenance.snapshot_archive', status='failed', duration_ms=2310.5,
                          msg='pg_dump exited with 1: pg_dump: error: could not open output file: No space left on device')
                    stats['failures'] += 1
                else:
                    event('task', host=host, play='Daily', task='Take a verified snapshot',
                          module='engineroom.maintenance.snapshot_archive', status='changed',
                          duration_ms=round(rng.uniform(20000, 40000), 1),
                          summary='snapshot db-%s.dump %d MB sha256 ab12%04x verified'
                                  % (began.strftime('%Y%m%dT%H%M%SZ'), size // 2 ** 20, day),
                          metrics=dict(duration_ms=25000.0, size_bytes=size, bytes_written=size))
                stats['changed'] += 2
            else:
                policies = [dict(name='/var/log/app/*.log', status='compliant', message='rotated daily, 14 kept'),
                            dict(name='/var/log/nginx/access.log',
                                 status='violation' if day >= 10 and host == 'app1' else 'compliant',
                                 message='not rotated for 3 days (policy: daily)' if day >= 10 else 'rotated daily')]
                event('task', host=host, play='Daily', task='Check log rotation',
                      module='engineroom.maintenance.log_rotation_check', status='ok', duration_ms=120.0,
                      summary='log rotation: %d of 2 policies met' % sum(p['status'] == 'compliant' for p in policies),
                      metrics=dict(duration_ms=110.0, logs_checked=2, violations_count=sum(
                          p['status'] != 'compliant' for p in policies)),
                      items=dict(logs=policies))
                stats['ok'] += 1
            stats['ok'] += 1
            event('task', host=host, play='Daily', task='Publish the figures', module='ansible.builtin.set_stats',
                  status='ok', duration_ms=3.1)
            status = 'failed' if stats['failures'] else ('changed' if stats['changed'] else 'ok')
            hosts[host] = dict(stats, status=status)
        overall = next(s for s in ('unreachable', 'failed', 'changed', 'ok') if s in [h['status'] for h in hosts.values()])
        event('run_end', invocation_id=run_id, playbook='playbooks/daily.yml', status=overall, hosts=hosts,
              duration_ms=round((clock[0] - began).total_seconds() * 1000, 1))
    return events


def write_history(path, events, corrupt_after=None):
    """Write ``events`` as JSON Lines; ``corrupt_after`` inserts a torn line after that many events."""
    with open(path, 'w', encoding='utf-8') as handle:
        for index, record in enumerate(events):
            handle.write(json.dumps(record) + '\n')
            if corrupt_after is not None and index + 1 == corrupt_after:
                handle.write('{"schema_version": 1, "event": "task", "run_id": "torn\n')

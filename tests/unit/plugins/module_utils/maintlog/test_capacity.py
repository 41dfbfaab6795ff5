"""The capacity review's figures on synthetic records in the maintenance_log callback's schema.

Times are laid on mean calendar months (``DAYS_PER_MONTH``) so that exact linear histories give
exact growth figures and exact dates.
"""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog import capacity as _capacity
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.capacity import DAYS_PER_MONTH, review

GIB = 2 ** 30
START = datetime.datetime(2026, 1, 10, 2, 0, tzinfo=datetime.timezone.utc)


def stamp(when):
    return when.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (when.microsecond // 1000)


def at(months):
    return START + datetime.timedelta(days=months * DAYS_PER_MONTH)


def task(host, module, when, metrics, items=None, status='ok'):
    record = dict(schema_version=1, event='task', run_id='r-%s' % stamp(when), time=stamp(when), host=host,
                  play='Daily', task='t', module='engineroom.maintenance.' + module, status=status,
                  duration_ms=10.0, summary='s', metrics=metrics)
    if items is not None:
        record['items'] = items
    return record


def disk(host, when, used_gib, capacity_gib=100, path='/srv', extra=None):
    """A health_probe record as the callback writes it: the disk probe's figures labelled by path."""
    used, free = int(used_gib * GIB), int((capacity_gib - used_gib) * GIB)
    figures = {'%s used_pct' % path: round(100.0 * used / (used + free), 1), '%s used_bytes' % path: used,
               '%s free_bytes' % path: free, '%s size_bytes' % path: int(capacity_gib * 1.05 * GIB),
               '%s inodes_used_pct' % path: 1.0, 'response_ms': 0.4}
    figures.update(extra or {})
    probes = [dict(name='disks', status='healthy', message='%s used' % path, metrics=figures),
              dict(name='memory', status='healthy', message='memory', metrics=dict(used_pct=40.0, response_ms=0.1))]
    return task(host, 'health_probe', when, dict(probes_total=2), items=dict(probes=probes))


def insight(host, when, size):
    return task(host, 'pg_insight', when, dict(duration_ms=80.0, databases=1, database_bytes_total=size))


def snapshot(host, when, tier, size):
    return task(host, 'snapshot_archive', when, {'duration_ms': 900.0, 'bytes_written': size,
                                                 '%s_snapshot_bytes' % tier: size}, status='changed')


def test_exact_linear_growth_gives_exact_figures_and_date():
    events = [disk('db1', at(month), 50 + 10 * month) for month in range(3)]  # 50, 60, 70 % used
    events += [insight('db1', at(m), GIB + m * 100 * 2 ** 20) for m in range(3)]
    events += [snapshot('db1', at(m), 'database', 200 * 2 ** 20 + m * 10 * 2 ** 20) for m in range(3)]
    result = review(events, 'db1', 80.0, 12)

    database = result['growth']['database']
    assert database['status'] == 'ok' and database['reason'] is None
    assert database['bytes_per_month'] == 100 * 2 ** 20 and database['r_squared'] == {'bytes': 1.0}
    assert database['samples'] == 3 and database['months'] == 3 and database['bytes_latest'] == GIB + 200 * 2 ** 20
    assert result['growth']['snapshots']['database']['bytes_per_month'] == 10 * 2 ** 20
    full = result['growth']['snapshots']['full']
    assert full['status'] == 'not_enough_history' and full['reason'] == 'no samples in the maintenance log'

    (growth,) = result['growth']['disks']
    assert growth['path'] == '/srv' and growth['used_bytes_per_month'] == 10 * GIB
    assert growth['used_pct_per_month'] == pytest.approx(10.0)
    projection = result['projection']
    assert projection['status'] == 'projected' and projection['path'] == '/srv'
    # 70 % now, 10 points a month: 80 % exactly one mean month after the latest sample.
    assert projection['date'] == (at(3)).strftime('%Y-%m-%d')
    assert projection['disks'][0]['days'] == pytest.approx(DAYS_PER_MONTH, abs=0.1)
    assert projection['reason'].startswith('/srv reaches 80 %% around %s: 70.0 %% used on %s'
                                           % (at(3).strftime('%Y-%m-%d'), at(2).strftime('%Y-%m-%d')))
    assert result['as_of'] == at(2).strftime('%Y-%m-%dT%H:%M:%SZ')


def test_exactly_at_the_threshold_is_reached_since_the_first_sample_at_it():
    events = [disk('db1', at(m), used) for m, used in enumerate((60, 70, 80, 79, 80, 80))]
    result = review(events, 'db1', 80.0, 12)
    projection = result['projection']
    assert projection['status'] == 'reached'
    assert projection['date'] == at(4).strftime('%Y-%m-%d')  # the dip to 79 % ended the earlier stretch
    assert projection['disks'][0]['days'] == 0.0
    assert 'is at 80.0 % (threshold 80 %) since' in projection['reason']
    assert '80 %% disk reached on /srv since %s' % at(4).strftime('%Y-%m-%d') in _capacity.summary_of(
        dict(result, samples=len(events)))


@pytest.mark.parametrize('used, word', [((70, 70, 70, 70), 'flat'), ((72, 71, 70, 69), 'shrinking')])
def test_a_fleet_with_flat_or_shrinking_disks_gets_no_date(used, word):
    events = []
    for month in range(4):
        events.append(disk('grows', at(month), 50 + 5 * month))
        events.append(disk('still', at(month), used[month]))
    grows = review(events, 'grows', 80.0, 12)['projection']
    still = review(events, 'still', 80.0, 12)
    assert grows['status'] == 'projected' and grows['date'] is not None
    projection = still['projection']
    assert projection['status'] == 'not_growing' and projection['date'] is None and projection['path'] is None
    assert 'is not growing' in projection['reason'] and 'no date to project' in projection['reason']
    per_month = still['growth']['disks'][0]['used_bytes_per_month']
    assert (per_month == 0) if word == 'flat' else (per_month == -GIB)
    assert still['growth']['disks'][0]['r_squared']['used_bytes'] == (None if word == 'flat' else 1.0)


def test_less_than_two_months_is_not_enough_history_and_gives_no_date():
    one_month = [disk('db1', START + datetime.timedelta(days=d), 50 + d) for d in range(15)]
    result = review(one_month, 'db1', 80.0, 12)
    (growth,) = result['growth']['disks']
    assert growth['status'] == 'not_enough_history'
    assert growth['reason'] == '15 samples in 1 calendar month; at least 2 months are needed'
    assert growth['used_bytes_per_month'] is None
    assert result['projection']['status'] == 'not_enough_history' and result['projection']['date'] is None
    assert result['projection']['reason'].startswith('/srv: not enough history (15 samples')

    month_edge = [disk('db1', datetime.datetime(2026, 1, 31, 23, tzinfo=datetime.timezone.utc), 50),
                  disk('db1', datetime.datetime(2026, 2, 1, 1, tzinfo=datetime.timezone.utc), 60)]
    growth = review(month_edge, 'db1', 80.0, 12)['growth']['disks'][0]
    assert growth['status'] == 'not_enough_history'
    assert growth['reason'] == 'the samples span 0.1 days; at least 28 days are needed'

    single = review([insight('db1', START, GIB)], 'db1', 80.0, 12)
    assert single['growth']['database']['reason'] == '1 sample in 1 calendar month; at least 2 months are needed'
    assert single['projection']['reason'].startswith('no disk figures in the maintenance log')
    assert review([], 'db1', 80.0, 12)['months'] == []


def test_a_date_more_than_ten_years_away_is_not_given():
    events = [disk('db1', at(m), 10 + 0.01 * m) for m in range(4)]
    projection = review(events, 'db1', 80.0, 12)['projection']
    assert projection['status'] == 'beyond_horizon' and projection['date'] is None
    assert 'more than 10 years away' in projection['reason']


def test_a_resized_disk_keeps_its_growth_in_bytes_and_the_target_of_its_new_size():
    events = [disk('db1', at(0), 50), disk('db1', at(1), 55), disk('db1', at(2), 60, capacity_gib=200)]
    result = review(events, 'db1', 80.0, 12)
    disk_projection = result['projection']['disks'][0]
    assert result['growth']['disks'][0]['used_bytes_per_month'] == 5 * GIB
    assert disk_projection['capacity_bytes'] == 200 * GIB and disk_projection['target_bytes'] == 160 * GIB
    assert disk_projection['days'] == pytest.approx(20 * DAYS_PER_MONTH, abs=0.1)  # 100 GiB at 5 GiB a month


def test_months_keep_last_and_maximum_and_show_gaps():
    events = [insight('db1', at(0), 3 * GIB), insight('db1', at(0.3), 4 * GIB), insight('db1', at(0.6), 3.5 * GIB),
              insight('db1', at(3), 5 * GIB),
              snapshot('db1', at(0.1), 'full', 9 * GIB), snapshot('db1', at(0.2), 'database', GIB),
              disk('db1', at(0.1), 40), disk('db1', at(0.5), 45), disk('db1', at(0.55), 44)]
    months = review(events, 'db1', 80.0, 12)['months']
    assert [m['month'] for m in months] == ['2026-01', '2026-02', '2026-03', '2026-04']
    january, february = months[0], months[1]
    assert january['database_bytes_last'] == 3.5 * GIB and january['database_bytes_max'] == 4 * GIB
    assert january['full_snapshot_bytes_last'] == 9 * GIB and january['database_snapshot_bytes_max'] == GIB
    assert january['samples'] == 8
    assert january['disks'] == [dict(path='/srv', samples=3, used_pct_last=44.0, used_pct_max=45.0,
                                     used_bytes_last=44 * GIB, used_bytes_max=45 * GIB,
                                     size_bytes=int(100 * 1.05 * GIB))]
    assert february['samples'] == 0 and february['database_bytes_last'] is None
    assert february['disks'] == [dict(path='/srv', samples=0, used_pct_last=None, used_pct_max=None,
                                      used_bytes_last=None, used_bytes_max=None, size_bytes=None)]
    assert months[3]['database_bytes_last'] == 5 * GIB
    page = _capacity.render_markdown(review(events, 'db1', 80.0, 12))
    assert '| month | samples | database | database snapshot | full snapshot | /srv used |\n' in page
    assert '| 2026-01 | 8 | 3.5 GiB (max 4.0 GiB) | 1.0 GiB | 9.0 GiB | 44.0 % (max 45.0 %) |\n' in page
    assert '| 2026-02 | 0 | – | – | – | – |\n' in page


def test_window_counts_months_back_from_the_newest_figure():
    events = [insight('db1', at(m), GIB * (1 + m)) for m in range(6)]
    result = review(events, 'db1', 80.0, 2)
    assert [m['month'] for m in result['months']] == [at(4).strftime('%Y-%m'), at(5).strftime('%Y-%m')]
    assert result['growth']['database']['samples'] == 2


def test_only_the_hosts_usable_figures_count():
    events = [insight('db1', at(0), 2 * GIB), insight('db2', at(0), 7 * GIB),
              insight('db1', at(1), 0),                                      # database_sizes not collected
              task('db1', 'pg_insight', at(1), {}, status='failed'),         # a failed review has no figures
              task('db1', 'snapshot_archive', at(1), dict(bytes_written=5)),  # an old record without its tier
              snapshot('db1', at(1), 'full', 3 * GIB),
              dict(event='run_start', run_id='x', time=stamp(at(1)), host='db1'),
              task('db1', 'health_probe', at(1), dict(probes_total=1), items=dict(probes=[dict(
                  name='disks', status='healthy', metrics={'/part used_pct': 20.0, '/part free_bytes': 5}),
                  dict(name='memory', status='healthy', metrics=dict(used_pct=40.0))]))]
    result = review(events, 'db1', 80.0, 12)
    assert result['samples'] == 2
    assert result['growth']['database']['bytes_latest'] == 2 * GIB
    assert result['growth']['snapshots']['full']['bytes_latest'] == 3 * GIB
    assert result['growth']['disks'] == []  # the memory probe and a path without used bytes are no disks


def test_several_paths_without_a_date_say_why_once_or_each():
    young = [disk('db1', at(0), 50, path=path) for path in ('/a', '/b')]
    projection = review(young, 'db1', 80.0, 12)['projection']
    assert projection['reason'] == '/a, /b: not enough history (1 sample in 1 calendar month; at least 2 months are needed)'
    mixed = young + [disk('db1', at(2), 50, path='/a'), disk('db1', at(2), 50.1, path='/b')]
    projection = review(mixed, 'db1', 80.0, 12)['projection']
    assert projection['status'] == 'beyond_horizon' and projection['date'] is None
    assert projection['reason'] == ('/a is not growing (0 B per month over 2 samples): no date to project; '
                                    '/b grows +51.2 MiB per month: 80 % is more than 10 years away')


def test_several_paths_rank_the_earliest_date_first():
    events = []
    for month in range(3):
        events.append(disk('db1', at(month), 40 + month, path='/var/log', extra=None))
        events.append(disk('db1', at(month), 60 + 5 * month, path='/srv/backups'))
    projection = review(events, 'db1', 80.0, 12)['projection']
    assert [d['path'] for d in projection['disks']] == ['/srv/backups', '/var/log']
    assert projection['path'] == '/srv/backups'
    assert projection['date'] == at(4).strftime('%Y-%m-%d')


def test_renderings_carry_the_review():
    events = [disk('db1', at(m), 50 + 10 * m) for m in range(3)] + [insight('db1', at(m), GIB * (m + 1)) for m in range(3)]
    result = review(events, 'db1', 80.0, 12)
    result['summary'] = _capacity.summary_of(result)
    assert result['summary'] == ('capacity of db1 as of %s (3 months, 6 samples): database 3.0 GiB +1.0 GiB/month, '
                                 'disk /srv 70.0 %% +10.00 pp/month; 80 %% disk projected for /srv on %s'
                                 % (at(2).strftime('%Y-%m-%d'), at(3).strftime('%Y-%m-%d')))
    page = _capacity.render_markdown(result)
    assert page.startswith('# Capacity review: db1\n')
    assert '| /srv | 70.0 %% (70.0 GiB of 100.0 GiB) | +10.00 pp, +10.0 GiB | %s |' % at(3).strftime('%Y-%m-%d') in page
    assert '| database size (all databases) | 3.0 GiB | +1.0 GiB | 3 | 3 | 1.00 |' in page
    assert '| full snapshot | – | not enough history: no samples in the maintenance log | 0 | 0 | – |' in page
    assert '| 2026-01 | 2 | 1.0 GiB | – | – | 50.0 % |' in page
    assert json.loads(_capacity.render_json(result))['projection']['date'] == at(3).strftime('%Y-%m-%d')
    empty = review([], 'db9', 80.0, 12)
    assert _capacity.summary_of(empty).startswith('capacity of db9: no capacity figures in the maintenance log')
    assert 'No capacity figures recorded for this host.' in _capacity.render_markdown(empty)

"""capacity_review on a maintenance log history shaped by a real run of the callback.

One real playbook run with the maintenance_log callback (health_probe's disk probe, pg_insight
against the ``pg`` cluster, snapshot_archive of both tiers) gives the records exactly as the
callback writes them. Four months of history are then laid out from those records - same
fields, same keys, new times and figures that grow linearly - so the expected growth and
projected date are known exactly. The module runs through real ansible-playbook: the reviews,
a rerun, check mode and every bad input in one play, then playbooks/quarterly.yml --tags capacity.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import shutil

import pytest

from tests.harness.faults_fs import file_tree
from tests.harness.playbook import REPO_ROOT, run_tasks
from tests.integration.maintenance_log.conftest import read_events, run_logged, write_yaml

MODULE = 'engineroom.maintenance.capacity_review'
GIB = 2 ** 30
MIB = 2 ** 20
START = datetime.datetime(2026, 6, 1, 2, 0, tzinfo=datetime.timezone.utc)
DAYS = 120                       # June to September: four calendar months
USED_START, USED_PER_DAY, CAPACITY = 250 * GIB, GIB, 500 * GIB   # 50 % -> 74 % used, 80 % 30 days later
DB_START, DB_PER_DAY = GIB, 10 * MIB
QUARTERLY = os.path.join(REPO_ROOT, 'playbooks', 'quarterly.yml')


def stamp(when):
    return when.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (when.microsecond // 1000)


@pytest.fixture(scope='module')
def real_records(pg, tmp_path_factory):
    """The task events of one real logged run of the three modules whose figures the review reads."""
    directory = str(tmp_path_factory.mktemp('capacity-real'))
    files = os.path.join(directory, 'uploads')
    os.makedirs(files)
    with open(os.path.join(files, 'a.txt'), 'w') as handle:
        handle.write('capacity\n' * 100)
    conn = dict(login_host=pg.host, login_port=pg.port, login_user='postgres', login_password=pg.superuser_password)
    backups = os.path.join(directory, 'backups')
    playbook = write_yaml(directory, 'figures.yml', [dict(name='Figures', hosts='localhost', gather_facts=False, tasks=[
        {'name': 'Probe the disks', 'engineroom.maintenance.health_probe': dict(
            probes=[dict(name='disks', kind='disk', path=[directory])])},
        {'name': 'Review the database', 'engineroom.maintenance.pg_insight': dict(
            conn, sections=['database_sizes', 'connections'])},
        {'name': 'Database snapshot', 'engineroom.maintenance.snapshot_archive': dict(conn, database='app', dest=backups)},
        {'name': 'Full archive', 'engineroom.maintenance.snapshot_archive': dict(
            conn, database='app', dest=backups, tier='full', paths=[files])},
        {'name': 'Database snapshot, slot covered', 'engineroom.maintenance.snapshot_archive': dict(
            conn, database='app', dest=backups)},
        {'name': 'Database snapshot planned', 'engineroom.maintenance.snapshot_archive': dict(
            conn, database='app', dest=backups, prefix='planned'), 'check_mode': True},
    ])])
    log_dir = os.path.join(directory, 'log')
    run = run_logged([playbook], log_dir)
    assert run.rc == 0, run.stderr[-3000:]
    events = read_events(log_dir)
    tasks = dict((e['task'], e) for e in events if e['event'] == 'task')
    # What the callback really records, and the review relies on:
    disk_metrics = tasks['Probe the disks']['items']['probes'][0]['metrics']
    for name in ('used_pct', 'used_bytes', 'free_bytes', 'size_bytes'):
        assert isinstance(disk_metrics['%s %s' % (directory, name)], (int, float))
    assert tasks['Review the database']['metrics']['database_bytes_total'] > 0
    assert tasks['Database snapshot']['metrics']['database_snapshot_bytes'] > 0
    assert 'full_snapshot_bytes' not in tasks['Database snapshot']['metrics']
    assert tasks['Full archive']['metrics']['full_snapshot_bytes'] > 0
    # A covered slot logs the size of the snapshot covering it; check mode has no size to log.
    covered = tasks['Database snapshot, slot covered']['metrics']
    assert covered['bytes_written'] == 0
    assert covered['database_snapshot_bytes'] == tasks['Database snapshot']['metrics']['database_snapshot_bytes']
    assert 'database_snapshot_bytes' not in tasks['Database snapshot planned']['metrics']
    return dict(path=directory, tasks=tasks, start=[e for e in events if e['event'] == 'run_start'][0],
                end=[e for e in events if e['event'] == 'run_end'][0])


def used_on(day, flat=False):
    return USED_START + (0 if flat else day * USED_PER_DAY)


def run_events(real, host, when, day, snapshots=('database',), flat=False, with_insight=True):
    """One run of the history: the real run's records for ``host`` at ``when`` with day ``day``'s figures."""
    run_id = when.strftime('%Y%m%dT%H%M%SZ') + '-%s' % host
    clock = [when]

    def clone(record, **changes):
        clock[0] += datetime.timedelta(seconds=5)
        record = copy.deepcopy(record)
        record.update(run_id=run_id, time=stamp(clock[0]), **changes)
        if 'host' in record:
            record['host'] = host
        return record

    out = [clone(real['start'], invocation_id=run_id)]
    probe = clone(real['tasks']['Probe the disks'])
    entry = probe['items']['probes'][0]
    used = used_on(day, flat)
    figures = {'used_bytes': used, 'free_bytes': CAPACITY - used, 'used_pct': round(100.0 * used / CAPACITY, 1),
               'size_bytes': int(CAPACITY * 1.05)}
    entry['metrics'] = dict(('/srv ' + key.rsplit(' ', 1)[1], figures.get(key.rsplit(' ', 1)[1], value))
                            if key.startswith(real['path'] + ' ') else (key, value)
                            for key, value in entry['metrics'].items())
    entry['message'] = '/srv %.1f %% used' % figures['used_pct']
    out.append(probe)
    if with_insight:
        out.append(clone(real['tasks']['Review the database']))
        out[-1]['metrics']['database_bytes_total'] = DB_START + day * DB_PER_DAY
    for tier in snapshots:
        record = clone(real['tasks']['Database snapshot' if tier == 'database' else 'Full archive'])
        size = (DB_START + day * DB_PER_DAY) // (5 if tier == 'database' else 2)
        record['metrics'].update({'bytes_written': size, '%s_snapshot_bytes' % tier: size})
        out.append(record)
    out.append(clone(real['end'], hosts={host: real['end']['hosts']['localhost']}))
    return out


def write_history(log_dir, real, host='db1'):
    """Four months of runs of ``host`` (disk and database growing), a flat host, and a two-week-old host."""
    events = []
    for day in range(0, DAYS + 1, 4):
        when = START + datetime.timedelta(days=day)
        events += run_events(real, host, when, day, snapshots=('database', 'full') if day % 28 == 0 else ('database',),
                             with_insight=day % 8 == 0)
        if day % 12 == 0:
            events += run_events(real, 'flat1', when + datetime.timedelta(hours=1), day, flat=True)
        if day >= DAYS - 12:
            events += run_events(real, 'fresh1', when + datetime.timedelta(hours=2), day)
    os.makedirs(log_dir, exist_ok=True)
    half = len(events) // 2
    with open(os.path.join(log_dir, 'maintenance.jsonl.1'), 'w', encoding='utf-8') as handle:
        for index, record in enumerate(events[:half]):
            handle.write(json.dumps(record) + '\n')
            if index == 10:
                handle.write('{"schema_version": 1, "event": "task", "run_id": "torn\n')
    with open(os.path.join(log_dir, 'maintenance.jsonl'), 'w', encoding='utf-8') as handle:
        handle.writelines(json.dumps(record) + '\n' for record in events[half:])
    return events


def expected_projection_date():
    last_day = DAYS  # the last sample of db1
    remaining = 0.8 * CAPACITY - used_on(last_day)
    return (START + datetime.timedelta(days=last_day + remaining / USED_PER_DAY)).strftime('%Y-%m-%d')


def test_review_rerun_check_mode_and_bad_inputs(real_records, tmp_path):
    log_dir = str(tmp_path / 'log')
    write_history(log_dir, real_records)
    out = tmp_path / 'out'
    out.mkdir()
    a_file = tmp_path / 'not-a-dir'
    a_file.write_text('x')
    unreadable = tmp_path / 'unreadable'
    (unreadable / 'maintenance.jsonl').mkdir(parents=True)  # the log's file cannot be read
    empty = tmp_path / 'empty'
    empty.mkdir()
    report, json_report = str(out / 'capacity-db1.md'), str(out / 'capacity-db1.json')
    before = file_tree(log_dir)

    def bad(name, **args):
        return {'name': name, MODULE: dict(dict(log_dir=log_dir, host='db1', dest=str(out / (name + '.md'))), **args),
                'ignore_errors': True}

    run = run_tasks([
        {'name': 'review', MODULE: dict(log_dir=log_dir, host='db1', dest=report)},
        {'name': 'review again', MODULE: dict(log_dir=log_dir, host='db1', dest=report)},
        {'name': 'json in check mode', MODULE: dict(log_dir=log_dir, host='db1', dest=str(out / 'check.json'),
                                                    format='json'), 'check_mode': True},
        {'name': 'json', MODULE: dict(log_dir=log_dir, host='db1', dest=json_report, format='json', threshold_pct=75)},
        {'name': 'flat host', MODULE: dict(log_dir=log_dir, host='flat1')},
        {'name': 'fresh host', MODULE: dict(log_dir=log_dir, host='fresh1')},
        {'name': 'unknown host', MODULE: dict(log_dir=log_dir, host='db9')},
        bad('missing log dir', log_dir=str(tmp_path / 'nowhere')),
        bad('log dir is a file', log_dir=str(a_file)),
        bad('no log in dir', log_dir=str(empty)),
        bad('unreadable log', log_dir=str(unreadable)),
        bad('threshold zero', threshold_pct=0),
        bad('threshold above 100', threshold_pct=100.5),
        bad('one month', months=1),
        bad('empty host', host=' '),
        bad('dest dir missing', dest=str(tmp_path / 'nowhere' / 'capacity.md')),
    ])
    assert run.rc == 0, run.stderr[-3000:]

    first = run.result('review')
    assert first['changed'] is True and first['dest'] == report and 'failed' not in first
    assert first['executed_commands'] == []
    assert first['skipped_lines'] == [dict(where='maintenance.jsonl.1 line 12', reason=first['skipped_lines'][0]['reason'])]
    assert any(w.startswith('1 line(s) of the maintenance log skipped, first maintenance.jsonl.1 line 12: not valid JSON')
               for w in first['warnings'])
    assert [m['month'] for m in first['months']] == ['2026-06', '2026-07', '2026-08', '2026-09']
    september = first['months'][-1]
    assert september['disks'][0]['used_bytes_last'] == used_on(DAYS)
    assert september['disks'][0]['used_pct_last'] == 74.0 and september['disks'][0]['path'] == '/srv'
    assert september['database_bytes_last'] == DB_START + 120 * DB_PER_DAY
    assert september['full_snapshot_bytes_last'] == (DB_START + 112 * DB_PER_DAY) // 2

    growth = first['growth']
    assert growth['database']['status'] == 'ok'
    assert growth['database']['bytes_per_month'] == pytest.approx(DB_PER_DAY * 365.2425 / 12, abs=1)
    assert growth['snapshots']['database']['bytes_per_month'] == pytest.approx(DB_PER_DAY / 5 * 365.2425 / 12, abs=1)
    assert growth['snapshots']['full']['status'] == 'ok' and growth['snapshots']['full']['samples'] == 5
    (disk,) = growth['disks']
    assert disk['path'] == '/srv' and disk['samples'] == 31 and disk['months'] == 4
    assert disk['used_bytes_per_month'] == pytest.approx(USED_PER_DAY * 365.2425 / 12, abs=1)

    projection = first['projection']
    assert projection['status'] == 'projected' and projection['path'] == '/srv' and projection['threshold_pct'] == 80
    assert projection['date'] == expected_projection_date() == '2026-10-29'
    assert projection['disks'][0]['days'] == pytest.approx(30.0, abs=0.05)
    assert first['metrics']['days_to_threshold'] == projection['disks'][0]['days']
    assert first['metrics']['lines_skipped'] == 1 and first['metrics']['bytes_written'] == os.path.getsize(report)
    assert first['summary'].startswith('capacity of db1 as of 2026-09-29 (4 months, ')
    assert first['summary'].endswith('80 % disk projected for /srv on 2026-10-29')
    with open(report, encoding='utf-8') as handle:
        page = handle.read()
    assert page.startswith('# Capacity review: db1\n')
    assert '**/srv reaches 80 % around 2026-10-29: 74.0 % used on 2026-09-29' in page
    assert '| 2026-09 |' in page and 'not enough history' not in page

    again = run.result('review again')
    assert again['changed'] is False and again['metrics']['bytes_written'] == 0
    assert again['projection'] == projection

    check = run.result('json in check mode')
    assert check['changed'] is True and check['metrics']['bytes_written'] == 0
    assert check['projection'] == projection and not os.path.exists(out / 'check.json')
    written = run.result('json')
    assert written['changed'] is True and written['projection']['threshold_pct'] == 75
    with open(json_report, encoding='utf-8') as handle:
        document = json.load(handle)
    assert document['projection']['date'] == written['projection']['date'] < projection['date']
    assert document['summary'] == written['summary'] and document['months'] == written['months']

    flat = run.result('flat host')
    assert flat['projection']['status'] == 'not_growing' and flat['projection']['date'] is None
    assert flat['projection']['reason'].startswith('/srv is not growing (')
    assert flat['growth']['disks'][0]['used_bytes_per_month'] == 0
    assert flat['dest'] is None and flat['changed'] is False

    fresh = run.result('fresh host')
    assert fresh['projection']['status'] == 'not_enough_history' and fresh['projection']['date'] is None
    assert fresh['growth']['disks'][0]['reason'] == '4 samples in 1 calendar month; at least 2 months are needed'
    assert 'not enough history' in fresh['summary'] and 'no 80 % date' in fresh['summary']

    unknown = run.result('unknown host')
    assert unknown['months'] == [] and unknown['as_of'] is None
    assert any('host db9 has no records in the maintenance log' in w and 'db1, flat1, fresh1' in w
               for w in unknown['warnings'])

    messages = dict((name, run.result(name)) for name in (
        'missing log dir', 'log dir is a file', 'no log in dir', 'unreadable log', 'threshold zero',
        'threshold above 100', 'one month', 'empty host', 'dest dir missing'))
    assert all(r.get('failed') is True for r in messages.values())
    assert messages['missing log dir']['msg'].startswith('log_dir %s does not exist: point it at the maintenance_log'
                                                         % (tmp_path / 'nowhere'))
    assert messages['log dir is a file']['msg'].startswith('log_dir %s is not a directory' % a_file)
    assert messages['no log in dir']['msg'].startswith('no maintenance log in %s (maintenance.jsonl missing)' % empty)
    assert messages['unreadable log']['msg'].startswith('cannot read the maintenance log in %s: Is a directory'
                                                        % unreadable)
    assert messages['threshold zero']['msg'] == 'threshold_pct must be between 1 and 100 percent of the disk (got 0.0)'
    assert messages['threshold above 100']['msg'] == ('threshold_pct must be between 1 and 100 percent of the disk '
                                                      '(got 100.5)')
    assert messages['one month']['msg'].startswith('months must be at least 2 (got 1)')
    assert messages['empty host']['msg'] == 'host is empty: give the inventory host name whose history to review'
    assert messages['dest dir missing']['msg'] == 'dest %s cannot be written: directory %s does not exist' % (
        tmp_path / 'nowhere' / 'capacity.md', tmp_path / 'nowhere')
    # Nothing changed: the history as it was, no report of a failed review, nothing created.
    assert file_tree(log_dir) == before
    assert sorted(os.listdir(out)) == ['capacity-db1.json', 'capacity-db1.md']
    assert not os.path.exists(tmp_path / 'nowhere') and os.listdir(empty) == []


def test_quarterly_reviews_each_host_from_the_log_it_appends_to(real_records, tmp_path):
    log_dir = str(tmp_path / 'log')
    write_history(log_dir, real_records, host='localhost')
    env = dict(ANSIBLE_RUN_TAGS='capacity', ANSIBLE_SHOW_CUSTOM_STATS='1')
    first = run_logged([QUARTERLY], log_dir, env=env)
    assert first.rc == 0, first.stderr[-3000:]
    second = run_logged([QUARTERLY], log_dir, env=env)
    assert second.rc == 0, second.stderr[-3000:]
    report = os.path.join(log_dir, 'capacity-localhost.md')

    def capacity(run):
        return [t for p in run.report['plays'] for t in p['tasks']
                if t['task']['name'] == 'Capacity review from the maintenance log history'][0]['hosts']['localhost']

    one, two = capacity(first), capacity(second)
    assert one['projection']['date'] == '2026-10-29' and one['dest'] == report
    assert one['changed'] is False  # a review file is an output, not a change of the host
    assert one['metrics']['bytes_written'] == os.path.getsize(report)
    # The first quarterly run appended its own records to the log; the figures are the same, so is the file.
    assert two['metrics']['bytes_written'] == 0 and two['summary'] == one['summary']
    assert second.report['global_custom_stats']['quarterly']['localhost']['capacity'] == one['summary']
    assert second.report['global_custom_stats']['quarterly']['localhost']['capacity_projection_date'] == '2026-10-29'
    with open(os.path.join(log_dir, 'maintenance.jsonl'), encoding='utf-8') as handle:  # the torn line is in .1
        logged = [e for e in map(json.loads, handle) if e.get('module') == MODULE]
    assert len(logged) == 2
    assert logged and logged[-1]['summary'] == one['summary'] and logged[-1]['host'] == 'localhost'
    shutil.rmtree(log_dir)

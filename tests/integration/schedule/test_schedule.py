"""The schedule role: real systemd units checked by systemd-analyze, a real cron.d file, the real runner.

The calendar must fire on the same days and at the same times as the AWX schedules declared in
playbooks/awx_setup.yml: every day of 2027 is checked against their RRULEs, for the systemd
OnCalendar expressions (as systemd-analyze computes them) and for the cron lines.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import time

import pytest
import yaml

from tests.harness.playbook import BIN_DIR, REPO_ROOT, run_tasks

YEAR = 2027


def role(tmp_path, **overrides):
    role_vars = dict(schedule_systemd_dir=str(tmp_path / 'units'), schedule_cron_file=str(tmp_path / 'cron.d' / 'engineroom'),
                     schedule_runner_path=str(tmp_path / 'bin' / 'engineroom-schedule-run'),
                     schedule_lock_file=str(tmp_path / 'calendar.lock'),
                     schedule_ansible_playbook=os.path.join(BIN_DIR, 'ansible-playbook'),
                     schedule_inventory='localhost,', schedule_extra_args=['--connection', 'local'],
                     schedule_collections_path=os.path.join(REPO_ROOT, 'collections'))
    role_vars.update(overrides)
    for key in ('schedule_systemd_dir', 'schedule_cron_file', 'schedule_runner_path'):
        path = role_vars[key]
        os.makedirs(path if key == 'schedule_systemd_dir' else os.path.dirname(path), exist_ok=True)
    return {'name': 'schedule', 'ansible.builtin.include_role': {'name': 'engineroom.maintenance.schedule'},
            'vars': role_vars}


def changed(run):
    return [t['_task'] for t in run.tasks if t.get('changed')]


def awx_calendar():
    with open(os.path.join(REPO_ROOT, 'playbooks', 'awx_setup.yml')) as handle:
        play = yaml.safe_load(handle)[0]
    return [entry for entry in play['vars']['awx_calendar'] if 'rrule' in entry]


def rrule_matches(rrule, at, moment, start=datetime.date(2026, 1, 1)):
    """Whether the AWX RRULE (the few parts awx_setup.yml uses) fires at ``moment``."""
    parts = dict(part.split('=') for part in rrule.split(';'))
    if moment.strftime('%H%M%S') != at:
        return False
    day = moment.date()
    if parts.get('BYDAY') == 'SU' and day.isoweekday() != 7:
        return False
    if parts.get('BYSETPOS') == '1' and day.day > 7:
        return False
    if 'BYMONTHDAY' in parts and day.day != int(parts['BYMONTHDAY']):
        return False
    if parts['FREQ'] == 'MONTHLY':
        months = (day.year - start.year) * 12 + day.month - start.month
        return months % int(parts.get('INTERVAL', 1)) == 0
    return True


def systemd_elapses(expression):
    completed = subprocess.run(['systemd-analyze', 'calendar', '--base-time=%d-01-01 00:00:00 UTC' % YEAR,
                                '--iterations=400', expression], stdout=subprocess.PIPE, text=True, check=True,
                               env=dict(os.environ, TZ='UTC'))
    found = re.findall(r'(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC', completed.stdout)
    moments = [datetime.datetime.strptime(text, '%Y-%m-%d %H:%M:%S') for text in found]
    return [m for m in moments if m.year == YEAR]


def cron_field_matches(field, value):
    for piece in field.split(','):
        if piece == '*':
            return True
        low, dummy, high = piece.partition('-')
        if int(low) <= value <= int(high or low):
            return True
    return False


def cron_fires(fields, weekday, moment):
    minute, hour, dom, month, dow = fields
    dow_value = moment.isoweekday() % 7
    return (cron_field_matches(minute, moment.minute) and cron_field_matches(hour, moment.hour)
            and cron_field_matches(dom, moment.day) and cron_field_matches(month, moment.month)
            and cron_field_matches(dow, dow_value) and (weekday is None or moment.isoweekday() == weekday))


# --- systemd ------------------------------------------------------------------------------------

def test_systemd_units_pass_verify_and_fire_when_the_awx_schedules_do(tmp_path):
    run = run_tasks([role(tmp_path, schedule_backend='systemd')])
    assert run.rc == 0, run.stderr
    units = tmp_path / 'units'
    names = sorted(os.listdir(units))
    assert names == sorted('engineroom-%s.%s' % (n, kind) for n in ('daily', 'weekly', 'monthly', 'quarterly')
                           for kind in ('service', 'timer'))
    assert run.result('Verify the units with systemd-analyze')['rc'] == 0
    verify = subprocess.run(['systemd-analyze', 'verify'] + [str(units / n) for n in names],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert verify.returncode == 0 and not verify.stdout.strip(), verify.stdout

    timer = (units / 'engineroom-monthly.timer').read_text()
    assert 'Persistent=true' in timer and 'RandomizedDelaySec=900' in timer
    assert 'Unit=engineroom-monthly.service' in timer
    service = (units / 'engineroom-monthly.service').read_text()
    assert 'ExecStart=%s monthly engineroom.maintenance.monthly\n' % (tmp_path / 'bin' / 'engineroom-schedule-run') in service
    assert 'StandardOutput=journal' in service and 'SyslogIdentifier=engineroom-monthly' in service
    assert 'Type=oneshot' in service

    for entry in awx_calendar():
        timer = (units / ('engineroom-%s.timer' % entry['name'])).read_text()
        expression = re.search(r'^OnCalendar=(.*)$', timer, re.M).group(1)
        fired = systemd_elapses(expression)
        start, days = datetime.datetime(YEAR, 1, 1), 365
        expected = [moment for moment in (start + datetime.timedelta(days=d, hours=h) for d in range(days) for h in range(24))
                    if rrule_matches(entry['rrule'], entry['at'], moment)]
        assert fired == expected, entry['name']
        service = (units / ('engineroom-%s.service' % entry['name'])).read_text()
        playbook = os.path.splitext(os.path.basename(entry['playbook']))[0]
        assert ' engineroom.maintenance.%s\n' % playbook in service


def test_second_run_changes_nothing_and_absent_removes_everything(tmp_path):
    assert run_tasks([role(tmp_path, schedule_backend='systemd')]).rc == 0
    again = run_tasks([role(tmp_path, schedule_backend='systemd')])
    assert again.rc == 0 and changed(again) == []
    gone = run_tasks([role(tmp_path, schedule_backend='systemd', schedule_state='absent')])
    assert gone.rc == 0
    assert os.listdir(tmp_path / 'units') == []
    assert not os.path.exists(tmp_path / 'bin' / 'engineroom-schedule-run')


def test_auto_picks_cron_where_systemd_is_not_running_and_a_switch_removes_the_timers(tmp_path):
    if os.path.isdir('/run/systemd/system'):
        pytest.skip('systemd runs here: auto would choose timers')
    assert run_tasks([role(tmp_path, schedule_backend='systemd')]).rc == 0
    run = run_tasks([role(tmp_path)])
    assert run.rc == 0, run.stderr
    assert os.listdir(tmp_path / 'units') == []                    # no double runs after a switch
    assert 'cron.d' in run.result('Report the schedule')['msg']


# --- cron.d -------------------------------------------------------------------------------------

def test_cron_lines_fire_when_the_awx_schedules_do(tmp_path):
    run = run_tasks([role(tmp_path, schedule_backend='cron')])
    assert run.rc == 0, run.stderr
    text = (tmp_path / 'cron.d' / 'engineroom').read_text()
    runner = str(tmp_path / 'bin' / 'engineroom-schedule-run')
    lines = {}
    for line in text.splitlines():
        if runner in line:
            fields = line.split()
            args = fields[fields.index(runner) + 1:]
            assert fields[5] == 'root' and args[2] == '900'
            lines[args[0]] = (fields[:5], int(args[3]) if len(args) > 3 else None, args[1])
    assert sorted(lines) == ['daily', 'monthly', 'quarterly', 'weekly']
    for entry in awx_calendar():
        cron, weekday, playbook = lines[entry['name']]
        assert playbook == 'engineroom.maintenance.' + os.path.splitext(os.path.basename(entry['playbook']))[0]
        for hour in range(365 * 24):
            moment = datetime.datetime(YEAR, 1, 1) + datetime.timedelta(hours=hour)
            assert cron_fires(cron, weekday, moment) == rrule_matches(entry['rrule'], entry['at'], moment), \
                (entry['name'], moment)


def write_playbook(tmp_path):
    marker = tmp_path / 'ran.txt'
    playbook = tmp_path / 'tiny.yml'
    playbook.write_text(yaml.safe_dump([dict(hosts='localhost', gather_facts=False, tasks=[
        {'ansible.builtin.copy': dict(dest=str(marker), content='{{ maintenance_reason }}\n')}])]))
    return playbook, marker


def run_runner(tmp_path, *args, timeout=120):
    return subprocess.run([str(tmp_path / 'bin' / 'engineroom-schedule-run')] + list(args), cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
                          env=dict(os.environ, PATH='/usr/bin:/bin'))


def test_runner_runs_the_playbook_and_never_overlaps(tmp_path):
    assert run_tasks([role(tmp_path, schedule_backend='cron', schedule_lock_wait_s=2)]).rc == 0
    playbook, marker = write_playbook(tmp_path)

    done = run_runner(tmp_path, 'daily', str(playbook))
    assert done.returncode == 0, done.stdout
    assert marker.read_text() == 'schedule: daily\n'
    assert 'engineroom-daily: running' in done.stdout and 'finished with exit code 0' in done.stdout

    marker.unlink()
    holder = subprocess.Popen(['flock', str(tmp_path / 'calendar.lock'), 'sleep', '30'])
    try:
        time.sleep(0.5)
        started = time.monotonic()
        skipped = run_runner(tmp_path, 'weekly', str(playbook))
        assert skipped.returncode == 75, skipped.stdout
        assert 1.5 < time.monotonic() - started < 20
        assert 'another calendar run held' in skipped.stdout
        assert not marker.exists()
    finally:
        holder.kill()
        holder.wait()


def test_runner_weekday_guard_and_random_delay(tmp_path):
    assert run_tasks([role(tmp_path, schedule_backend='cron')]).rc == 0
    playbook, marker = write_playbook(tmp_path)
    other_day = datetime.datetime.now().isoweekday() % 7 + 1
    guarded = run_runner(tmp_path, 'monthly', str(playbook), '0', str(other_day))
    assert guarded.returncode == 0 and guarded.stdout == '' and not marker.exists()
    started = time.monotonic()
    delayed = run_runner(tmp_path, 'monthly', str(playbook), '2', str(datetime.datetime.now().isoweekday()))
    assert delayed.returncode == 0, delayed.stdout
    assert marker.read_text() == 'schedule: monthly\n'
    assert time.monotonic() - started < 60


def test_bad_entry_fails_with_a_message_and_writes_nothing(tmp_path):
    bad = [dict(name='daily run', playbook='engineroom.maintenance.daily', on_calendar='daily', cron='0 2 * *')]
    run = run_tasks([dict(role(tmp_path, schedule_backend='systemd', schedule_entries=bad), ignore_errors=True)])
    failed = [t for t in run.tasks if t.get('failed')]
    assert failed and 'every entry needs a name' in failed[0]['results'][0]['msg']
    assert os.listdir(tmp_path / 'units') == []

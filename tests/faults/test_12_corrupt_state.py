"""Case 12: corrupted state files - the lock file, the incremental-scan cursors, a maintenance.jsonl line.

Each is reported in words that name the file, the problem and the next step;
none makes a module crash (no traceback, no "MODULE FAILURE") or stops a
playbook without saying why.
"""

from __future__ import annotations

import json
import os

from tests.harness import faults, faults_db, faults_fs

TORN_LOCK = b'{"schema_version": 1, "owner": "weekly", "started_at": "2026-11-'


def no_crash(run):
    """No task of the run crashed: every failure carries a message of the collection, not a traceback."""
    for task in run.tasks:
        text = json.dumps(dict((key, task.get(key)) for key in ('msg', 'module_stdout', 'module_stderr', 'exception')))
        assert 'MODULE FAILURE' not in text and 'Traceback (most recent call last)' not in text, task['_task']


def test_12a_corrupt_lock_file(sandbox, reliability):
    reliability.describe(
        '12a-corrupt-lock-file',
        'state/maintenance.json holds a torn record (cut mid-way) when daily.yml and weekly.yml run',
        'daily\'s health check reports it (file, cause, how to remove it); weekly refuses to enter the window and says '
        'why; nothing changes (lock bytes, role settings) until maintenance_off.yml with force removes it')
    box = sandbox
    lock = os.path.join(box.root, 'state', 'maintenance.json')
    with open(lock, 'wb') as handle:
        handle.write(TORN_LOCK)
    roles_before = faults_db.role_config(box.cluster, 'app')
    before = faults_fs.file_tree(os.path.join(box.root, 'uploads'), os.path.join(box.root, 'backups'))
    steady = dict(health_check_probes=faults.steady_probes(box))

    daily = box.play('daily.yml', extra_vars=steady)
    no_crash(daily)
    probe = [p for p in daily.result('Probe the host\'s services')['probes'] if p['name'] == 'maintenance'][0]
    assert probe['status'] == 'unhealthy'
    assert probe['message'].startswith('lock file %s is not a JSON lock record' % lock)
    assert 'maintenance_lock with state=absent and force=true removes it' in probe['message']
    # The health gate fails the day on an unhealthy host and says why, but only after the day's snapshot:
    # a corrupt lock costs no backup.
    assert daily.rc == 2
    gate = daily.result('Fail when the host is at least unhealthy')
    assert gate['failed'] and 'maintenance:' in gate['msg'] or 'unhealthy' in gate['msg']
    snapshot = [t for t in daily.tasks if 'Take the database snapshot of the slot' in t['_task']][0]
    assert snapshot['snapshot']['status'] == 'written'

    weekly = box.play('weekly.yml', extra_vars=steady)
    no_crash(weekly)
    assert weekly.rc == 2
    enter = weekly.result('Take the maintenance lock')
    assert enter['failed'] and enter['msg'].startswith('lock file %s is not a JSON lock record' % lock)
    assert enter['msg'].endswith('inspect it, then remove it or rerun with force: true to replace it (nothing was changed)')
    leave = weekly.result('Release the maintenance lock')  # always: ran, and refused the same way
    assert leave['failed'] and 'is not a JSON lock record' in leave['msg']
    assert not any('full_archive' in t['_task'] and t.get('changed') for t in weekly.tasks)
    with open(lock, 'rb') as handle:
        assert handle.read() == TORN_LOCK
    assert faults_db.role_config(box.cluster, 'app') == roles_before
    logged = [e for e in faults.log_events(box, 'task', status='failed') if e['task'].endswith('Take the maintenance lock')]
    assert logged and logged[0]['msg'] == enter['msg']

    # The way out the messages name.
    off = box.play('maintenance_off.yml', extra_vars=dict(steady, maintenance_owner='weekly',
                                                          maintenance_window_force=True))
    no_crash(off)
    assert off.rc == 0, off.stderr[-2000:]
    released = off.result('Release the maintenance lock')
    assert released['summary'] == 'maintenance off: corrupt lock file %s removed by force' % lock
    assert not os.path.exists(lock)

    after = faults_fs.file_tree(os.path.join(box.root, 'uploads'), os.path.join(box.root, 'backups'))
    reliability.data_lost_bytes = faults_fs.lost_bytes(before, after)
    reliability.observed = (
        'daily: maintenance probe unhealthy "%s" and the health gate failed the day after its snapshot was written (exit 2); weekly: '
        'enter refused "...is not a JSON lock record (...): inspect it, then remove it or rerun with force: true to '
        'replace it (nothing was changed)", always: exit refused the same way, lock bytes and role settings '
        'unchanged; maintenance_off.yml with force removed it; no traceback anywhere'
        % probe['message'].split(' (')[0].replace(box.root, '<sandbox>'))
    assert reliability.data_lost_bytes == 0


def test_12b_corrupt_scan_state(sandbox, reliability):
    reliability.describe(
        '12b-corrupt-scan-state',
        'state/log_rotation_check.json (the incremental-scan cursors) cut in half, as a torn write leaves it, '
        'between two daily.yml runs',
        'the log review reports the state file as corrupt and rebuilt, scans the logs from the start, and the run '
        'completes; the rebuilt file is valid again')
    box = sandbox
    state = os.path.join(box.root, 'state', 'log_rotation_check.json')
    first = box.play('daily.yml', extra_vars=dict(health_check_probes=faults.steady_probes(box)))
    assert first.rc == 0, first.stderr[-2000:]
    full_scan = first.result('Audit the logs, find ghost handles, review errors')['metrics']['bytes_scanned']
    faults_fs.tear_in_half(state)  # as a crash during a non-atomic write would leave it
    before = faults_fs.file_tree(os.path.join(box.root, 'logs'), os.path.join(box.root, 'uploads'))

    run = box.play('daily.yml', extra_vars=dict(health_check_probes=faults.steady_probes(box)))
    no_crash(run)
    assert run.rc == 0, run.stderr[-2000:]
    audit = run.result('Audit the logs, find ghost handles, review errors')
    assert audit['state']['status'] == 'rebuilt'
    notes = ' '.join(audit['notes'])
    assert state in notes and 'corrupt' in notes
    assert audit['metrics']['bytes_scanned'] == full_scan  # read from the start again: no error goes unreviewed
    with open(state) as handle:
        json.load(handle)
    event = [e for e in faults.log_events(box, 'task') if e['task'].endswith('Audit the logs, find ghost handles, '
                                                                             'review errors')][-1]
    assert event['status'] == 'ok'

    reliability.data_lost_bytes = faults_fs.lost_bytes(before, faults_fs.file_tree(os.path.join(box.root, 'logs'),
                                                                                   os.path.join(box.root, 'uploads')))
    reliability.observed = 'state %s; note: "%s"; the logs were read from the start again (%d bytes), the run passed' % (
        audit['state']['status'], notes.replace(box.root, '<sandbox>')[:200], full_scan)
    assert reliability.data_lost_bytes == 0


def test_12c_corrupt_maintenance_log_line(sandbox, reliability):
    reliability.describe(
        '12c-corrupt-maintenance-log-line',
        'a torn last line (no newline) and a garbage line in maintenance.jsonl before the next daily.yml and '
        'report.yml',
        'the next run is recorded in full (its records not glued to the torn line); report.yml renders the report, '
        'names the unreadable lines and warns; no playbook fails')
    box = sandbox
    steady = dict(health_check_probes=faults.steady_probes(box))
    first = box.play('daily.yml', extra_vars=steady)
    assert first.rc == 0, first.stderr[-2000:]
    jsonl = os.path.join(box.maintenance_log_dir, 'maintenance.jsonl')
    with open(jsonl, 'ab') as handle:
        handle.write(b'this line is not JSON\n{"schema_version": 1, "event": "task", "host": "localh')
    with open(jsonl, 'rb') as handle:
        good_before = handle.read().rsplit(b'\n', 2)[0]  # the first run's records

    second = box.play('daily.yml', extra_vars=steady)
    assert second.rc == 0, second.stderr[-2000:]
    with open(jsonl, 'rb') as handle:
        data = handle.read()
    assert data.startswith(good_before)
    starts = faults.log_events(box, 'run_start')
    ends = faults.log_events(box, 'run_end')
    assert len(starts) == 2 and len(ends) == 2, 'the second run lost a record to the torn line'
    assert ends[1]['run_id'] == starts[1]['run_id'] and ends[1]['status'] in ('ok', 'changed')

    report = box.play('report.yml', extra_vars=dict(maintenance_report_log_dir=box.maintenance_log_dir))
    no_crash(report)
    assert report.rc == 0, report.stderr[-2000:]
    rendered = report.result('Render the HTML report from the maintenance log')
    assert rendered['summary'].endswith('2 unreadable lines skipped')
    reasons = [s['reason'] for s in rendered['skipped_lines']]
    assert len(reasons) == 2 and all(r.startswith('not valid JSON') for r in reasons)
    torn_at = good_before.count(b'\n') + 3  # the first run's lines, the garbage line, then the torn one
    assert [s['where'] for s in rendered['skipped_lines']] == [
        'maintenance.jsonl line %d' % (torn_at - 1), 'maintenance.jsonl line %d' % torn_at]
    assert sum('maintenance log maintenance.jsonl line' in w for w in rendered.get('warnings', [])) == 2
    with open(rendered['dest']) as handle:
        html = handle.read()
    assert '2 lines of the history could not be read and were skipped' in html
    assert rendered['metrics']['runs'] >= 2

    reliability.data_lost_bytes = 0 if data.startswith(good_before) else len(good_before)
    reliability.observed = (
        'the next daily run was recorded whole (2 run_start, 2 run_end; before a fix of the log writer its first '
        'record was glued to the torn line and lost); report.yml rendered the report with "%s" '
        'and warned for each line (file and line number, why: not valid JSON)' % rendered['summary'].split(': ')[-1])
    assert reliability.data_lost_bytes == 0

"""The maintenance_log callback through real ansible-playbook runs.

Each test runs real playbooks with the callback enabled and asserts on the
files it wrote (JSON Lines and Markdown) and on the run's own outcome as the
json stdout callback saw it, never only on "it did not fail".
"""

from __future__ import annotations

import glob
import os
import subprocess

import pytest

from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env
from tests.harness.ports import free_port
from tests.integration.maintenance_log.conftest import (
    CALLBACK,
    SECRET,
    local_inventory,
    read_events,
    run_logged,
    write_yaml,
)

PROBE = 'engineroom.maintenance.health_probe'


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    """One ansible-playbook call with two playbooks: every status, no_log tasks and a secret extra var."""
    directory = str(tmp_path_factory.mktemp('recorded'))
    log_dir = os.path.join(directory, 'log')
    inventory = local_inventory(directory, 'unreach ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=%d '
                                           'ansible_user=nobody\n' % free_port())
    # ansible-playbook stops before the next playbook once a host failed or was unreachable,
    # so the first playbook only succeeds (an ignored failure included) and the second breaks.
    first = write_yaml(directory, 'first.yml', [dict(name='Every status', hosts='localhost', gather_facts=False, tasks=[
        {'name': 'Say hello', 'ansible.builtin.debug': {'msg': 'hello'}},
        {'name': 'Change something', 'ansible.builtin.command': {'argv': ['true']}},
        {'name': 'Never runs', 'ansible.builtin.debug': {'msg': 'no'}, 'when': False},
        {'name': 'Probe with a password', PROBE: {'fail_on': 'never', 'probes': [
            {'name': 'scratch', 'kind': 'disk', 'path': [directory]},
            {'name': 'cache', 'kind': 'redis', 'login_port': free_port(), 'login_password': '{{ db_password }}'}]}},
        {'name': 'Secret command', 'ansible.builtin.command': {'argv': ['echo', '{{ db_password }}']}, 'no_log': True},
        {'name': 'Secret failure', 'ansible.builtin.fail': {'msg': 'bad {{ db_password }}'}, 'no_log': True,
         'ignore_errors': True},
    ])])
    second = write_yaml(directory, 'second.yml', [dict(name='Break', hosts='all', gather_facts=False, tasks=[
        {'name': 'Reach every host', 'ansible.builtin.command': {'argv': ['true']}},
        {'name': 'Break on purpose', 'ansible.builtin.command': {'argv': ['ls', '/no/such/dir-for-maintenance-log']}},
    ])])
    run = run_logged([first, second], log_dir, inventory, extra_vars=['db_password=%s' % SECRET])
    return dict(run=run, log_dir=log_dir, events=read_events(log_dir), first=first, second=second)


def tasks_of(events):
    return dict(((e['host'], e['task']), e) for e in events if e['event'] == 'task')


def test_every_status_is_recorded_including_unreachable(recorded):
    run, events = recorded['run'], recorded['events']
    assert run.rc != 0  # the second playbook failed on purpose
    tasks = tasks_of(events)
    recorded_statuses = dict((key, e['status']) for key, e in tasks.items())
    # exactly what the run itself saw; a failure that ignore_errors or a rescue dealt with says so
    assert recorded_statuses == dict((key, 'ignored' if (status == 'failed' and key == ('localhost', 'Secret failure'))
                                      else status) for key, status in run.statuses().items())
    assert recorded_statuses[('localhost', 'Say hello')] == 'ok'
    assert recorded_statuses[('localhost', 'Change something')] == 'changed'
    assert recorded_statuses[('localhost', 'Never runs')] == 'skipped'
    assert recorded_statuses[('unreach', 'Reach every host')] == 'unreachable'
    assert recorded_statuses[('localhost', 'Break on purpose')] == 'failed'
    assert recorded_statuses[('localhost', 'Secret failure')] == 'ignored'
    unreachable = tasks[('unreach', 'Reach every host')]
    assert 'Connection refused' in unreachable['msg'] or 'connect' in unreachable['msg']
    broken = tasks[('localhost', 'Break on purpose')]
    assert broken['module'] == 'ansible.builtin.command'
    assert 'rc 2' in broken['msg'] and 'No such file or directory' in broken['msg']
    assert all(e['duration_ms'] is not None and e['duration_ms'] >= 0 for e in tasks.values())


def test_two_playbooks_in_one_call_are_two_runs_of_valid_jsonl(recorded):
    events, run = recorded['events'], recorded['run']
    kinds = [(e['event'], e.get('playbook')) for e in events if e['event'] != 'task']
    assert kinds == [('run_start', recorded['first']), ('run_end', recorded['first']),
                     ('run_start', recorded['second']), ('run_end', recorded['second'])]
    assert len(set(e['invocation_id'] for e in events if 'invocation_id' in e)) == 1
    first_id, second_id = events[0]['run_id'], events[-1]['run_id']
    assert first_id != second_id
    assert all(e['schema_version'] == 2 and e['time'].endswith('Z') for e in events)
    start = events[0]
    assert start['extra_vars'] == ['db_password'] and start['ansible_version'].startswith('2.19')
    assert start['user'] and start['controller'] and start['inventory'][0].endswith('inventory.ini')
    assert start['awx_job_id'] is None and start['check_mode'] is False
    first_end = [e for e in events if e['event'] == 'run_end'][0]
    assert first_end['status'] == 'changed'
    assert first_end['hosts'] == {'localhost': dict(ok=5, changed=2, failures=0, unreachable=0, skipped=1, rescued=0,
                                                    ignored=1, status='changed')}
    end = events[-1]
    assert end['status'] == 'unreachable'
    assert end['hosts']['localhost'] == dict(ok=1, changed=1, failures=1, unreachable=0, skipped=0, rescued=0,
                                             ignored=0, status='failed')
    assert end['hosts']['unreach']['status'] == 'unreachable' and end['hosts']['unreach']['unreachable'] == 1
    recap = run.report['stats']  # the call's totals are the sum of its runs
    for key in ('ok', 'changed', 'failures', 'skipped', 'ignored'):
        assert first_end['hosts']['localhost'][key] + end['hosts']['localhost'][key] == recap['localhost'][key]
    for task in (e for e in events if e['event'] == 'task'):
        assert task['run_id'] == (first_id if task['task'] != 'Reach every host' and task['task'] != 'Break on purpose'
                                  else second_id)


def test_module_summary_metrics_and_lists_are_logged_as_returned(recorded):
    probe = tasks_of(recorded['events'])[('localhost', 'Probe with a password')]
    returned = [t for p in recorded['run'].report['plays'] for t in p['tasks']
                if t['task']['name'] == 'Probe with a password'][0]['hosts']['localhost']
    assert probe['module'] == PROBE
    assert probe['summary'] == returned['summary']
    assert probe['metrics'] == returned['metrics']
    assert probe['result_status'] == 'unhealthy'
    probes = dict((p['name'], p) for p in probe['items']['probes'])
    assert probes['scratch']['status'] == 'healthy' and probes['cache']['status'] == 'unhealthy'
    disk = [v for k, v in probes['scratch']['metrics'].items() if k.endswith(' used_pct')]
    assert disk == [returned['probes'][0]['details']['paths'][0]['used_pct']]
    # a task of another module: module, status and msg, generically
    hello = tasks_of(recorded['events'])[('localhost', 'Say hello')]
    assert hello['msg'] == 'hello' and 'summary' not in hello


def test_no_log_and_secret_values_never_reach_the_files(recorded):
    files = [p for p in glob.glob(os.path.join(recorded['log_dir'], '*')) + glob.glob(
        os.path.join(recorded['log_dir'], '.*')) if os.path.isfile(p)]
    assert {os.path.basename(p) for p in files} >= {'maintenance.jsonl', 'MAINTENANCE_LOG.md'}
    for path in files:
        with open(path, 'rb') as handle:
            assert SECRET.encode() not in handle.read(), path
    tasks = tasks_of(recorded['events'])
    for name in ('Secret command', 'Secret failure'):
        hidden = tasks[('localhost', name)]
        assert hidden['no_log'] is True
        assert set(hidden) <= {'schema_version', 'event', 'run_id', 'time', 'host', 'play', 'task', 'module',
                               'status', 'duration_ms', 'ignored', 'no_log'}


def test_markdown_sections_list_failures_first_in_operator_language(recorded):
    with open(os.path.join(recorded['log_dir'], 'MAINTENANCE_LOG.md'), encoding='utf-8') as handle:
        text = handle.read()
    assert text.startswith('# Maintenance log\n')
    headings = [line for line in text.splitlines() if line.startswith('## ')]
    assert len(headings) == 2
    assert headings[0].endswith(' — first.yml: changed') and headings[1].endswith(' — second.yml: unreachable')
    first, second = text.split('\n## ')[1:]
    assert recorded['events'][0]['run_id'] in first and '- hosts: localhost changed' in first
    localhost = first.split('### localhost: changed\n\n')[1].split('\n\n')[0].splitlines()
    assert localhost[0] == '- **IGNORED** Secret failure (ansible.builtin.fail): output hidden by no_log'
    probe = tasks_of(recorded['events'])[('localhost', 'Probe with a password')]
    assert localhost[1:4] == ['- Change something (ansible.builtin.command): changed', '- %s' % probe['summary'],
                              '- Secret command (ansible.builtin.command): changed (output hidden by no_log)']
    assert localhost[-1] == '- 5 ok, 2 changed, 0 failed, 0 unreachable, 1 skipped, 0 rescued, 1 ignored'
    assert '- hosts: unreach unreachable, localhost failed' in second
    failed = second.split('### localhost: failed\n\n')[1].splitlines()
    assert failed[0].startswith('- **FAILED** Break on purpose (ansible.builtin.command): non-zero return code: rc 2: ')
    assert '### unreach: unreachable\n\n- **UNREACHABLE** Reach every host (ansible.builtin.command): ' in second


@pytest.mark.parametrize('problem', ['file-in-the-way', 'negative-max-bytes', 'max-bytes-not-a-number'])
def test_unusable_log_dir_or_options_warn_and_leave_the_run_alone(workdir, problem):
    blocker = os.path.join(workdir, 'not-a-dir')
    with open(blocker, 'w') as handle:
        handle.write('a file where the log directory should be\n')
    playbook = write_yaml(workdir, 'play.yml', [dict(name='Plain', hosts='localhost', gather_facts=False, tasks=[
        {'name': 'Change something', 'ansible.builtin.command': {'argv': ['true']}},
        {'name': 'Fail on purpose', 'ansible.builtin.fail': {'msg': 'expected'}, 'ignore_errors': True},
        {'name': 'After', 'ansible.builtin.debug': {'msg': 'still running'}},
    ])])
    cases = {
        'file-in-the-way': (os.path.join(blocker, 'log'), {}, [
            'engineroom.maintenance.maintenance_log: this run is not recorded in %s/log: ' % blocker,
            'cannot create the directory: Not a directory', 'The playbook itself is not affected']),
        'negative-max-bytes': (os.path.join(workdir, 'log'), {'ENGINEROOM_MAINTENANCE_LOG_MAX_BYTES': '-1'}, [
            'this run is not recorded in', 'max_bytes must not be negative (got -1)']),
        # ansible-core itself refuses a callback whose option does not parse, and runs on without it
        'max-bytes-not-a-number': (os.path.join(workdir, 'log'), {'ENGINEROOM_MAINTENANCE_LOG_MAX_BYTES': '10MB'}, [
            "Failed to load callback plugin 'engineroom.maintenance.maintenance_log'",
            "ENGINEROOM_MAINTENANCE_LOG_MAX_BYTES' has an invalid value"]),
    }
    log_dir, env, expected = cases[problem]
    baseline = run_logged([playbook], callback=False)
    logged = run_logged([playbook], log_dir, env=env)
    assert logged.rc == baseline.rc == 0
    assert logged.statuses() == baseline.statuses()
    assert logged.report['stats'] == baseline.report['stats']
    warning = ' '.join(logged.stderr.split())
    for fragment in expected:
        assert fragment in warning
    assert warning.count('[WARNING]') == 1
    assert not os.path.exists(os.path.join(log_dir, 'maintenance.jsonl'))


def test_concurrent_runs_append_whole_lines_and_rotation_keeps_keep(workdir):
    log_dir = os.path.join(workdir, 'log')
    tasks = [{'name': 'Step %02d' % n, 'ansible.builtin.debug': {'msg': 'step %d %s' % (n, 'x' * 60)}}
             for n in range(40)]
    playbook = write_yaml(workdir, 'many.yml', [dict(name='Many', hosts='localhost', gather_facts=False,
                                                     tasks=tasks)])
    env = {'ENGINEROOM_MAINTENANCE_LOG_MAX_BYTES': '6000', 'ENGINEROOM_MAINTENANCE_LOG_KEEP': '100'}
    processes = [run_logged_async(playbook, log_dir, env) for _run in range(3)]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()[-2000:]
    events = read_events(log_dir)  # fails on any torn or interleaved line
    assert len([e for e in events if e['event'] == 'task']) == 3 * 40
    runs = set(e['run_id'] for e in events)
    assert len(runs) == 3
    for run_id in runs:  # each run's events in order, whatever the other runs appended in between
        kinds = [e['event'] for e in events if e['run_id'] == run_id]
        assert kinds[0] == 'run_start' and kinds[-1] == 'run_end' and kinds.count('task') == 40
    rotated = glob.glob(os.path.join(log_dir, 'maintenance.jsonl.*'))
    assert len(rotated) >= 3
    assert all(os.path.getsize(p) <= 6000 for p in rotated + [os.path.join(log_dir, 'maintenance.jsonl')])
    markdown = ''.join(open(p, encoding='utf-8').read() for p in glob.glob(os.path.join(log_dir, 'MAINTENANCE_LOG.md*')))
    assert markdown.count('\n## ') == 3

    # the same log with keep=2: the next rotation drops everything older than .2
    run = run_logged([playbook], log_dir, env=dict(env, ENGINEROOM_MAINTENANCE_LOG_KEEP='2'))
    assert run.rc == 0
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(log_dir, 'maintenance.jsonl*')))
    assert names == ['maintenance.jsonl', 'maintenance.jsonl.1', 'maintenance.jsonl.2']
    assert read_events(log_dir)[-1]['event'] == 'run_end'


def run_logged_async(playbook, log_dir, env):
    settings = dict(env, ANSIBLE_CALLBACKS_ENABLED=CALLBACK,
                    ENGINEROOM_MAINTENANCE_LOG_DIR=log_dir)
    return subprocess.Popen([os.path.join(BIN_DIR, 'ansible-playbook'), playbook, '-i',
                             os.path.join(REPO_ROOT, 'inventories', 'local')],
                            cwd=REPO_ROOT, env=ansible_env(settings), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

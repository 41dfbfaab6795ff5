"""Every ending of a run, told truly: strict JSON, rescued and ignored as ansible counts them,
fatal errors and killed runs closed in both files, failure reasons from every place ansible puts them.

Real ansible-playbook runs (issue: "The maintenance log tells the truth in every ending").
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env
from tests.integration.maintenance_log.conftest import (
    CALLBACK,
    local_inventory,
    read_events,
    run_logged,
    strict_events,
    write_yaml,
)

ENDED = 'ended without a summary (killed or fatal error)'


def markdown(log_dir):
    with open(os.path.join(log_dir, 'MAINTENANCE_LOG.md'), encoding='utf-8') as handle:
        return handle.read()


@pytest.fixture(scope='module')
def endings(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('endings'))
    log_dir = os.path.join(directory, 'log')
    inventory = local_inventory(directory)
    playbook = write_yaml(directory, 'endings.yml', [dict(name='Endings', hosts='localhost', gather_facts=False, vars=dict(
        metrics={'ratio': "{{ 'nan' | float }}", 'peak': "{{ 'inf' | float }}", 'used_pct': 12.5}), tasks=[
        {'name': 'Non-finite metrics', 'ansible.builtin.debug': {'var': 'metrics'}},
        {'name': 'Guarded', 'block': [
            {'name': 'Fails inside a block', 'ansible.builtin.command': {'argv': ['ls', '/no/such/dir-rescued']}},
        ], 'rescue': [{'name': 'Recover', 'ansible.builtin.debug': {'msg': 'recovered'}}]},
        {'name': 'Include that is missing', 'block': [
            {'name': 'Missing include', 'ansible.builtin.include_tasks': 'no-such-file.yml'},
        ], 'rescue': [{'name': 'Recover the include', 'ansible.builtin.debug': {'msg': 'ok'}}]},
        {'name': 'Ignored failure', 'ansible.builtin.fail': {'msg': 'ignore me please'}, 'ignore_errors': True},
        {'name': 'Broken failed_when', 'ansible.builtin.command': {'argv': ['true']},
         'failed_when': 'undefined_thing_for_the_log.attr', 'ignore_errors': True},
        {'name': 'Loop with a failing item', 'ansible.builtin.command': {'argv': ['ls', '{{ item }}']},
         'loop': ['/', '/no/such/item-dir'], 'ignore_errors': True},
    ])])
    run = run_logged([playbook], log_dir, inventory)
    return dict(run=run, log_dir=log_dir, directory=directory, inventory=inventory)


def test_every_line_is_strict_json_and_non_finite_numbers_are_listed(endings):
    lines = strict_events(endings['log_dir'])
    task = [e for e in lines if e.get('task') == 'Non-finite metrics'][0]
    assert task['metrics'] == dict(ratio=None, peak=None, used_pct=12.5)
    assert task['non_finite'] == ['metrics.ratio', 'metrics.peak']


def test_rescued_and_ignored_match_ansibles_recap(endings):
    run, events = endings['run'], read_events(endings['log_dir'])
    tasks = dict((e['task'], e) for e in events if e['event'] == 'task' and e['status'] != 'ok')
    assert tasks['Fails inside a block']['status'] == 'rescued'
    # ansible counts a missing include as a failure even inside a block with a rescue: so does the log
    assert tasks['Missing include']['status'] == 'failed'
    for name in ('Ignored failure', 'Broken failed_when', 'Loop with a failing item'):
        assert tasks[name]['status'] == 'ignored', name
    recap = run.report['stats']['localhost']
    end = [e for e in events if e['event'] == 'run_end'][0]
    statuses = [e['status'] for e in events if e['event'] == 'task']
    assert recap['rescued'] == statuses.count('rescued') == end['hosts']['localhost']['rescued'] == 1
    assert recap['ignored'] == statuses.count('ignored') == end['hosts']['localhost']['ignored'] == 3
    assert recap['failures'] == statuses.count('failed') == end['hosts']['localhost']['failures'] == 1
    assert end['status'] == 'failed'
    text = markdown(endings['log_dir'])
    assert ('- %(ok)d ok, %(changed)d changed, 1 failed, 0 unreachable, 0 skipped, 1 rescued, 3 ignored' % recap) in text
    assert text.count('**FAILED**') == 1 and '- **FAILED** Missing include (ansible.builtin.include_tasks): ' in text
    assert '- **RESCUED** Fails inside a block (ansible.builtin.command): ' in text
    assert '- **IGNORED** Ignored failure (ansible.builtin.fail): ignore me please' in text


def test_failure_reasons_come_from_reason_failed_when_exception_and_items(endings):
    tasks = dict((e['task'], e) for e in read_events(endings['log_dir']) if e['event'] == 'task')
    assert "Could not find or access" in tasks['Missing include']['msg']
    assert 'undefined_thing_for_the_log' in tasks['Broken failed_when']['msg']
    assert 'item /no/such/item-dir' in tasks['Loop with a failing item']['msg']
    assert 'No such file or directory' in tasks['Fails inside a block']['msg']
    assert all(e.get('msg') and e['msg'] != 'no message' for e in tasks.values() if e['status'] != 'ok')


def test_report_counts_rescued_and_ignored_apart_from_failures(endings):
    from tests.harness.playbook import run_tasks
    dest = os.path.join(endings['directory'], 'report.html')
    result = run_tasks([{'name': 'report', 'engineroom.maintenance.maintenance_report': dict(
        log_dir=endings['log_dir'], dest=dest)}]).result('report')
    assert result['metrics']['failed_tasks'] == 1
    assert result['metrics']['rescued_tasks'] == 1 and result['metrics']['ignored_tasks'] == 3
    with open(dest, encoding='utf-8') as handle:
        page = handle.read()
    assert '>rescued<' in page and '>ignored<' in page


def test_a_fatal_error_is_closed_at_exit_in_both_files(tmp_path):
    log_dir = str(tmp_path / 'log')
    playbook = write_yaml(str(tmp_path), 'fatal.yml', [dict(name='Fatal', hosts='localhost', gather_facts=False, tasks=[
        {'name': 'Fine', 'ansible.builtin.debug': {'msg': 'fine'}},
        {'name': 'Notify a handler that does not exist', 'ansible.builtin.command': {'argv': ['true']},
         'changed_when': True, 'notify': 'no such handler anywhere'},
    ])])
    run = run_logged([playbook], log_dir, local_inventory(str(tmp_path)))
    assert run.rc != 0
    events = read_events(log_dir)
    end = [e for e in events if e['event'] == 'run_end']
    assert len(end) == 1 and end[0]['status'] == 'ended_without_summary'
    assert end[0]['last_task']['task'] == 'Notify a handler that does not exist'
    assert end[0]['closed_by'] == 'the run itself at its exit'
    text = markdown(log_dir)
    assert 'fatal.yml: %s' % ENDED in text and '- last task: Notify a handler that does not exist' in text


def test_a_killed_run_is_closed_by_the_next_run_and_the_report_leaves_live_runs(tmp_path):
    log_dir = str(tmp_path / 'log')
    inventory = local_inventory(str(tmp_path))
    slow = write_yaml(str(tmp_path), 'slow.yml', [dict(name='Slow', hosts='localhost', gather_facts=False, tasks=[
        {'name': 'Quick first', 'ansible.builtin.debug': {'msg': 'first'}},
        {'name': 'Sleep long', 'ansible.builtin.command': {'argv': ['sleep', '120']}},
    ])])
    env = ansible_env(dict(ANSIBLE_CALLBACKS_ENABLED=CALLBACK, ENGINEROOM_MAINTENANCE_LOG_DIR=log_dir))
    process = subprocess.Popen([os.path.join(BIN_DIR, 'ansible-playbook'), slow, '-i', inventory], cwd=REPO_ROOT,
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if os.path.exists(os.path.join(log_dir, 'maintenance.jsonl')) and any(
                    e.get('task') == 'Quick first' for e in read_events(log_dir)):
                break
            time.sleep(0.3)
        # a report while the run is going leaves it alone
        from tests.harness.playbook import run_tasks
        report = run_tasks([{'name': 'report', 'engineroom.maintenance.maintenance_report': dict(
            log_dir=log_dir, dest=str(tmp_path / 'r.html'))}]).result('report')
        assert report['closed_runs'] == []
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not [e for e in read_events(log_dir) if e['event'] == 'run_end']
    quick = write_yaml(str(tmp_path), 'quick.yml', [dict(name='Quick', hosts='localhost', gather_facts=False, tasks=[
        {'name': 'Hello', 'ansible.builtin.debug': {'msg': 'hello'}}])])
    run_logged([quick], log_dir, inventory)
    ends = [e for e in read_events(log_dir) if e['event'] == 'run_end']
    assert [e['status'] for e in ends] == ['ended_without_summary', 'ok']
    assert ends[0]['last_task']['task'] == 'Quick first' and ends[0]['closed_by'].endswith('at its start')
    text = markdown(log_dir)
    assert text.index('slow.yml: %s' % ENDED) < text.index('quick.yml: ok')

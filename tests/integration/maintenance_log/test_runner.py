"""The callback under ansible-runner, AWX's executor: same records, set_stats in the runner's artifacts."""

from __future__ import annotations

import glob
import json
import os

import pytest

from tests.harness.playbook import BIN_DIR, REPO_ROOT
from tests.integration.maintenance_log.conftest import CALLBACK, read_events

ansible_runner = pytest.importorskip('ansible_runner')


def test_health_check_through_ansible_runner(workdir):
    log_dir = os.path.join(workdir, 'log')
    private = os.path.join(workdir, 'runner')
    os.makedirs(private)
    runner = ansible_runner.run(
        private_data_dir=private, ident='job-1', quiet=True,
        playbook=os.path.join(REPO_ROOT, 'playbooks', 'health_check.yml'),
        inventory=os.path.join(REPO_ROOT, 'inventories', 'local'),
        extravars=dict(health_check_probes=[dict(name='scratch', kind='disk', path=[workdir])], awx_job_id=4242),
        envvars=dict(ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'),
                     ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, 'collections'),
                     ANSIBLE_CALLBACKS_ENABLED=CALLBACK, ENGINEROOM_MAINTENANCE_LOG_DIR=log_dir,
                     PATH=BIN_DIR + os.pathsep + os.environ['PATH']))
    assert (runner.status, runner.rc) == ('successful', 0), runner.stdout.read()[-3000:]

    # the runner's own record of the run: set_stats data in the stats event's artifact_data
    artifacts = os.path.join(private, 'artifacts', 'job-1')
    stats_events = []
    for path in glob.glob(os.path.join(artifacts, 'job_events', '*.json')):
        with open(path) as handle:
            event = json.load(handle)
        if event.get('event') == 'playbook_on_stats':
            stats_events.append(event)
    assert len(stats_events) == 1
    published = stats_events[0]['event_data']['artifact_data']['health_check']['localhost']

    # the maintenance log's record of the same run
    events = read_events(log_dir)
    assert [e['event'] for e in events if e['event'] != 'task'] == ['run_start', 'run_end']
    start, end = events[0], events[-1]
    assert start['playbook'] == os.path.join(REPO_ROOT, 'playbooks', 'health_check.yml')
    assert start['awx_job_id'] == '4242'
    assert set(start['extra_vars']) == {'health_check_probes', 'awx_job_id'}
    probe = [e for e in events if e['event'] == 'task' and e['module'] == 'engineroom.maintenance.health_probe'][0]
    assert probe['status'] == 'ok' and probe['items']['probes'][0]['name'] == 'scratch'
    assert published == dict(status=probe['result_status'], summary=probe['summary'], metrics=probe['metrics'])
    stats_task = [e for e in events if e['event'] == 'task' and e['module'] == 'ansible.builtin.set_stats']
    assert [t['status'] for t in stats_task] == ['ok']
    assert end['status'] == 'ok' and end['hosts']['localhost']['failures'] == 0
    # ... and the runner's event stream agrees on the host's figures
    assert stats_events[0]['event_data']['ok'] == {'localhost': end['hosts']['localhost']['ok']}
    with open(os.path.join(log_dir, 'MAINTENANCE_LOG.md'), encoding='utf-8') as handle:
        assert '- %s\n' % probe['summary'] in handle.read()

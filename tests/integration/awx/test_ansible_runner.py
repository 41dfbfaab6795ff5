"""playbooks/daily.yml through ansible-runner, with a private data dir laid out as AWX lays it out.

AWX runs a job by writing a private data dir (project/ = the SCM checkout,
inventory/hosts, env/extravars with the job's metadata and survey answers,
env/envvars) and calling ansible-runner on it inside the execution environment.
Here the same happens on this machine against a fresh sandbox (PostgreSQL 15
with data, uploads, logs): the project's own ansible.cfg enables the
maintenance_log callback, ANSIBLE_COLLECTIONS_PATH points at the checkout's
collections/ (in an EE the collection is installed in the image instead).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess

import ansible_runner
import pytest

from tests.harness.playbook import BIN_DIR, REPO_ROOT
from tests.harness.sandbox import Sandbox

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import iter_manifests

JOB_ID = 4242


@pytest.fixture
def sandbox(tmp_path):
    os.chmod(tmp_path, 0o755)
    box = Sandbox(str(tmp_path / 'sandbox'))
    box.up()
    yield box
    box.down()


def checkout(dest):
    """What an SCM project update leaves in project/: the files Git knows, none it ignores."""
    listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=REPO_ROOT,
                            check=True, stdout=subprocess.PIPE).stdout.decode().split('\0')
    for name in filter(None, listed):
        source = os.path.join(REPO_ROOT, name)
        if os.path.isfile(source):
            os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(source, os.path.join(dest, name))


def private_data_dir(root, box):
    """project/, inventory/hosts, env/extravars, env/envvars, as AWX's task manager writes them."""
    checkout(os.path.join(root, 'project'))
    with open(box.vars_file) as handle:
        sandbox_vars = json.loads(handle.read().split('\n', 1)[1])
    # 2 CPUs shared by several test runs: the machine's load is not what this test is about.
    for probe in sandbox_vars['health_check_probes']:
        if probe['kind'] == 'load':
            probe.update(degraded_load=1000.0, unhealthy_load=1000.0)
    # The inventory AWX syncs: the host with its variables (here: the sandbox's).
    inventory = dict(all=dict(hosts=dict(localhost=dict(
        sandbox_vars, ansible_connection='local', ansible_python_interpreter=os.path.join(BIN_DIR, 'python')))))
    os.makedirs(os.path.join(root, 'inventory'))
    with open(os.path.join(root, 'inventory', 'hosts'), 'w') as handle:
        json.dump(inventory, handle)
    os.makedirs(os.path.join(root, 'env'))
    # The job's metadata as AWX passes it to every job.
    with open(os.path.join(root, 'env', 'extravars'), 'w') as handle:
        json.dump(dict(awx_job_id=JOB_ID, awx_job_template_name='engineroom daily', awx_user_name='scheduler',
                       tower_job_id=JOB_ID), handle)
    # What AWX_TASK_ENV / a credential injector would put there (docs/awx.md).
    log_dir = os.path.join(root, 'maintenance-log')
    with open(os.path.join(root, 'env', 'envvars'), 'w') as handle:
        json.dump(dict(ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, 'collections'),
                       ENGINEROOM_MAINTENANCE_LOG_DIR=log_dir, JOB_ID=str(JOB_ID)), handle)
    return log_dir


def test_daily_through_ansible_runner_as_awx_runs_it(tmp_path, sandbox):
    root = str(tmp_path / 'awx')
    log_dir = private_data_dir(root, sandbox)
    result = ansible_runner.run(
        private_data_dir=root,
        ident=str(JOB_ID),
        playbook='playbooks/daily.yml',
        inventory=os.path.join(root, 'inventory', 'hosts'),
        # The survey answers of a scheduled launch.
        extravars=dict(maintenance_reason='schedule: daily', engineroom_hosts='all'),
        # The EE's ansible-playbook, and the project's ansible.cfg as AWX finds it (cwd = project/).
        envvars=dict(PATH=BIN_DIR + os.pathsep + os.environ.get('PATH', ''),
                     ANSIBLE_CONFIG=os.path.join(root, 'project', 'ansible.cfg')),
        quiet=True,
    )
    artifacts = os.path.join(root, 'artifacts', str(JOB_ID))
    with open(os.path.join(artifacts, 'stdout')) as handle:
        stdout = handle.read()
    assert (result.rc, result.status) == (0, 'successful'), stdout[-3000:]
    with open(os.path.join(artifacts, 'rc')) as handle:
        assert handle.read().strip() == '0'
    with open(os.path.join(artifacts, 'status')) as handle:
        assert handle.read().strip() == 'successful'

    # job_events/: one JSON file per event, the three roles' modules among them, none failed or unreachable.
    events = []
    for path in glob.glob(os.path.join(artifacts, 'job_events', '*.json')):
        with open(path) as handle:
            events.append(json.load(handle))
    assert len(events) == len(list(result.events))
    roles = {e['event_data'].get('role') for e in events if e['event'] == 'runner_on_ok'}
    assert {'health_check', 'db_snapshot', 'log_oversight'} <= roles
    assert not [e for e in events if e['event'] in ('runner_on_failed', 'runner_on_unreachable')]
    modules = {e['event_data']['resolved_action'] for e in events if e['event'] == 'runner_on_ok'}
    assert {'engineroom.maintenance.health_probe', 'engineroom.maintenance.snapshot_archive',
            'engineroom.maintenance.log_rotation_check', 'ansible.builtin.set_stats'} <= modules

    # The set_stats data: what AWX stores as the job's artifacts.
    stats_event, = [e for e in events if e['event'] == 'playbook_on_stats']
    daily = stats_event['event_data']['artifact_data']['daily']['localhost']
    assert daily['health'].startswith('health healthy:')
    assert daily['snapshot'].startswith('snapshot app-database-') and '(verified)' in daily['snapshot']
    assert daily['logs'].startswith('2 logs, 0 violations')
    assert result.stats['ok']['localhost'] > 0 and result.stats['failures'] == {}

    # The snapshot really exists and is verified.
    manifests = [m for dummy, m in iter_manifests(os.path.join(sandbox.root, 'backups'))]
    assert [m['tier'] for m in manifests] == ['database'] and manifests[0]['verified_at']

    # The maintenance log (the callback, enabled by the project's ansible.cfg) recorded the AWX job.
    with open(os.path.join(log_dir, 'maintenance.jsonl')) as handle:
        records = [json.loads(line) for line in handle]
    start, = [r for r in records if r['event'] == 'run_start']
    assert start['playbook'].endswith('playbooks/daily.yml') and start['awx_job_id'] == str(JOB_ID)
    assert start['user'] == 'scheduler'
    assert {'maintenance_reason', 'engineroom_hosts', 'awx_job_id'} <= set(start['extra_vars'])
    assert 'schedule: daily' not in json.dumps(records)  # extra-var names only, never values
    logged = {(r['module'], r['status']) for r in records if r['event'] == 'task'}
    assert ('engineroom.maintenance.snapshot_archive', 'changed') in logged
    assert ('engineroom.maintenance.health_probe', 'ok') in logged
    end, = [r for r in records if r['event'] == 'run_end']
    assert end['hosts']['localhost']['failures'] == 0 and end['status'] != 'failed'
    with open(os.path.join(log_dir, 'MAINTENANCE_LOG.md')) as handle:
        assert 'daily.yml' in handle.read()

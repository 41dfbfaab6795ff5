"""daily.yml runs container recovery only with container_recovery_enabled, and the maintenance log keeps its summary."""

from __future__ import annotations

import json
import os

from tests.harness.playbook import REPO_ROOT, run_playbook
from tests.integration.container_recover.conftest import RECOVERS_ON_RESTART, check
from tests.harness.faults_process import wait_until


def test_daily_recovers_when_enabled(scene, tmp_path):
    scene.run('flaky', RECOVERS_ON_RESTART, healthcheck=check(['CMD', 'test', '-f', '/tmp/ok']))
    wait_until(lambda: scene.health('flaky') == 'unhealthy', 'the health check to fail')
    env = dict(ENGINEROOM_MAINTENANCE_LOG_DIR=str(tmp_path / 'log'), ANSIBLE_RUN_TAGS='containers')
    variables = dict(container_recovery_labels=[scene.label], container_recovery_wait_s=20,
                     container_recovery_state_file=str(tmp_path / 'budget.json'))
    daily = os.path.join(REPO_ROOT, 'playbooks', 'daily.yml')
    off = run_playbook(daily, extra_vars=variables, env=env)
    started = scene.state('flaky')['StartedAt']
    on = run_playbook(daily, extra_vars=dict(variables, container_recovery_enabled=True), env=env)
    assert off.rc == 0 and on.rc == 0, on.stderr
    assert off.result('Restart the selected containers that need it, within the budget').get('skipped')
    assert started != scene.state('flaky')['StartedAt'] and scene.health('flaky') == 'healthy'
    result = on.result('Restart the selected containers that need it, within the budget')
    assert [c['outcome'] for c in result['containers']] == ['recovered']
    published = on.result("Publish the day's figures for AWX and show_custom_stats")['ansible_stats']['data']
    assert published['daily']['localhost']['containers'] == result['summary']
    with open(str(tmp_path / 'log' / 'maintenance.jsonl')) as handle:
        records = [json.loads(line) for line in handle]
    logged = [r for r in records if r.get('module') == 'engineroom.maintenance.container_recover' and r.get('summary')]
    assert [r['summary'] for r in logged] == [result['summary']]
    assert logged[0]['metrics']['containers_recovered'] == 1

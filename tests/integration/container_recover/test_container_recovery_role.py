"""The container_recovery role: restarts within the budget, prints each container, fails on a container that stays down."""

from __future__ import annotations

from tests.harness.playbook import run_tasks
from tests.integration.container_recover.conftest import RECOVERS_ON_RESTART, check
from tests.harness.faults_process import wait_until


def test_role_recovers_and_fails_on_the_unrecovered(scene, tmp_path):
    scene.run('flaky', RECOVERS_ON_RESTART, healthcheck=check(['CMD', 'test', '-f', '/tmp/ok']))
    scene.run('broken', ['sleep', 'infinity'], healthcheck=check(['CMD', 'false']))
    wait_until(lambda: scene.health('flaky') == scene.health('broken') == 'unhealthy', 'both health checks to fail')
    run = run_tasks([{'name': 'recover', 'ansible.builtin.include_role': {'name': 'engineroom.maintenance.container_recovery'},
                      'vars': {'container_recovery_labels': [scene.label], 'container_recovery_wait_s': 20,
                               'container_recovery_state_file': str(tmp_path / 'budget.json')},
                      'ignore_errors': True}])
    shown = run.result('Show what was done per container')['msg']
    assert any(line.startswith(scene.name('flaky') + ': recovered') for line in shown)
    assert any(line.startswith(scene.name('broken') + ': not_recovered') for line in shown)
    failed = run.result('Fail when a container did not recover')
    assert failed.get('failed') and scene.name('broken') in failed['msg']
    assert scene.health('flaky') == 'healthy'

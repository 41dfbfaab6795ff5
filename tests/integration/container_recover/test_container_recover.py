"""container_recover through real ansible-playbook runs against the real (shared) Docker engine.

Every task selects this run's containers by label, name or Compose project:
the engine is shared with other tests and molecule runs.
"""

from __future__ import annotations

import json
import os

from tests.harness.playbook import run_tasks
from tests.integration.container_recover.conftest import CRASHES_ONCE, RECOVERS_ON_RESTART, check
from tests.harness.faults_process import wait_until

MODULE = 'engineroom.maintenance.container_recover'


def task(name, check_mode=False, **args):
    entry = {'name': name, MODULE: args, 'ignore_errors': True}
    if check_mode:
        entry['check_mode'] = True
    return entry


def by_name(result, scene):
    return dict((c['name'][len(scene.prefix):], c) for c in result['containers'])


def test_restart_within_budget_wait_for_health_and_leave_the_rest(scene, tmp_path):
    scene.run('flaky', RECOVERS_ON_RESTART, healthcheck=check(['CMD', 'test', '-f', '/tmp/ok']))
    scene.run('broken', ['sleep', 'infinity'], healthcheck=check(['CMD', 'false']))
    scene.run('crashy', CRASHES_ONCE)
    scene.run('done', ['true'])
    scene.run('steady', ['sleep', 'infinity'])
    scene.run('foreign', ['sleep', 'infinity'], labels={}, healthcheck=check(['CMD', 'false']))
    wait_until(lambda: all(scene.health(s) == 'unhealthy' for s in ('flaky', 'broken', 'foreign'))
               and scene.state('crashy')['Status'] == 'exited' and scene.state('done')['Status'] == 'exited',
               'the health checks to fail and the short containers to exit')
    foreign_started = scene.state('foreign')['StartedAt']
    state = str(tmp_path / 'budget.json')
    mine = dict(labels=[scene.label], max_restarts=2, window_s=3600, wait_s=20, running_for_s=2, stop_timeout_s=1,
                state_file=state)
    run = run_tasks([task('plan', check_mode=True, **mine), task('first', **mine), task('second', **mine),
                     task('third', **mine)])
    plan, first, second, third = (run.result(n) for n in ('plan', 'first', 'second', 'third'))
    assert run.rc == 0, json.dumps(run.tasks)[-3000:]

    planned = by_name(plan, scene)
    assert sorted(planned) == ['broken', 'crashy', 'done', 'flaky', 'steady']  # the unlabelled one is not selected
    assert dict((k, v['outcome']) for k, v in planned.items()) == dict(
        broken='planned', crashy='planned', done='left_alone', flaky='planned', steady='healthy')
    assert plan['changed'] is True and plan['status'] == 'degraded'

    done = by_name(first, scene)
    assert done['flaky']['outcome'] == 'recovered' and done['flaky']['health_before'] == 'unhealthy'
    assert done['flaky']['health_after'] == 'healthy' and scene.health('flaky') == 'healthy'
    assert done['crashy']['outcome'] == 'recovered' and done['crashy']['exit_code_before'] == 3
    assert done['crashy']['status_after'] == 'running' and scene.state('crashy')['Status'] == 'running'
    assert done['broken']['outcome'] == 'not_recovered' and done['broken']['health_after'] == 'unhealthy'
    assert done['done']['outcome'] == 'left_alone' and 'exited with code 0' in done['done']['reason']
    assert first['status'] == 'unhealthy' and first['metrics']['containers_recovered'] == 2
    assert 'docker restart --time 1 %s' % scene.name('flaky') in first['executed_commands']
    assert not any(scene.name('done') in c or scene.name('steady') in c for c in first['executed_commands'])

    again = by_name(second, scene)
    assert again['flaky']['outcome'] == 'healthy' and again['crashy']['outcome'] == 'healthy'
    assert again['broken']['outcome'] == 'not_recovered' and again['broken']['restarts_in_window'] == 1

    last = by_name(third, scene)
    broken_started = scene.state('broken')['StartedAt']
    assert last['broken']['outcome'] == 'budget_exhausted' and last['broken']['action'] == 'none'
    assert last['broken']['restarts_in_window'] == 2 and 'max_restarts 2' in last['broken']['reason']
    assert third['changed'] is False and third['status'] == 'unhealthy'
    assert scene.state('broken')['StartedAt'] == broken_started  # left as it is
    with open(state) as handle:
        assert len(json.load(handle)['restarts'][scene.name('broken')]) == 2
    assert scene.state('foreign')['StartedAt'] == foreign_started  # never touched
    assert scene.state('done')['Status'] == 'exited'


def test_compose_service_restarted_by_labels(scene, tmp_path):
    scene.compose('web', RECOVERS_ON_RESTART, healthcheck=check(['CMD', 'test', '-f', '/tmp/ok']))
    scene.compose('db', ['sleep', 'infinity'], healthcheck=check(['CMD', 'true']))
    wait_until(lambda: scene.health('web-1') == 'unhealthy' and scene.health('db-1') == 'healthy', 'web to fail, db to pass')
    db_started = scene.state('db-1')['StartedAt']
    common = dict(wait_s=20, stop_timeout_s=1, state_file=str(tmp_path / 'budget.json'))
    run = run_tasks([task('only db', compose_project=scene.project, compose_services=['db'], **common),
                     task('project', compose_project=scene.project, **common)])
    only_db, project = run.result('only db'), run.result('project')
    assert [c['compose_service'] for c in only_db['containers']] == ['db'] and only_db['changed'] is False
    seen = by_name(project, scene)
    assert seen['web-1']['compose_project'] == scene.project and seen['web-1']['compose_service'] == 'web'
    assert seen['web-1']['outcome'] == 'recovered' and seen['db-1']['outcome'] == 'healthy'
    assert scene.state('db-1')['StartedAt'] == db_started
    assert scene.client.api.inspect_container(scene.name('web-1'))['Id'].startswith(seen['web-1']['id'])  # not recreated


def test_bad_input_refused_before_anything_is_restarted(scene, tmp_path):
    scene.run('sick', ['sleep', 'infinity'], healthcheck=check(['CMD', 'false']))
    wait_until(lambda: scene.health('sick') == 'unhealthy', 'the health check to fail')
    started = scene.state('sick')['StartedAt']
    state = str(tmp_path / 'budget.json')
    run = run_tasks([task('missing', names=[scene.name('sick'), scene.name('nope')], state_file=state),
                     task('zero', labels=[scene.label], max_restarts=0, state_file=state),
                     task('nothing', state_file=state),
                     task('services alone', compose_services=['web'], names=[scene.name('sick')], state_file=state)])
    missing, zero, nothing, alone = (run.result(n) for n in ('missing', 'zero', 'nothing', 'services alone'))
    assert missing['failed'] and "container '%s' does not exist" % scene.name('nope') in missing['msg']
    assert zero['failed'] and 'max_restarts must be at least 1' in zero['msg']
    assert nothing['failed'] and 'never acts on every container' in nothing['msg']
    assert alone['failed'] and 'compose_services needs compose_project' in alone['msg']
    assert scene.state('sick')['StartedAt'] == started and not os.path.exists(state)

"""docker_hygiene through real ansible-playbook runs against the real (shared) Docker engine.

Every task is narrowed to this run's objects with ``only_labels`` or
``name_patterns``: the engine is shared with other tests and molecule runs.
"""

from __future__ import annotations

import json

from tests.harness.playbook import run_tasks
from tests.harness.faults_process import wait_until

MODULE = 'engineroom.maintenance.docker_hygiene'


def task(name, check=False, **args):
    entry = {'name': name, MODULE: args, 'ignore_errors': True}
    if check:
        entry['check_mode'] = True
    return entry


def by_name(result, scene):
    return dict((c['name'][len(scene.prefix):], c) for c in result['containers'] if c['name'].startswith(scene.prefix))


def build(scene):
    """Stopped, running, unhealthy, restarted, kept and foreign containers; dangling images; two volumes."""
    scene.exited('exited')
    scene.container('created')
    scene.exited('keep')
    scene.exited('foreign', labels=False)
    used = scene.volume('used')
    scene.volume('data')
    scene.container('running', command=['sleep', 'infinity'], start=True, volumes={used: {'bind': '/data', 'mode': 'rw'}})
    sick = scene.container('sick', command=['sleep', 'infinity'], start=True,
                           healthcheck=dict(test=['CMD', 'false'], interval=200000000, timeout=1000000000, retries=1))
    flappy = scene.container('flappy', command=['false'], start=True,
                             restart_policy=dict(Name='on-failure', MaximumRetryCount=2))
    dangling, tagged = scene.dangling('img')
    foreign_dangling = scene.dangling('other', labels=False)[0]

    def settled():
        sick.reload()
        flappy.reload()
        return (sick.attrs['State'].get('Health', {}).get('Status') == 'unhealthy'
                and flappy.status == 'exited' and flappy.attrs['RestartCount'] == 2)
    wait_until(settled, 'the health check to fail and the on-failure restarts to run out')
    return dangling, tagged, foreign_dangling


def test_review_plan_cleanup_and_idempotence(scene):
    dangling, tagged, foreign_dangling = build(scene)
    mine = dict(only_labels=[scene.label], keep_containers=[scene.name('keep')], warn_restart_count=2)
    run = run_tasks([
        task('plan', check=True, min_age_h=0, **mine),
        task('young', check=True, **mine),
        task('by name', check=True, min_age_h=0, name_patterns=[scene.name('ex*'), scene.name('fore*')],
             prune_images=False),
        task('clean', min_age_h=0, **mine),
        task('again', min_age_h=0, **mine),
    ], diff=True)
    plan, young, named, clean, again = (run.result(n) for n in ('plan', 'young', 'by name', 'clean', 'again'))
    assert run.rc == 0, json.dumps(run.tasks)[-3000:]

    # The review covers this run's containers, with restarts and health.
    seen = by_name(plan, scene)
    assert seen['running']['status'] == 'running' and seen['running']['outcome'] == 'kept'
    assert seen['sick']['health'] == 'unhealthy'
    assert seen['flappy']['restart_count'] == 2 and seen['flappy']['status'] == 'exited'
    flagged = dict((a['name'], a['reasons']) for a in plan['attention'] if a['name'].startswith(scene.prefix))
    assert flagged == {scene.name('sick'): ['unhealthy'], scene.name('flappy'): ['restarted 2 times']}
    assert plan['metrics']['containers_unhealthy'] >= 1 and plan['metrics']['restarts_total'] >= 2

    # Check mode: exactly the stopped, labelled, not-kept containers and the labelled dangling image, with sizes.
    assert plan['changed'] is True
    assert sorted(k for k, c in seen.items() if c['outcome'] == 'planned') == ['created', 'exited', 'flappy']
    assert seen['keep']['reason'] == 'kept by keep_containers'
    assert seen['foreign']['reason'] == 'not matched by only_labels'
    assert [i['id'] for i in plan['images']] == [dangling] and plan['images'][0]['outcome'] == 'planned'
    assert plan['images'][0]['size_bytes'] >= 60000  # the 60 kB file only that image holds
    assert plan['volumes'] == []
    assert plan['metrics']['bytes_reclaimable'] >= 60000 and plan['bytes_reclaimed'] == 0
    assert 'docker image rm --no-prune %s' % dangling.split(':')[1][:12] in plan['executed_commands']
    assert sorted(plan['diff']['before']['containers'])[0].startswith(scene.name('created') + ' (created, ')
    assert plan['summary'].startswith('docker_hygiene: ') and 'would remove 3 stopped containers, 1 dangling images' in plan['summary']

    # min_age_h (24 h by default) keeps containers that stopped just now.
    young_seen = by_name(young, scene)
    assert not any(c['outcome'] == 'planned' for c in young_seen.values())
    assert young_seen['exited']['reason'].endswith('under min_age_h 24.0')

    # name_patterns alone narrows by name: the unlabelled "foreign" container matches it.
    assert sorted(k for k, c in by_name(named, scene).items() if c['outcome'] == 'planned') == ['exited', 'foreign']
    assert named['images'] == []

    # The real run removes what the plan said, reports what it reclaimed, and a second run finds nothing.
    assert clean['changed'] is True
    assert sorted(k for k, c in by_name(clean, scene).items() if c['outcome'] == 'removed') == ['created', 'exited', 'flappy']
    assert clean['images'][0]['outcome'] == 'removed'
    assert clean['metrics']['containers_removed'] == 3 and clean['metrics']['images_removed'] == 1
    assert clean['bytes_reclaimed'] == clean['metrics']['bytes_reclaimed'] >= 60000
    assert clean['diff']['after'] == dict(containers=[], images=[], volumes=[])
    assert again['changed'] is False and again['images'] == []
    assert not any(c['outcome'] != 'kept' for c in by_name(again, scene).values())

    # Real state: removed exactly what was selected; everything else is still there.
    for gone in ('exited', 'created', 'flappy'):
        assert not scene.exists('container', gone)
    for kept in ('keep', 'foreign', 'running', 'sick'):
        assert scene.exists('container', kept)
    assert not scene.exists('image', dangling)
    assert scene.exists('image', tagged) and scene.exists('image', foreign_dangling)
    assert scene.exists('volume', 'data') and scene.exists('volume', 'used')


def test_volumes_only_when_enabled_and_named(scene):
    used = scene.volume('used')
    scene.volume('data')
    scene.container('running', command=['sleep', 'infinity'], start=True, volumes={used: {'bind': '/data', 'mode': 'rw'}})
    run = run_tasks([
        task('default', min_age_h=0, name_patterns=[scene.name('*')]),
        task('volumes', prune_volumes=True, prune_containers=False, prune_images=False,
             name_patterns=[scene.name('*')], only_labels=[scene.label]),
        task('volumes again', prune_volumes=True, prune_containers=False, prune_images=False,
             name_patterns=[scene.name('*')], only_labels=[scene.label]),
    ])
    default, volumes, again = run.result('default'), run.result('volumes'), run.result('volumes again')
    assert default['volumes'] == [] and default['metrics']['volumes_removed'] == 0
    assert [v['name'] for v in volumes['volumes']] == [scene.name('data')]
    assert volumes['volumes'][0]['outcome'] == 'removed' and volumes['changed'] is True
    assert volumes['executed_commands'][-1] == 'docker volume rm %s' % scene.name('data')
    assert again['changed'] is False and again['volumes'] == []
    assert not scene.exists('volume', 'data')
    assert scene.exists('volume', 'used') and scene.exists('container', 'running')


def test_bad_inputs_change_nothing(scene):
    scene.exited('exited')
    scene.volume('data')
    narrow = dict(only_labels=[scene.label], min_age_h=0)
    cases = [
        ('negative age', dict(narrow, min_age_h=-1), 'min_age_h must not be negative (got -1.0)'),
        ('volumes unnamed', dict(prune_volumes=True, min_age_h=0),
         'prune_volumes destroys the data in every unused volume it selects: name the volumes'),
        ('label without name', dict(narrow, only_labels=['=x']), "only_labels entry '=x' has no label name"),
        ('empty pattern', dict(narrow, keep_containers=['']), 'keep_containers holds an empty pattern'),
        ('negative restarts', dict(narrow, warn_restart_count=-1), 'warn_restart_count must not be negative'),
        ('no engine', dict(narrow, docker_host='unix:///nonexistent/docker.sock'),
         'cannot reach the Docker engine at unix:///nonexistent/docker.sock'),
        ('bad choice', dict(narrow, prune_images='maybe'), 'prune_images'),
    ]
    run = run_tasks([task(name, **args) for name, args, message in cases])
    for name, args, message in cases:
        result = run.result(name)
        assert result['failed'] is True and message in result['msg'], (name, result['msg'])
        assert 'Traceback' not in result['msg'], name
    assert scene.exists('container', 'exited') and scene.exists('volume', 'data')


def test_role_cleans_reports_and_fails_on_attention(scene):
    scene.exited('exited')
    scene.container('sick', command=['sleep', 'infinity'], start=True,
                    healthcheck=dict(test=['CMD', 'false'], interval=200000000, timeout=1000000000, retries=1))
    sick = scene.client.containers.get(scene.containers['sick'])

    def unhealthy():
        sick.reload()
        return sick.attrs['State'].get('Health', {}).get('Status') == 'unhealthy'
    wait_until(unhealthy, 'the health check to fail')
    role = {'name': 'hygiene', 'ansible.builtin.include_role': {'name': 'engineroom.maintenance.docker_hygiene'},
            'vars': dict(docker_hygiene_only_labels=[scene.label], docker_hygiene_min_age_h=0,
                         docker_hygiene_fail_on_attention=True)}
    run = run_tasks([role])
    prefix = 'engineroom.maintenance.docker_hygiene : '
    result = run.result(prefix + 'Review containers, remove stopped containers and dangling images')
    report = run.result(prefix + 'Show the summary and the containers that need attention')
    failed = run.result(prefix + 'Fail when a container needs attention')
    assert result['changed'] is True and result['metrics']['containers_removed'] == 1
    assert report['msg'][0] == result['summary']
    assert '%s: unhealthy' % scene.name('sick') in report['msg']
    assert run.rc != 0 and failed['failed'] is True and scene.name('sick') in failed['msg']
    assert not scene.exists('container', 'exited') and scene.exists('container', 'sick')

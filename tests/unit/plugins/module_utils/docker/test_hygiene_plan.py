"""docker_hygiene's planning: which containers, images and volumes a run may remove, from plain engine readings."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.docker import hygiene as dh

NOW = datetime.datetime(2026, 11, 23, 12, 0, 0, tzinfo=datetime.timezone.utc)


def ago(hours):
    return NOW - datetime.timedelta(hours=hours)


def container(name, status='exited', finished_h=48, labels=None, image_id='sha256:base', volumes=(), **extra):
    entry = dict(id=name + '0' * 12, name=name, image='app', image_id=image_id, status=status, restart_count=0,
                 health=None, labels=labels or {}, size_bytes=100, created=ago(1000),
                 finished=ago(finished_h) if finished_h is not None else None, exit_code=0, volumes=list(volumes))
    entry.update(extra)
    return entry


def image(ident, tags=(), labels=None, parent_id=''):
    return dict(id=ident, tags=list(tags), labels=labels or {}, parent_id=parent_id, created=ago(10), size_bytes=1000)


def options(**extra):
    base = dict(prune_containers=True, prune_images=True, prune_volumes=False, keep_containers=[], name_patterns=[],
                label_filters=[], min_age_h=24)
    base.update(extra)
    return base


def actions(entries):
    return dict((e.get('name') or e['id'], (e['action'], e['reason'])) for e in entries)


def test_stopped_old_unkept_containers_go_and_everything_else_stays():
    containers = [container('old'), container('young', finished_h=2), container('never-ran', status='created', finished_h=None),
                  container('web', status='running'), container('paused', status='paused'),
                  container('db-backup', finished_h=100)]
    planned = dh.plan(containers, [], [], options(keep_containers=['db-*']), NOW)[0]
    seen = actions(planned)
    assert seen['old'][0] == 'remove' and seen['old'][1] == 'exited since 2026-11-21T12:00:00Z'
    assert seen['never-ran'][0] == 'remove'  # created 1000 h ago and never started
    assert seen['young'] == ('keep', 'stopped 2.0 h ago, under min_age_h 24')
    assert seen['db-backup'] == ('keep', 'kept by keep_containers')
    assert seen['web'] == ('keep', None) and seen['paused'] == ('keep', None)


def test_filters_narrow_removal_but_not_the_review():
    containers = [container('ci-1', labels={'ci.job': '7'}), container('ci-2', labels={'ci.job': '8'}),
                  container('app-1')]
    planned = dh.plan(containers, [], [], options(label_filters=[('ci.job', '7')]), NOW)[0]
    assert actions(planned) == {'ci-1': ('remove', 'exited since 2026-11-21T12:00:00Z'),
                                'ci-2': ('keep', 'not matched by only_labels'),
                                'app-1': ('keep', 'not matched by only_labels')}
    planned = dh.plan(containers, [], [], options(name_patterns=['app-*']), NOW)[0]
    assert [e['name'] for e in planned if e['action'] == 'remove'] == ['app-1']


def test_dangling_images_only_unused_untagged_childless_and_labelled():
    images = [image('sha256:tagged', tags=['app:1']), image('sha256:parent'), image('sha256:child', parent_id='sha256:parent'),
              image('sha256:used'), image('sha256:freed'), image('sha256:other', labels={'team': 'b'})]
    containers = [container('runs', status='running', image_id='sha256:used'), container('gone', image_id='sha256:freed')]
    planned = dh.plan(containers, images, [], options(min_age_h=0), NOW)[1]
    # "freed" is used only by a container this plan removes, so a second run has nothing left.
    assert sorted(e['id'] for e in planned) == ['sha256:child', 'sha256:freed', 'sha256:other']
    planned = dh.plan(containers, images, [], options(min_age_h=0, label_filters=[('team', None)]), NOW)[1]
    assert [e['id'] for e in planned] == ['sha256:other']
    planned = dh.plan(containers, images, [], options(prune_images=False), NOW)[1]
    assert planned == []


def test_volumes_never_without_prune_volumes_and_never_in_use():
    volumes = [dict(name='data', labels={}, size_bytes=5), dict(name='scratch', labels={}, size_bytes=7),
               dict(name='old-scratch', labels={}, size_bytes=9)]
    containers = [container('db', status='running', volumes=['data']), container('job', volumes=['old-scratch'])]
    assert dh.plan(containers, [], volumes, options(min_age_h=0), NOW)[2] == []
    planned = dh.plan(containers, [], volumes, options(min_age_h=0, prune_volumes=True, name_patterns=['*']), NOW)[2]
    assert sorted(v['name'] for v in planned) == ['old-scratch', 'scratch']
    # With "job" (stopped 48 h ago) kept by min_age_h, its volume is still in use.
    planned = dh.plan(containers, [], volumes, options(min_age_h=100, prune_volumes=True, name_patterns=['*']), NOW)[2]
    assert [v['name'] for v in planned] == ['scratch']


@pytest.mark.parametrize('items, expected', [
    (['a'], [('a', None)]), (['a=b'], [('a', 'b')]), (['a='], [('a', '')]), (['a=b=c'], [('a', 'b=c')]),
])
def test_label_filters(items, expected):
    assert dh.parse_label_filters(items) == expected


def test_label_filter_without_name_is_refused():
    with pytest.raises(dh.HygieneError, match="only_labels entry '=x' has no label name"):
        dh.parse_label_filters(['=x'])


def test_engine_times():
    expected = datetime.datetime(2026, 11, 23, 16, 50, 1, tzinfo=datetime.timezone.utc)
    assert dh.docker_time('2026-11-23T16:50:01.123456789Z') == expected
    assert dh.docker_time('0001-01-01T00:00:00Z') is None and dh.docker_time('') is None


def test_attention():
    entries = [container('sick', status='running', health='unhealthy'), container('loop', status='restarting', restart_count=9),
               container('fine', status='running', restart_count=1)]
    found = dh.attention(entries, 3)
    assert [(a['name'], a['reasons']) for a in found] == [('sick', ['unhealthy']),
                                                          ('loop', ['restarting', 'restarted 9 times'])]
    assert [a['name'] for a in dh.attention(entries, 0)] == ['sick', 'loop']

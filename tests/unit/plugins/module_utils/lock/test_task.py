"""LockTask without Ansible: parameters in, result dict or LockTaskError out, real lock files in a temp dir."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.lock.task import LockTask, LockTaskError


def params(lock_file, **extra):
    base = dict(state='present', lock_file=lock_file, create_dirs=False, flag_file=None, owner='alice',
                reason='upgrade', run_id=None, controller='ctl', ttl_s=600, extend=False, wait_s=0,
                steal_expired=False, force=False, readonly_roles=[], admin_roles=[], terminate_sessions=False,
                grace_s=10)
    base.update(extra)
    return base


def run(lock_file, check_mode=False, diff=False, **extra):
    warnings = []
    result = LockTask(params(lock_file, **extra), check_mode=check_mode, diff=diff, warn=warnings.append).run()
    return result, warnings


def test_acquire_query_release_round_trip(tmp_path):
    path = str(tmp_path / 'maintenance.json')
    taken = run(path, diff=True)[0]
    assert taken['changed'] is True and taken['acquired'] is True and taken['locked'] is True
    assert taken['summary'].startswith('maintenance on: lock taken by alice (upgrade) until ')
    assert taken['diff']['before'] == {} and taken['diff']['after']['owner'] == 'alice'
    with open(path) as handle:
        assert json.load(handle)['owner'] == 'alice'
    assert set(taken['metrics']) >= {'duration_ms', 'wait_ms', 'lock_expires_in_s'}

    again = run(path)[0]
    assert again['changed'] is False and again['summary'].startswith('maintenance already on for alice')

    queried = run(path, state='query')[0]
    assert queried['changed'] is False and queried['holder']['owner'] == 'alice'

    released = run(path, state='absent')[0]
    assert released['changed'] is True and released['released'] is True
    assert not os.path.exists(path)
    gone = run(path, state='absent')[0]
    assert gone['changed'] is False and gone['summary'] == 'maintenance off: no lock at %s' % path


def test_check_mode_changes_nothing(tmp_path):
    path = str(tmp_path / 'maintenance.json')
    result = run(path, check_mode=True)[0]
    assert result['changed'] is True and result['summary'].startswith('(check mode) would: maintenance on')
    assert not os.path.exists(path)


def test_another_owner_is_refused_with_the_result_so_far(tmp_path):
    path = str(tmp_path / 'maintenance.json')
    run(path)
    with pytest.raises(LockTaskError) as caught:
        run(path, owner='bob')
    assert 'is held by alice' in caught.value.msg
    assert caught.value.result['locked'] is True and caught.value.result['holder']['owner'] == 'alice'
    with pytest.raises(LockTaskError) as caught:
        run(path, state='absent', owner='bob')
    assert 'only its owner releases it' in caught.value.msg and os.path.exists(path)


@pytest.mark.parametrize('extra, words', [
    (dict(owner=' '), 'owner is required with state=present'),
    (dict(ttl_s=0), 'ttl_s must be a positive number'),
    (dict(wait_s=-1), 'wait_s must not be negative'),
])
def test_bad_options_fail_before_anything_is_read(tmp_path, extra, words):
    with pytest.raises(LockTaskError) as caught:
        run(str(tmp_path / 'maintenance.json'), **extra)
    assert words in caught.value.msg and caught.value.result is None
    assert os.listdir(str(tmp_path)) == []


def test_corrupt_lock_is_refused_then_replaced_by_force(tmp_path):
    path = str(tmp_path / 'maintenance.json')
    with open(path, 'w') as handle:
        handle.write('{not json')
    with pytest.raises(LockTaskError) as caught:
        run(path)
    assert 'nothing was changed' in caught.value.msg
    result, warnings = run(path, force=True)
    assert result['forced'] is True and any('replacing it because force is true' in w for w in warnings)
    with open(path) as handle:
        assert json.load(handle)['owner'] == 'alice'

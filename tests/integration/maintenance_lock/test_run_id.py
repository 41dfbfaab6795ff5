"""maintenance_lock with run_id: the lock belongs to one run of an owner, not to every run of it.

Two weekly runs share the owner ``weekly``; with run_id, the second is refused and can never release the
first one's lock (fault case 06 shows it through weekly.yml). Asserted on the module's JSON and the lock file.
"""

from __future__ import annotations

import json
import os

from tests.harness.playbook import run_tasks
from tests.integration.maintenance_lock.conftest import lock_task


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def test_run_id_makes_the_lock_one_runs(lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    weekly = dict(owner='weekly', lock_file=lock_file)
    run = run_tasks([
        lock_task('run 1 acquires', run_id='run-1', ttl_s=1, **weekly),
        lock_task('run 2 refused', run_id='run-2', **weekly),
        lock_task('run 1 again', run_id='run-1', **weekly),
        lock_task('run 2 may not release', state='absent', run_id='run-2', **weekly),
        {'name': 'let the lock expire', 'ansible.builtin.command': {'argv': ['sleep', '2']}},
        lock_task('run 2 refused even when expired', run_id='run-2', **weekly),
        lock_task('run 2 steals the expired lock', run_id='run-2', steal_expired=True, **weekly),
        lock_task('run 1 may not release any more', state='absent', run_id='run-1', **weekly),
        lock_task('run 1 releases by force', state='absent', run_id='run-1', force=True, **weekly),
        lock_task('without run_id, every run of the owner shares it', run_id='run-3', **weekly),
        lock_task('owner without run_id releases', state='absent', owner='weekly', lock_file=lock_file),
    ])
    assert run.rc == 0, run.stderr
    first = run.result('run 1 acquires')
    assert first['acquired'] is True and first['holder']['run_id'] == 'run-1'

    refused = run.result('run 2 refused')
    assert refused['failed'] and refused['locked'] is True and refused['holder']['run_id'] == 'run-1'
    assert 'another run of weekly (run_id run-1) is in maintenance, not this one (run_id run-2)' in refused['msg']
    again = run.result('run 1 again')
    assert again['changed'] is False and again['acquired'] is False

    kept = run.result('run 2 may not release')
    assert kept['failed'] and kept['holder']['run_id'] == 'run-1' and not kept.get('released')
    assert 'held by another run of weekly' in kept['msg'] and 'not by this run (run_id run-2)' in kept['msg']

    expired = run.result('run 2 refused even when expired')
    assert expired['failed'] and expired['expired'] is True and 'steal_expired: true' in expired['msg']
    stolen = run.result('run 2 steals the expired lock')
    assert stolen['changed'] is True and stolen['stolen'] is True and stolen['holder']['run_id'] == 'run-2'
    assert stolen['previous_holder']['run_id'] == 'run-1'
    assert 'expired lock of weekly taken over by weekly' in stolen['summary']

    late = run.result('run 1 may not release any more')
    assert late['failed'] and late['holder']['run_id'] == 'run-2'
    forced = run.result('run 1 releases by force')
    assert forced['released'] is True and forced['forced'] is True
    assert any('another run of weekly (run_id run-2) by force' in w for w in forced.get('warnings', []))

    shared = run.result('without run_id, every run of the owner shares it')
    assert shared['acquired'] is True and shared['holder']['run_id'] == 'run-3'
    released = run.result('owner without run_id releases')
    assert released['released'] is True and released['forced'] is False
    assert not os.path.exists(lock_file)


def test_refusals_leave_the_lock_file_as_it_was(lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    weekly = dict(owner='weekly', lock_file=lock_file)
    run = run_tasks([lock_task('run 1 acquires', run_id='run-1', **weekly)])
    assert run.rc == 0 and run.result('run 1 acquires')['acquired'] is True
    with open(lock_file, 'rb') as handle:
        before = handle.read()
    run = run_tasks([lock_task('run 2 refused', run_id='run-2', **weekly),
                     lock_task('run 2 may not release', state='absent', run_id='run-2', **weekly)])
    assert run.result('run 2 refused')['failed'] and run.result('run 2 may not release')['failed']
    with open(lock_file, 'rb') as handle:
        assert handle.read() == before
    assert read_json(lock_file)['run_id'] == 'run-1'

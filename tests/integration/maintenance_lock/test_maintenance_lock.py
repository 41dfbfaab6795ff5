"""maintenance_lock through real ansible-playbook runs: the lock file's life, check/diff mode, bad inputs.

Each test asserts on the module's JSON and on the real files (lock record,
mode, flag file); every bad input also on nothing having changed.
"""

from __future__ import annotations

import json
import os
import stat

from tests.harness.playbook import run_tasks
from tests.integration.maintenance_lock.conftest import lock_task, run_lock


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def test_lifecycle_acquire_idempotent_extend_refuse_query_release(lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    flag_file = os.path.join(lock_dir, 'maintenance.flag')
    alice = dict(owner='alice', lock_file=lock_file)
    run = run_tasks([
        lock_task('query empty', state='query', lock_file=lock_file),
        dict(lock_task('acquire in check mode', reason='upgrade', **alice), check_mode=True),
        lock_task('acquire', reason='upgrade', ttl_s=600, flag_file=flag_file, run_id='run-1', controller='ctl1',
                  **alice),
        lock_task('acquire again', reason='other words', ttl_s=900, flag_file=flag_file, **alice),
        lock_task('extend', ttl_s=900, extend=True, **alice),
        lock_task('bob refused', owner='bob', lock_file=lock_file),
        lock_task('bob may not release', state='absent', owner='bob', lock_file=lock_file),
        lock_task('query held', state='query', lock_file=lock_file),
    ], diff=True)
    assert run.rc == 0, run.stderr
    empty = run.result('query empty')
    assert empty['locked'] is False and empty['holder'] is None and empty['changed'] is False
    planned = run.result('acquire in check mode')
    assert planned['changed'] is True and planned['summary'].startswith('(check mode) would: maintenance on')
    assert planned['diff']['before'] == {} and planned['diff']['after']['owner'] == 'alice'

    acquired = run.result('acquire')
    assert acquired['changed'] is True and acquired['acquired'] is True and acquired['locked'] is True
    record = acquired['holder']
    assert record['owner'] == 'alice' and record['reason'] == 'upgrade' and record['run_id'] == 'run-1'
    assert record['controller'] == 'ctl1' and record['ttl_s'] == 600 and record['schema_version'] == 1
    assert record['started_at'].endswith('Z') and record['expires_at'] > record['started_at']
    assert acquired['metrics']['lock_expires_in_s'] > 500 and 'duration_ms' in acquired['metrics']
    assert acquired['diff']['before'] == {} and acquired['diff']['after'] == record

    again = run.result('acquire again')
    assert again['changed'] is False and again['acquired'] is False
    assert again['holder'] == record  # nothing refreshed: reason and ttl_s of the held lock stay
    assert 'nothing changed' in again['summary']

    extended = run.result('extend')
    assert extended['changed'] is True and extended['holder']['ttl_s'] == 900
    assert extended['holder']['expires_at'] > record['expires_at']
    assert extended['holder']['started_at'] == record['started_at']
    assert extended['diff']['before']['expires_at'] == record['expires_at']

    refused = run.result('bob refused')
    assert refused['failed'] is True and refused['changed'] is False
    assert 'is held by alice' in refused['msg'] and 'wait_s' in refused['msg']
    assert refused['holder']['owner'] == 'alice' and refused['locked'] is True

    not_owner = run.result('bob may not release')
    assert not_owner['failed'] is True and 'only its owner releases it' in not_owner['msg']
    assert 'force: true' in not_owner['msg']

    held = run.result('query held')
    assert held['locked'] is True and held['holder'] == extended['holder'] and held['expired'] is False

    # The real files: a complete record, 0644, schema_version first; the flag with its marker.
    on_disk = read_json(lock_file)
    assert on_disk == extended['holder']
    with open(lock_file) as handle:
        assert handle.read().lstrip('{\n ').startswith('"schema_version"')
    assert stat.S_IMODE(os.stat(lock_file).st_mode) == 0o644
    flag = read_json(flag_file)
    assert flag['engineroom_maintenance_flag'] is True and flag['owner'] == 'alice'
    assert flag['expires_at'] == on_disk['expires_at']  # rewritten on extend
    assert sorted(os.listdir(lock_dir)) == ['maintenance.flag', 'maintenance.json']  # no temporary left

    run = run_tasks([
        lock_task('forced release', state='absent', owner='bob', force=True, lock_file=lock_file),
        lock_task('release again', state='absent', owner='alice', lock_file=lock_file),
        lock_task('query after', state='query', lock_file=lock_file),
    ])
    forced = run.result('forced release')
    assert forced['changed'] is True and forced['released'] is True and forced['forced'] is True
    assert forced['previous_holder']['owner'] == 'alice' and forced['locked'] is False
    assert 'by force' in forced['summary']
    assert any('by force' in w for w in forced.get('warnings', []))
    again = run.result('release again')
    assert again['changed'] is False and again['released'] is False
    assert run.result('query after')['locked'] is False
    assert os.listdir(lock_dir) == []  # lock and flag gone


def test_check_mode_changes_nothing(lock_dir):
    lock_file = os.path.join(lock_dir, 'sub', 'maintenance.json')
    run, result = run_lock(check=True, diff=True, owner='alice', lock_file=lock_file, create_dirs=True,
                           flag_file=os.path.join(lock_dir, 'flag'))
    assert result['changed'] is True and result['acquired'] is True
    assert result['diff']['after']['owner'] == 'alice'
    assert os.listdir(lock_dir) == []  # neither the directory, the lock nor the flag

    lock_file = os.path.join(lock_dir, 'maintenance.json')
    run = run_tasks([lock_task('acquire', owner='alice', lock_file=lock_file),
                     dict(lock_task('release', state='absent', owner='alice', lock_file=lock_file), check_mode=True)])
    result = run.result('release')
    assert result['changed'] is True and result['released'] is True
    assert result['summary'].startswith('(check mode) would: maintenance off')
    assert os.path.exists(os.path.join(lock_dir, 'maintenance.json'))


def test_create_dirs_makes_a_0755_directory_and_shared_directories_are_warned_about(lock_dir):
    lock_file = os.path.join(lock_dir, 'state', 'engineroom', 'maintenance.json')
    shared = os.path.join(lock_dir, 'shared')
    os.mkdir(shared)
    os.chmod(shared, 0o1777)
    run = run_tasks([lock_task('create dirs', owner='alice', lock_file=lock_file, create_dirs=True),
                     lock_task('shared dir', owner='alice', lock_file=os.path.join(shared, 'maintenance.json'))])
    result = run.result('create dirs')
    assert result['changed'] is True and not result.get('warnings'), result.get('msg')
    assert stat.S_IMODE(os.stat(os.path.dirname(lock_file)).st_mode) == 0o755
    assert read_json(lock_file)['owner'] == 'alice'
    shared_result = run.result('shared dir')
    assert shared_result['acquired'] is True
    assert any('writable by group or others (mode 1777)' in w for w in shared_result['warnings'])


def test_bad_inputs_fail_clearly_and_change_nothing(lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    missing_dir = os.path.join(lock_dir, 'absent', 'maintenance.json')
    not_a_dir = os.path.join(lock_dir, 'plain-file')
    with open(not_a_dir, 'w') as handle:
        handle.write('x')
    run = run_tasks([
        lock_task('no owner', lock_file=lock_file),
        lock_task('no owner to release', state='absent', lock_file=lock_file),
        lock_task('blank owner', owner='  ', lock_file=lock_file),
        lock_task('zero ttl', owner='alice', ttl_s=0, lock_file=lock_file),
        lock_task('negative ttl', owner='alice', ttl_s=-60, lock_file=lock_file),
        lock_task('negative wait', owner='alice', wait_s=-1, lock_file=lock_file),
        lock_task('missing directory', owner='alice', lock_file=missing_dir),
        lock_task('directory is a file', owner='alice', lock_file=os.path.join(not_a_dir, 'maintenance.json')),
        lock_task('unwritable directory', owner='alice', lock_file='/proc/engineroom-maintenance.json'),
        lock_task('unwritable flag directory', owner='alice', lock_file=lock_file, flag_file='/proc/x.flag'),
    ])
    messages = dict((name, run.result(name)) for name in (
        'no owner', 'no owner to release', 'blank owner', 'zero ttl', 'negative ttl', 'negative wait',
        'missing directory', 'directory is a file', 'unwritable directory', 'unwritable flag directory'))
    for name, result in messages.items():
        assert result['failed'] is True and result['changed'] is False, name
        assert 'Traceback' not in result['msg'], name
    assert 'owner is required with state=present' in messages['no owner']['msg']
    assert 'owner is required with state=absent' in messages['no owner to release']['msg']
    assert 'owner is required' in messages['blank owner']['msg']
    assert 'ttl_s must be a positive number of seconds (got 0)' in messages['zero ttl']['msg']
    assert 'got -60' in messages['negative ttl']['msg']
    assert 'wait_s must not be negative' in messages['negative wait']['msg']
    assert ('directory %s does not exist: create it (root-owned, 0755) or set create_dirs: true'
            % os.path.dirname(missing_dir)) in messages['missing directory']['msg']
    assert 'is not a directory' in messages['directory is a file']['msg']
    assert 'directory /proc is not writable' in messages['unwritable directory']['msg']
    assert 'flag_file /proc/x.flag cannot be written' in messages['unwritable flag directory']['msg']
    assert all('nothing was changed' in r['msg'] for n, r in messages.items() if 'directory' in n)
    # Nothing was created anywhere.
    assert sorted(os.listdir(lock_dir)) == ['plain-file']
    assert not os.path.exists('/proc/engineroom-maintenance.json')


def test_corrupt_lock_file_is_reported_not_overwritten(lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    cases = {
        'garbage': b'\x00\xffnot json at all',
        'empty': b'',
        'not a record': b'["a", "list"]\n',
        'no expiry': b'{"schema_version": 1, "owner": "x", "started_at": "2026-01-01T00:00:00Z"}\n',
        'newer schema': (b'{"schema_version": 99, "owner": "x", "started_at": "2026-01-01T00:00:00Z", '
                         b'"expires_at": "2026-01-01T01:00:00Z"}\n'),
    }
    expected = {'garbage': 'is not a JSON lock record', 'empty': 'is empty', 'not a record': 'not a lock record',
                'no expiry': 'lacks expires_at', 'newer schema': 'schema_version 99'}
    files = dict((case, os.path.join(lock_dir, 'case-%d.json' % index)) for index, case in enumerate(cases))
    tasks = []
    for case, content in cases.items():
        with open(files[case], 'wb') as handle:
            handle.write(content)
        tasks += [lock_task('%s: %s' % (case, state), state=state, owner='alice', lock_file=files[case])
                  for state in ('present', 'absent', 'query')]
    run = run_tasks(tasks)
    for case, content in cases.items():
        for state in ('present', 'absent', 'query'):
            result = run.result('%s: %s' % (case, state))
            assert result['failed'] is True and result['changed'] is False, (case, state)
            assert 'lock file %s' % files[case] in result['msg'], (case, result['msg'])
            assert expected[case] in result['msg'], (case, result['msg'])
        assert 'force: true' in run.result('%s: present' % case)['msg']
        with open(files[case], 'rb') as handle:
            assert handle.read() == content, case  # untouched
    assert len(os.listdir(lock_dir)) == len(cases)  # and nothing else written

    # force: true replaces it (and says so).
    with open(lock_file, 'wb') as handle:
        handle.write(cases['garbage'])
    run, result = run_lock(owner='alice', force=True, lock_file=lock_file)
    assert result['changed'] is True and result['forced'] is True and result['acquired'] is True
    assert 'corrupt lock file replaced' in result['summary']
    assert any('replacing it because force is true' in w for w in result['warnings'])
    assert read_json(lock_file)['owner'] == 'alice'

    # ... and force: true on release removes a corrupt file.
    with open(lock_file, 'wb') as handle:
        handle.write(b'garbage')
    run, result = run_lock(state='absent', owner='alice', force=True, lock_file=lock_file)
    assert result['released'] is True and result['forced'] is True and not os.path.exists(lock_file)
    assert any('check the roles by hand' in w for w in result['warnings'])


def test_foreign_flag_file_is_never_removed(lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    flag_file = os.path.join(lock_dir, 'flag')
    with open(flag_file, 'w') as handle:
        handle.write('placed by the operator\n')
    run = run_tasks([
        lock_task('acquire', owner='alice', lock_file=lock_file, flag_file=flag_file),
        lock_task('release', state='absent', owner='alice', lock_file=lock_file),
    ])
    assert run.result('acquire')['changed'] is True
    assert any('not written by maintenance_lock' in w for w in run.result('acquire')['warnings'])
    assert run.result('release')['released'] is True
    with open(flag_file) as handle:
        assert handle.read() == 'placed by the operator\n'
    assert not os.path.exists(lock_file)

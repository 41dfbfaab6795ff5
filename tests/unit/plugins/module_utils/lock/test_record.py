"""Pure logic of the maintenance lock: records, corruption, outcomes, the flag file, role snapshots, the probe."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.common import time as clock
from ansible_collections.engineroom.maintenance.plugins.module_utils.lock import record as lock
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.probes import run_probe
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.readonly_roles import (
    is_read_only,
    merge_snapshot,
)

NOW = datetime(2026, 11, 23, 20, 0, 0, tzinfo=timezone.utc)


def record(owner='alice', ttl_s=600, now=NOW, **extra):
    return lock.new_record(owner, 'upgrade', 'run-1', 'ctl', 'host1', ttl_s, now, **extra)


def test_new_record_shape_and_expiry():
    rec = record()
    assert list(rec)[0] == 'schema_version' and rec['schema_version'] == lock.SCHEMA_VERSION
    assert rec['started_at'] == '2026-11-23T20:00:00Z' and rec['expires_at'] == '2026-11-23T20:10:00Z'
    assert lock.seconds_left(rec, NOW) == 600
    assert not lock.is_expired(rec, NOW + timedelta(seconds=599))
    assert lock.is_expired(rec, NOW + timedelta(seconds=600))
    assert 'expired 5 s ago' in lock.describe_holder(rec, NOW + timedelta(seconds=605))
    assert 'expires in 600 s' in lock.describe_holder(rec, NOW)


@pytest.mark.parametrize('current, owner, steal, expected', [
    (None, 'bob', False, 'create'),
    (record(), 'alice', False, 'own'),
    (record(), 'bob', False, 'busy'),
    (record(), 'bob', True, 'busy'),  # not expired: never stolen
    (record(now=NOW - timedelta(hours=1)), 'bob', False, 'busy'),
    (record(now=NOW - timedelta(hours=1)), 'bob', True, 'steal'),
    (record(now=NOW - timedelta(hours=1)), 'alice', True, 'own'),
])
def test_acquire_outcome(current, owner, steal, expected):
    assert lock.acquire_outcome(current, owner, NOW, steal) == expected


@pytest.mark.parametrize('data, message', [
    (b'', 'is empty'),
    (b'  \n', 'is empty'),
    (b'{not json', 'not a JSON lock record'),
    (b'\xff\xfe', 'not a JSON lock record'),
    (b'42', 'not a lock record (a int)'),
    (b'{"owner": "x"}', 'lacks schema_version, started_at, expires_at'),
    (b'{"schema_version": "1", "owner": "x", "started_at": "a", "expires_at": "b"}', "schema_version '1'"),
    (b'{"schema_version": 1, "owner": "x", "started_at": "yesterday", "expires_at": "2026-01-01T00:00:00Z"}',
     'unreadable timestamps'),
])
def test_parse_record_rejects_what_is_not_a_record(data, message):
    with pytest.raises(lock.LockCorrupt, match='lock file /x/m.json'):
        lock.parse_record(data, '/x/m.json')
    try:
        lock.parse_record(data, '/x/m.json')
    except lock.LockCorrupt as exc:
        assert message in str(exc)


def test_create_record_is_exclusive_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / 'maintenance.json')
    assert lock.create_record(path, record()) is True
    assert lock.create_record(path, record(owner='bob')) is False
    assert lock.read_record(path)['owner'] == 'alice'
    assert os.listdir(tmp_path) == ['maintenance.json']
    assert oct(os.stat(path).st_mode & 0o777) == '0o644'
    lock.replace_record(path, record(owner='carol'))
    assert lock.read_record(path)['owner'] == 'carol'
    assert lock.remove_file(path) is True and lock.remove_file(path) is False
    assert lock.read_record(path) is None


def test_lock_dir_problem(tmp_path):
    assert 'does not exist' in lock.lock_dir_problem(str(tmp_path / 'a' / 'm.json'), create_dirs=False)
    assert not (tmp_path / 'a').exists()
    assert lock.lock_dir_problem(str(tmp_path / 'a' / 'b' / 'm.json'), create_dirs=True) is None
    assert oct((tmp_path / 'a' / 'b').stat().st_mode & 0o777) == '0o755'


def test_lock_dir_warning_for_shared_directories(tmp_path):
    path = str(tmp_path / 'maintenance.json')
    os.chmod(tmp_path, 0o755)
    assert lock.lock_dir_warning(path) is None
    os.chmod(tmp_path, 0o1777)
    assert 'writable by group or others (mode 1777)' in lock.lock_dir_warning(path)
    os.chmod(tmp_path, 0o775)
    assert 'mode 0775' in lock.lock_dir_warning(path)
    os.chmod(tmp_path, 0o755)


def test_flag_file_states(tmp_path):
    path = str(tmp_path / 'flag')
    assert lock.flag_state(path) == 'absent'
    rec = record()
    lock.write_flag(path, rec)
    assert lock.flag_state(path) == 'ours' and lock.flag_current(path, rec)
    assert not lock.flag_current(path, dict(rec, expires_at='2030-01-01T00:00:00Z'))
    assert json.loads((tmp_path / 'flag').read_text())['owner'] == 'alice'
    (tmp_path / 'flag').write_text('maintenance\n')
    assert lock.flag_state(path) == 'foreign'
    (tmp_path / 'flag').write_text('{"engineroom_maintenance_flag": "yes"}')
    assert lock.flag_state(path) == 'foreign'


def test_role_snapshots_read_only_and_merge():
    plain = dict(role='app', settings=[dict(database=None, value=None)])
    assert not is_read_only(plain)
    assert is_read_only(dict(role='app', settings=[dict(database=None, value='on')]))
    assert is_read_only(dict(role='app', settings=[dict(database=None, value='TRUE'), dict(database='d', value='1')]))
    assert not is_read_only(dict(role='app', settings=[dict(database=None, value='on'), dict(database='d', value='off')]))
    current = dict(role='app', settings=[dict(database=None, value='on'), dict(database='d', value='off')])
    merged = merge_snapshot(plain, current)
    assert merged['settings'] == [dict(database=None, value=None), dict(database='d', value='off')]
    assert plain['settings'] == [dict(database=None, value=None)]  # the recorded snapshot is not modified


def test_maintenance_probe_statuses(tmp_path):
    path = str(tmp_path / 'maintenance.json')
    probe = dict(name='m', kind='maintenance', lock_file=path)
    off = run_probe(probe, {}, 5)
    assert off['status'] == 'healthy' and off['details']['locked'] is False
    lock.create_record(path, lock.new_record('alice', 'upgrade', 'r', 'c', 'h', 600, clock.utc_now()))
    on = run_probe(probe, {}, 5)
    assert on['status'] == 'degraded' and on['details']['owner'] == 'alice' and on['details']['expired'] is False
    assert 'maintenance on: lock held by alice' in on['message']
    lock.replace_record(path, lock.new_record('alice', 'upgrade', 'r', 'c', 'h', 60,
                                              clock.utc_now() - timedelta(hours=2)))
    forgotten = run_probe(probe, {}, 5)
    assert forgotten['status'] == 'unhealthy' and forgotten['details']['expired'] is True
    assert 'forgotten?' in forgotten['message']
    (tmp_path / 'maintenance.json').write_text('garbage')
    corrupt = run_probe(probe, {}, 5)
    assert corrupt['status'] == 'unhealthy' and 'not a JSON lock record' in corrupt['message']

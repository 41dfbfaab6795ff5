"""triage_bundle on the real servers: planted secrets never reach the bundle, the database down and
the disk full (a real tmpfs) still give a bundle that says what it could not collect."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time

import pytest
import zstandard

from tests.harness.faults_fs import fill_to_last_byte as fill, tmpfs_mounted as mounted
from tests.harness.playbook import run_tasks

MODULE = 'engineroom.maintenance.triage_bundle'
PLANTED = {
    'argv url password': 'PlantedUrlPw1',
    'argv token flag': 'PlantedTok2',
    'argv github token': 'ghp_PlantedGithubToken0123456789abcd',
    'log password': 'PlantedLogPw3',
    'log bearer': 'PlantedBearer4abcdef',
    'sql comment password': 'PlantedSql6',
    'lock reason token': 'PlantedLock7',
    'maintenance log password': 'PlantedMlog8',
    'operator secret': 'PlantedOperator9',
}


def task(**args):
    return {'name': 'triage', MODULE: args, 'ignore_errors': True}


def members(path):
    with open(path, 'rb') as handle:
        data = zstandard.ZstdDecompressor().stream_reader(handle).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def assert_no_planted(texts, extra=()):
    for text in texts:
        for what, value in list(PLANTED.items()) + [(v, v) for v in extra]:
            assert value.encode() not in (text if isinstance(text, bytes) else text.encode()), what


@pytest.fixture
def blocking_chain(pg):
    """An idle-in-transaction session holding a table lock, and a second one waiting for it."""
    pg.execute('CREATE TABLE IF NOT EXISTS triage_t (id int)', dbname='app')
    holder = pg.connect(dbname='app')
    holder.cursor().execute('BEGIN; LOCK TABLE triage_t IN ACCESS EXCLUSIVE MODE')
    waiter = pg.connect(dbname='app')
    waiter_pid = waiter.get_backend_pid()

    def wait():
        try:
            waiter.cursor().execute("SELECT count(*) FROM triage_t /* password=%s */" % PLANTED['sql comment password'])
        except Exception:  # pylint: disable=broad-except
            pass
    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    time.sleep(1.0)
    yield holder.get_backend_pid(), waiter_pid
    holder.rollback()
    thread.join(10)
    holder.close()
    waiter.close()


@pytest.fixture
def secret_process():
    argv = [sys.executable, '-c', 'import time; time.sleep(120)', '--db-url',
            'postgres://app:%s@db.internal/app' % PLANTED['argv url password'],
            '--api-token=%s' % PLANTED['argv token flag'], PLANTED['argv github token']]
    process = subprocess.Popen(argv)
    yield process
    process.kill()
    process.wait()


def sandbox(tmp_path):
    logs = tmp_path / 'logs'
    logs.mkdir()
    (logs / 'app.log').write_text(
        'INFO started\n'
        'ERROR login failed for db: password=%s\n'
        'ERROR upstream said 401 to Authorization: Bearer %s\n'
        'INFO fine\n' % (PLANTED['log password'], PLANTED['log bearer']))
    lock = tmp_path / 'maintenance.json'
    lock.write_text(json.dumps(dict(owner='ops', reason='deploy token=%s' % PLANTED['lock reason token'])))
    mlog = tmp_path / 'maintenance.jsonl'
    mlog.write_text('\n'.join(json.dumps(dict(event='task', n=n, args=dict(login_password=PLANTED['maintenance log password'])))
                              for n in range(80)) + '\n')
    return dict(log_paths=[str(logs / '*.log')], lock_file=str(lock), maintenance_log=str(mlog), maintenance_log_lines=5,
                secrets=[PLANTED['operator secret']], containers=False, journal=True)


def test_bundle_holds_every_section_and_no_planted_secret(tmp_path, pg, pg_probe, redis_auth,
                                                          blocking_chain, secret_process):
    holder_pid, waiter_pid = blocking_chain
    postgres = dict((k, v) for k, v in pg_probe.items() if k.startswith('login_'))
    args = dict(sandbox(tmp_path), dest=str(tmp_path / 'out'), fallback_dirs=[], postgres=postgres,
                long_transaction_s=0, redis=[dict(name='cache', login_port=redis_auth.port, login_password='redis-test-pw')])
    started = time.monotonic()
    run = run_tasks([task(**args)])
    result = run.result('triage')
    assert not result.get('failed'), result
    assert time.monotonic() - started < 120
    statuses = dict((s['name'], s['status']) for s in result['sections'])
    assert statuses['system'] == statuses['postgres'] == statuses['redis'] == statuses['logs'] == 'ok', result['sections']
    assert statuses['lock'] == statuses['maintenance_log'] == 'ok'
    assert statuses['containers'] == 'skipped'
    assert result['fallback_used'] is False and os.path.dirname(result['bundle']) == str(tmp_path / 'out')
    assert oct(os.stat(result['bundle']).st_mode & 0o777) == '0o600'

    content = members(result['bundle'])
    names = [name for name, dummy in content]
    assert names[0].endswith('/manifest.json')
    manifest = json.loads(content[0][1])
    assert manifest['schema_version'] == 1 and manifest['kind'] == 'triage'
    assert manifest['written_to'] == str(tmp_path / 'out') and manifest['secrets_masked'] >= len(PLANTED)
    with open(result['manifest']) as handle:
        assert json.load(handle) == manifest
    files = dict((name.split('/', 1)[1], data) for name, data in content)
    for expected in ('system/processes.txt', 'system/load.txt', 'system/memory.txt', 'system/disk.txt',
                     'system/sockets.txt', 'postgres/activity.json', 'redis/cache-info.txt', 'logs/errors.json',
                     'maintenance/lock.json', 'maintenance/maintenance.jsonl'):
        assert files.get(expected), expected

    activity = json.loads(files['postgres/activity.json'])
    blocked = [row for row in activity['blocking'] if row['pid'] == waiter_pid]
    assert blocked and blocked[0]['blocked_by'] == [holder_pid]
    assert holder_pid in [row['pid'] for row in activity['long_transactions']]
    assert any(row['pid'] == waiter_pid and not row['granted'] for row in activity['locks'])
    assert b'redis_version' in files['redis/cache-info.txt']
    assert str(secret_process.pid).encode() in files['system/processes.txt']
    assert b'[REDACTED]' in files['system/processes.txt'] and b'db.internal' in files['system/processes.txt']
    errors = json.loads(files['logs/errors.json'])
    assert [len(lines) for lines in errors.values()] == [2]
    assert len(files['maintenance/maintenance.jsonl'].splitlines()) == 5

    assert_no_planted([data for dummy, data in content] + [json.dumps(result)],
                      extra=['redis-test-pw', pg_probe['login_password']])


def test_database_down_and_dest_full_fall_back_to_a_tmpfs(tmp_path):
    args = dict(sandbox(tmp_path), postgres=dict(login_host='127.0.0.1', login_port=1, login_user='monitor',
                                                 login_password=PLANTED['operator secret']),
                redis=[dict(name='gone', login_port=1)])
    with mounted(str(tmp_path / 'full'), 'size=256k'), mounted(str(tmp_path / 'shm'), 'size=8m'):
        fill(str(tmp_path / 'full'))
        run = run_tasks([task(dest=str(tmp_path / 'full'), fallback_dirs=[str(tmp_path / 'shm')], **args)])
        result = run.result('triage')
        assert not result.get('failed'), result
        assert result['fallback_used'] is True
        assert result['attempts'] == [dict(directory=str(tmp_path / 'full'), error='No space left on device')]
        assert os.path.dirname(result['bundle']) == str(tmp_path / 'shm')
        assert os.listdir(str(tmp_path / 'full')) == ['filler']           # no partial file left behind
        reasons = dict((n['section'], n['reason']) for n in result['not_collected'])
        assert 'cannot connect to PostgreSQL' in reasons['postgres'] and 'Connection refused' in reasons['postgres']
        assert 'cannot connect to Redis' in reasons['redis']
        assert any('fallback directory' in w for w in result.get('warnings', []))
        content = members(result['bundle'])
        manifest = json.loads(content[0][1])
        assert manifest['attempts'] == result['attempts'] and manifest['written_to'] == str(tmp_path / 'shm')
        assert 'postgres' in [n['section'] for n in manifest['not_collected']]
        assert_no_planted([data for dummy, data in content] + [json.dumps(result)])


def test_no_room_anywhere_fails_naming_every_directory(tmp_path):
    with mounted(str(tmp_path / 'full'), 'size=256k'), mounted(str(tmp_path / 'ro'), 'size=1m', 'ro'):
        fill(str(tmp_path / 'full'))
        run = run_tasks([task(dest=str(tmp_path / 'full'), fallback_dirs=[str(tmp_path / 'ro')],
                              **sandbox(tmp_path))])
        result = run.result('triage')
        assert result['failed'] and result['bundle'] is None
        assert 'no room for the triage bundle' in result['msg']
        assert '%s: No space left on device' % (tmp_path / 'full') in result['msg']
        assert '%s: Read-only file system' % (tmp_path / 'ro') in result['msg']
        assert 'the collection itself succeeded' in result['msg']
        assert os.listdir(str(tmp_path / 'full')) == ['filler'] and os.listdir(str(tmp_path / 'ro')) == []


def test_time_bound_skips_what_it_cannot_reach(tmp_path):
    """A Redis that accepts and never answers eats the rest of the bound: what comes after it is skipped,
    and the bundle is still written at once."""
    mute = socket.socket()
    mute.bind(('127.0.0.1', 0))
    mute.listen(8)
    try:
        args = dict(sandbox(tmp_path), dest=str(tmp_path / 'out'), time_bound_s=3, step_timeout_s=60,
                    redis=[dict(name='mute', login_port=mute.getsockname()[1])],
                    postgres=dict(login_host='127.0.0.1', login_port=1, login_user='x'))
        args['containers'] = True
        run = run_tasks([task(**args)])
    finally:
        mute.close()
    result = run.result('triage')
    assert not result.get('failed'), result
    assert result['metrics']['duration_ms'] < 15000
    statuses = dict((s['name'], s) for s in result['sections'])
    assert statuses['system']['status'] == 'ok' and statuses['logs']['status'] == 'ok'
    assert statuses['redis']['status'] == 'failed'
    for name in ('postgres', 'containers'):
        assert statuses[name]['status'] == 'skipped' and 'time bound of 3 s ran out' in statuses[name]['reason']
    assert result['bundle'] and os.path.exists(result['bundle'])


def test_check_mode_collects_and_writes_nothing(tmp_path):
    run = run_tasks([dict(task(dest=str(tmp_path / 'out'), **sandbox(tmp_path)), check_mode=True)])
    result = run.result('triage')
    assert result['changed'] and result['bundle'] is None and not os.path.exists(tmp_path / 'out')


def test_containers_states_last_lines_and_env_values_redacted(tmp_path, docker_client):
    from tests.conftest import TEST_IMAGE
    name = 'engineroom-triage-%d' % os.getpid()
    container = docker_client.containers.run(
        TEST_IMAGE, ['sh', '-c', 'echo "ERROR push failed token glpat-PlantedGitlab0123456789abc"; sleep 120'],
        name=name, detach=True, environment=dict(APP_SETTING='PlantedEnvValue5'))
    try:
        time.sleep(1)
        args = sandbox(tmp_path)
        args.update(containers=True, journal=False, dest=str(tmp_path / 'out'))
        run = run_tasks([task(**args)])
        result = run.result('triage')
        assert not result.get('failed'), result
        files = dict((n.split('/', 1)[1], d) for n, d in members(result['bundle']))
        states = dict((c['name'], c) for c in json.loads(files['containers/containers.json']))
        mine = states[name]
        assert mine['status'] == 'running' and 'APP_SETTING=[REDACTED]' in mine['env']
        assert any('ERROR push failed token' in line for line in mine['last_log_lines'])
        assert_no_planted(list(files.values()), extra=['PlantedEnvValue5', 'glpat-PlantedGitlab0123456789abc'])
    finally:
        container.remove(force=True)

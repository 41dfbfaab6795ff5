"""The container: path against a real container from the test image, running PostgreSQL 15."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import TEST_IMAGE
from tests.harness.playbook import run_tasks
from tests.integration.snapshots.test_snapshot_roundtrip import ARCHIVE, RESTORE, conn, manifest_of


def _exec(container, *argv, user='postgres'):
    code, out = container.exec_run(list(argv), user=user)
    assert code == 0, out
    return out.decode()


@pytest.fixture(scope='module')
def pg_container(docker_client):
    name = 'engineroom-snap-%d' % os.getpid()
    container = docker_client.containers.run(TEST_IMAGE, command=['sleep', 'infinity'], name=name, detach=True)
    stopped = None
    try:
        _exec(container, 'pg_ctlcluster', '15', 'main', 'start', user='root')
        for _attempt in range(60):
            if container.exec_run(['pg_isready'], user='postgres')[0] == 0:
                break
            time.sleep(0.5)
        _exec(container, 'createdb', 'inside')
        for statement in ("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 321) g",
                          "CREATE SEQUENCE secret_seq",
                          "CREATE ROLE limited LOGIN PASSWORD 'limited-pw'",
                          "GRANT SELECT ON t TO limited"):
            _exec(container, 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', 'inside', '-c', statement)
        stopped = docker_client.containers.create(TEST_IMAGE, command=['sleep', 'infinity'], name=name + '-stopped')
        yield name, stopped.name
    finally:
        for item in (container, stopped):
            if item is not None:
                item.remove(force=True)


def test_container_dump_streams_verifies_and_restores(pg, pg_container, dest):
    name, stopped = pg_container
    run = run_tasks([
        {'name': 'dump', ARCHIVE: dict(database='inside', container=name, dest=dest)},
        {'name': 'drill on the host', RESTORE: dict(conn(pg), dest=dest, database='inside')},
        {'name': 'absent', ARCHIVE: dict(database='inside', container=name + '-absent', dest=dest, slot='always'), 'ignore_errors': True},
        {'name': 'stopped', ARCHIVE: dict(database='inside', container=stopped, dest=dest, slot='always'), 'ignore_errors': True},
        {'name': 'fails inside', 'ignore_errors': True,
         ARCHIVE: dict(database='inside', container=name, dest=dest, prefix='limited', login_host='127.0.0.1',
                       login_user='limited', login_password='limited-pw', slot='always')},
        {'name': 'unknown db inside', 'ignore_errors': True,
         ARCHIVE: dict(database='nope', container=name, dest=dest, slot='always')},
    ])
    failed = [t['_task'] for t in run.tasks if t.get('failed')]
    assert failed == ['absent', 'stopped', 'fails inside', 'unknown db inside'], [t.get('msg') for t in run.tasks]
    snap = run.result('dump')['snapshot']
    manifest = manifest_of(snap['path'])
    assert manifest['database']['where'] == 'container' and manifest['database']['container'] == name
    assert manifest['database']['tables'] == {'public.t': {'rows': 321, 'exact': True}}
    assert any(cmd.startswith('docker exec %s pg_dump' % name) for cmd in run.result('dump')['executed_commands'])
    drill = run.result('drill on the host')
    assert drill['matches'] is True and drill['tables'][0]['actual'] == 321
    assert 'does not exist' in run.result('absent')['msg']
    assert 'not running' in run.result('stopped')['msg']
    inside = run.result('fails inside')['msg']
    assert 'pg_dump in container' in inside and 'exited with code 1' in inside and 'secret_seq' in inside
    assert 'psql in container' in run.result('unknown db inside')['msg']
    assert 'limited-pw' not in str(run.report)
    assert sorted(os.listdir(dest)) == sorted([os.path.basename(snap['path']), os.path.basename(snap['path']) + '.manifest.json'])

"""The real servers every test layer shares: PostgreSQL, Redis, HTTP, the Docker engine.

Each fixture starts its own throwaway server on a free loopback port in a
temporary directory, and stops and removes it when the session ends.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

from tests.harness.playbook import REPO_ROOT
from tests.harness.postgres import PostgresCluster
from tests.harness.servers import HttpServer, RedisServer

# Let unit tests import the collection as Ansible does (collections/ links to the checkout).
COLLECTIONS_DIR = os.path.join(REPO_ROOT, 'collections')
if COLLECTIONS_DIR not in sys.path:
    sys.path.insert(0, COLLECTIONS_DIR)

MONITOR_PASSWORD = 'monitor-test-pw'
TEST_IMAGE = os.environ.get('ENGINEROOM_TEST_IMAGE', 'engineroom-maintenance-test:bookworm')


@pytest.fixture(scope='session')
def scratch_dir():
    """A session temp dir under /tmp that the postgres OS user can traverse."""
    path = tempfile.mkdtemp(prefix='engineroom-test-')
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='session')
def pg(scratch_dir):
    """A PostgreSQL 15 cluster with a ``monitor`` login role (pg_monitor) and an ``app`` database."""
    cluster = PostgresCluster(os.path.join(scratch_dir, 'pg')).start()
    try:
        cluster.create_role('monitor', MONITOR_PASSWORD, 'pg_monitor')
        cluster.create_database('app', owner='monitor')
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_probe(pg):
    """A postgres probe definition pointing at the ``pg`` cluster over TCP with a password."""
    return dict(name='db', kind='postgres', login_host=pg.host, login_port=pg.port, login_user='monitor',
                login_password=MONITOR_PASSWORD, login_db='app')


@pytest.fixture(scope='session')
def redis(scratch_dir):
    server = RedisServer(os.path.join(scratch_dir, 'redis')).start()
    yield server
    server.stop()


@pytest.fixture(scope='session')
def redis_auth(scratch_dir):
    server = RedisServer(os.path.join(scratch_dir, 'redis-auth'), password='redis-test-pw').start()
    yield server
    server.stop()


@pytest.fixture(scope='session')
def http():
    server = HttpServer().start()
    yield server
    server.stop()


def _docker_unavailable(reason):
    """Skip for a developer's quick run; fail under `make test`, which provides the engine."""
    if os.environ.get('ENGINEROOM_REQUIRE_DOCKER') == '1':
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope='session')
def docker_client():
    """The local Docker engine with the test image."""
    import docker
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        _docker_unavailable('Docker engine not answering (%s): run scripts/docker-engine.sh' % exc)
    try:
        client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        _docker_unavailable('image %s missing: run scripts/build-test-image.sh' % TEST_IMAGE)
    yield client
    client.close()

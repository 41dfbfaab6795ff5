"""Containers on the shared Docker engine for the recovery tests, all named and labelled for this test run.

Every container carries this process's pid in its name; all but the one that
plays "somebody else's" carry ``engineroom.test.recover=<pid>``. The fixture
removes every container it made, by ID, when the test ends (volumes too: the
test image declares none, and none are created).
"""

from __future__ import annotations

import os

import docker
import pytest

from tests.conftest import TEST_IMAGE

LABEL = 'engineroom.test.recover'
SECOND_NS = 1000000000
# Healthy only once /tmp/ok exists; the command creates it on every start but the first (its flag survives restarts).
RECOVERS_ON_RESTART = ['sh', '-c', 'if [ -f /var/tmp/started ]; then touch /tmp/ok; fi; touch /var/tmp/started; '
                                   'exec sleep infinity']
# Exits 3 on its first start, runs on the next ones.
CRASHES_ONCE = ['sh', '-c', 'if [ -f /var/tmp/started ]; then exec sleep infinity; fi; touch /var/tmp/started; exit 3']


def check(test, interval_s=1):
    return dict(test=test, interval=interval_s * SECOND_NS, timeout=SECOND_NS, retries=1, start_period=0)


class Scene:
    def __init__(self, client):
        self.client = client
        self.pid = os.getpid()
        self.prefix = 'cr-%d-' % self.pid
        self.label = '%s=%d' % (LABEL, self.pid)
        self.project = 'cr-project-%d' % self.pid
        self.ids = []

    def name(self, short):
        return self.prefix + short

    def run(self, short, command, labels=None, healthcheck=None):
        container = self.client.containers.run(TEST_IMAGE, command, name=self.name(short), detach=True,
                                               labels=labels if labels is not None else {LABEL: str(self.pid)},
                                               healthcheck=healthcheck)
        self.ids.append(container.id)
        return container

    def compose(self, service, command, healthcheck=None):
        labels = {'com.docker.compose.project': self.project, 'com.docker.compose.service': service,
                  'com.docker.compose.container-number': '1', LABEL: str(self.pid)}
        return self.run('%s-1' % service, command, labels=labels, healthcheck=healthcheck)

    def state(self, short):
        return self.client.api.inspect_container(self.name(short))['State']

    def health(self, short):
        return (self.state(short).get('Health') or {}).get('Status')

    def cleanup(self):
        for ident in self.ids:
            try:
                self.client.api.remove_container(ident, force=True, v=True)
            except docker.errors.NotFound:
                pass


@pytest.fixture
def scene(docker_client):
    built = Scene(docker_client)
    try:
        yield built
    finally:
        built.cleanup()

"""A scene of containers, images and volumes on the shared Docker engine, all named and labelled for this test run.

Other engineers' containers and molecule runs share the engine, so every
object here carries this process's pid in its name and (except the ones that
play "somebody else's") the label ``engineroom.test.hygiene=<pid>``; the tests
always narrow the module with that label or a name pattern, and the fixture
removes whatever is left, by ID, when the test ends.
"""

from __future__ import annotations

import io
import os
import tarfile

import docker
import pytest

from tests.conftest import TEST_IMAGE

LABEL = 'engineroom.test.hygiene'


def tar_of(name, body):
    """A tar holding one file, for put_archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        info = tarfile.TarInfo(name)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


class Scene:
    """What the tests create; ``exists`` asks the engine whether one of them is still there."""

    def __init__(self, client):
        self.client = client
        self.pid = os.getpid()
        self.prefix = 'dh-%d-' % self.pid
        self.label = '%s=%d' % (LABEL, self.pid)
        self.labels = {LABEL: str(self.pid)}
        self.containers = {}
        self.images = {}
        self.volumes = {}

    def name(self, short):
        return self.prefix + short

    def container(self, short, command=('true',), labels=True, start=False, **kwargs):
        container = self.client.containers.create(TEST_IMAGE, list(command), name=self.name(short),
                                                  labels=self.labels if labels else {}, **kwargs)
        self.containers[short] = container.id
        if start:
            container.start()
        return container

    def exited(self, short, labels=True):
        container = self.container(short, labels=labels, start=True)
        container.wait(timeout=60)
        return container

    def image(self, short, content, labels=True):
        """Commit a throwaway container (never started) with one file of ``content`` to ``<prefix><short>:latest``."""
        source = self.client.containers.create(TEST_IMAGE, ['true'], name=self.name('src-%s-%d' % (short, len(self.images))))
        try:
            source.put_archive('/', tar_of('hygiene-%s.bin' % short, content))
            image = source.commit(repository=self.name(short), tag='latest',
                                  conf={'Labels': self.labels if labels else {}})
        finally:
            source.remove(v=True)
        self.images['%s#%d' % (short, len(self.images))] = image.id
        return image.id

    def dangling(self, short, labels=True):
        """An image made dangling the usual way: its tag moved to a newer commit. Returns (dangling id, tagged id)."""
        old = self.image(short, b'old' * 20000, labels=labels)
        new = self.image(short, b'new' * 10, labels=labels)
        return old, new

    def volume(self, short):
        volume = self.client.volumes.create(name=self.name(short), labels=self.labels)
        self.volumes[short] = volume.name
        return volume.name

    def exists(self, kind, key):
        getter = dict(container=self.client.containers.get, image=self.client.images.get,
                      volume=self.client.volumes.get)[kind]
        ident = dict(container=self.containers, image=self.images, volume=self.volumes)[kind].get(key, key)
        try:
            getter(ident)
        except docker.errors.NotFound:
            return False
        return True

    def cleanup(self):
        for ident in self.containers.values():
            try:
                self.client.api.remove_container(ident, force=True, v=False)
            except docker.errors.NotFound:
                pass
        for ident in reversed(list(self.images.values())):
            try:
                self.client.api.remove_image(ident, force=True, noprune=True)
            except docker.errors.NotFound:
                pass
        for name in self.volumes.values():
            try:
                self.client.api.remove_volume(name, force=True)
            except docker.errors.NotFound:
                pass


@pytest.fixture
def scene(docker_client):
    built = Scene(docker_client)
    try:
        yield built
    finally:
        built.cleanup()

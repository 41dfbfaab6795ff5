# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a program inside a container and stream its output, with its exit code.

The docker SDK's ``container.exec_run(stream=True)`` hands back a generator
and no exit code, so a pg_dump that dies inside a container would look like a
short, successful dump. The low-level API gives both: ``exec_create``,
``exec_start(stream=True, demux=True)`` for separate stdout/stderr chunks, then
``exec_inspect()['ExitCode']`` once the stream has ended. No TTY is allocated
(``docker exec -t`` rewrites binary output), and no shell is involved: the
argv goes to the engine as a list.
"""

from __future__ import annotations

import traceback

try:
    import docker
    import docker.errors
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'


class DockerExecError(Exception):
    """The container cannot run the command (absent, stopped, engine unreachable), phrased for an operator."""


def docker_client(docker_host=DEFAULT_DOCKER_HOST, timeout=60):
    """A client for ``docker_host``, or :class:`DockerExecError` saying why there is none."""
    if not HAS_DOCKER:
        raise DockerExecError('the docker Python SDK is not installed on the target host: install the "docker" package')
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerExecError('cannot reach the Docker engine at %s: %s (is dockerd running, and may this user use it?)'
                              % (docker_host, exc)) from exc
    return client


def running_container(client, name):
    """The container ``name``, checked to exist and to be running."""
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound as exc:
        raise DockerExecError('container %r does not exist: check the container option (docker ps -a)' % name) from exc
    except docker.errors.APIError as exc:
        raise DockerExecError('cannot inspect container %r: %s' % (name, exc)) from exc
    if container.status != 'running':
        raise DockerExecError('container %r is %s, not running: start it first (docker start %s)'
                              % (name, container.status, name))
    return container


class ExecStream:
    """One exec: iterate :meth:`stdout_chunks`, then read :attr:`exit_code` and :attr:`stderr`.

    stderr is collected (bounded to its last ``stderr_limit`` bytes) while
    stdout is streamed to the caller, so a chatty stderr cannot stall the dump.
    """

    def __init__(self, client, container, argv, user=None, environment=None, stderr_limit=65536):
        self.client = client
        self.container = container
        self.argv = list(argv)
        self.stderr = b''
        self.exit_code = None
        self._limit = stderr_limit
        try:
            created = client.api.exec_create(container, self.argv, stdout=True, stderr=True, stdin=False, tty=False,
                                             user=user or '', environment=environment or None)
        except docker.errors.NotFound as exc:
            raise DockerExecError('container %r does not exist: check the container option (docker ps -a)'
                                  % container) from exc
        except docker.errors.APIError as exc:
            raise DockerExecError('cannot run %s in container %r: %s' % (self.argv[0], container, exc)) from exc
        self.exec_id = created['Id']

    def stdout_chunks(self):
        """Yield stdout byte chunks until the program exits; then :attr:`exit_code` is set."""
        try:
            for out, err in self.client.api.exec_start(self.exec_id, stream=True, demux=True, tty=False):
                if err:
                    self.stderr = (self.stderr + err)[-self._limit:]
                if out:
                    yield out
        except docker.errors.APIError as exc:
            raise DockerExecError('the exec of %s in container %r broke off: %s' % (self.argv[0], self.container, exc)) from exc
        self.exit_code = self.client.api.exec_inspect(self.exec_id).get('ExitCode')

    def run(self):
        """Run to the end and return (exit code, stdout bytes, stderr bytes) for short commands."""
        out = b''.join(self.stdout_chunks())
        return self.exit_code, out, self.stderr

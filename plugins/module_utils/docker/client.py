# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a program inside a container and stream its output, with its exit code.

The docker SDK's ``container.exec_run(stream=True)`` hands back a generator
and no exit code, so a pg_dump that dies inside a container would look like a
short, successful dump. The low-level API gives both: ``exec_create``,
``exec_start(socket=True)`` for the exec's raw output, then
``exec_inspect()['ExitCode']`` once the stream has ended. No TTY is allocated
(``docker exec -t`` rewrites binary output), and no shell is involved: the
argv goes to the engine as a list.

Without a TTY the engine multiplexes stdout and stderr into frames (an 8-byte
header: stream id, payload length). The SDK's own demultiplexer reads each
frame with a poll and at least two small reads and yields it alone (at most
32 KiB), which cost the container path a tenth of its speed against
``docker exec``; :class:`ExecStream` reads the socket in 1 MiB pieces and
hands on stdout in chunks of about 1 MiB.
"""

from __future__ import annotations

import struct
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
FRAME_HEADER = struct.Struct('>BxxxL')  # stream id (1 stdout, 2 stderr), 3 zero bytes, payload length
STDOUT = 1
READ_BYTES = 1024 * 1024


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
        """Yield stdout chunks (bytearrays of about ``READ_BYTES``) until the program exits; then :attr:`exit_code` is set.

        A stream that ends inside a frame is an error, never a short success.
        """
        try:
            sock = self.client.api.exec_start(self.exec_id, socket=True, tty=False)
        except docker.errors.APIError as exc:
            raise DockerExecError('cannot start %s in container %r: %s' % (self.argv[0], self.container, exc)) from exc
        try:
            yield from self._demultiplex(_filler(sock))
        except OSError as exc:
            raise DockerExecError('the exec of %s in container %r broke off: %s' % (self.argv[0], self.container, exc)) from exc
        finally:
            sock.close()
        self.exit_code = self.client.api.exec_inspect(self.exec_id).get('ExitCode')

    def _demultiplex(self, fill):
        """Split the frames arriving through ``fill`` into stdout (yielded) and stderr (kept)."""
        received = bytearray(READ_BYTES)
        view = memoryview(received)
        header = bytearray()
        stream, left = STDOUT, 0
        out = bytearray()
        while True:
            size = fill(view)
            if not size:
                break
            start = 0
            while start < size:
                if not left:
                    take = min(FRAME_HEADER.size - len(header), size - start)
                    header += view[start:start + take]
                    start += take
                    if len(header) == FRAME_HEADER.size:
                        stream, left = FRAME_HEADER.unpack(header)
                        header = bytearray()
                    continue
                take = min(left, size - start)
                if stream == STDOUT:
                    out += view[start:start + take]
                else:
                    self.stderr = (self.stderr + view[start:start + take].tobytes())[-self._limit:]
                start += take
                left -= take
            if len(out) >= READ_BYTES:
                yield out
                out = bytearray()
        if header or left:
            raise DockerExecError('the output of %s in container %r ended in the middle of a frame: the stream was cut off'
                                  % (self.argv[0], self.container))
        if out:
            yield out

    def run(self):
        """Run to the end and return (exit code, stdout bytes, stderr bytes) for short commands."""
        out = b''.join(self.stdout_chunks())
        return self.exit_code, out, self.stderr


def _filler(sock):
    """A function filling a memoryview from the exec's socket (returns 0 at the end), blocking as long as it takes.

    The client's timeout must not apply: pg_dump may wait silently for a
    table lock (bounded by its own ``--lock-wait-timeout``). Unix and TCP
    connections come as ``socket.SocketIO`` or sockets; others (SSH) only
    offer ``recv``.
    """
    for candidate in (sock, getattr(sock, '_sock', None)):
        if candidate is not None and hasattr(candidate, 'settimeout') and candidate.gettimeout() not in (None, 0.0):
            candidate.settimeout(None)
    if hasattr(sock, 'readinto'):
        return sock.readinto
    if hasattr(sock, 'recv_into'):
        return sock.recv_into

    def fill(view):
        data = sock.recv(len(view))
        view[:len(data)] = data
        return len(data)
    return fill

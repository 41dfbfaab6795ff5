"""Free loopback ports for throwaway servers."""

from __future__ import annotations

import socket
import time


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_listening(port, host='127.0.0.1', timeout=15.0, greeting=None):
    """Block until something accepts connections on host:port, or raise TimeoutError.

    ``greeting``: the bytes the server must send first (``b'SSH-'``). A port
    Docker publishes accepts connections as soon as the container runs (its
    proxy listens), before the service inside does: only the greeting says
    the service answers.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5) as connection:
                if greeting is None or connection.recv(len(greeting)) == greeting:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError('nothing answers on %s:%d after %.0f s' % (host, port, timeout))
        time.sleep(0.05)

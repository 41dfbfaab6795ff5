"""Throwaway redis-server instances with the settings each test needs, driven with the real redis-cli.

The session-wide ``redis`` fixture of tests/conftest.py runs without
persistence or maxmemory; these tests need a server with ``maxmemory``, an
ACL user, an RDB directory, a slowlog, and servers pushed into MISCONF or
LOADING, so each test starts its own in its tmp_path and stops it after.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.harness.ports import free_port, wait_listening

MODULE = 'engineroom.maintenance.redis_maintenance'


class Redis:
    """One redis-server in the foreground on a free loopback port, its data in ``work_dir``."""

    def __init__(self, work_dir, *extra):
        self.work_dir = str(work_dir)
        self.port = free_port()
        self.extra = [str(e) for e in extra]
        self.process = None
        self.password = None

    def start(self, wait=True):
        os.makedirs(self.work_dir, exist_ok=True)
        argv = [shutil.which('redis-server'), '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
                '--appendonly', 'no', '--dir', self.work_dir, '--logfile', os.path.join(self.work_dir, 'redis.log'),
                '--enable-debug-command', 'yes'] + self.extra
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        if wait:
            wait_listening(self.port)
        return self

    def cli(self, *args, user=None, password=None):
        argv = ['redis-cli', '-p', str(self.port), '--no-auth-warning']
        if password or self.password:
            argv += (['--user', user] if user else []) + ['--pass', password or self.password]
        done = subprocess.run(argv + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, check=True, timeout=60)
        return done.stdout.strip()

    def info(self):
        values = {}
        for line in self.cli('INFO', 'all').splitlines():
            if ':' in line and not line.startswith('#'):
                key, value = line.split(':', 1)
                values[key] = value.strip()
        return values

    def fill(self, prefix, count, ttl=None, size=8):
        """``count`` string keys ``<prefix><n>`` of ``size`` bytes, with a TTL when given (one pipe through redis-cli)."""
        lines = []
        for n in range(count):
            lines.append('SET %s%d %s%s' % (prefix, n, 'x' * size, ' EX %d' % ttl if ttl else ''))
        argv = ['redis-cli', '-p', str(self.port), '--no-auth-warning'] + (['--pass', self.password] if self.password else [])
        subprocess.run(argv, input='\n'.join(lines) + '\n', stdout=subprocess.DEVNULL, text=True, check=True, timeout=60)

    def age(self, keys, idle_s):
        """Make ``keys`` look idle for ``idle_s`` seconds: DUMP then RESTORE ... IDLETIME (Redis's own way to set it)."""
        from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.client import RedisClient
        with RedisClient(port=self.port, password=self.password) as client:
            for key in keys:
                payload = client.command('DUMP', key)
                client.command('RESTORE', key, 0, payload, 'REPLACE', 'IDLETIME', idle_s)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:  # a server that cannot save refuses to shut down on SIGTERM
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path):
    """A factory: ``redis_server(*extra_args)`` starts a server; every one is stopped at the end of the test."""
    started = []

    def start(*extra, **kwargs):
        server = Redis(tmp_path / ('redis-%d' % len(started)), *extra)
        started.append(server)
        return server.start(**kwargs)
    yield start
    for server in started:
        server.stop()

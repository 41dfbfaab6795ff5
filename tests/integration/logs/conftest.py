"""Fixtures of the log oversight tests: a log directory, a process holding a deleted log,
and ansible-playbook runs as an unprivileged user (root reads every file, so a real
"permission denied" needs another user)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from tests.harness.playbook import BIN_DIR, REPO_ROOT, PlaybookRun, ansible_env

MODULE = 'engineroom.maintenance.log_rotation_check'
NOBODY = 65534

HOLDER_SOURCE = r'''
import sys, time
handle = open(sys.argv[1], 'ab', buffering=0)
handle.write(b'x' * int(sys.argv[2]))
sys.stdout.write('ready\n')
sys.stdout.flush()
sys.stdin.read()  # hold the file open until the test closes our stdin
'''


@pytest.fixture
def logdir():
    """An empty directory for logs that other users can traverse (mode 0755, owned by root)."""
    path = tempfile.mkdtemp(prefix='engineroom-logs-')
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Holder:
    """A background python process that appended to a log file and keeps it open."""

    def __init__(self, path, size):
        self.process = subprocess.Popen([sys.executable, '-c', HOLDER_SOURCE, path, str(size)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout.readline() == b'ready\n'
        self.pid = self.process.pid
        self.fd = next(int(fd) for fd in os.listdir('/proc/%d/fd' % self.pid)
                       if os.readlink('/proc/%d/fd/%s' % (self.pid, fd)).startswith(path))

    def held_size(self):
        return os.stat('/proc/%d/fd/%d' % (self.pid, self.fd)).st_size

    def stop(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(10)


@pytest.fixture
def holder():
    """Start Holder(path, size) processes; all are stopped at the end of the test."""
    started = []

    def start(path, size):
        started.append(Holder(path, size))
        return started[-1]
    yield start
    for process in started:
        process.stop()


def run_tasks_as_nobody(tasks, workdir):
    """Run ``tasks`` with ansible-playbook as the ``nobody`` user (setpriv, no sudo needed)."""
    home = os.path.join(workdir, 'home')
    os.makedirs(home, exist_ok=True)
    os.chown(home, NOBODY, NOBODY)
    playbook = os.path.join(home, 'play.yml')
    with open(playbook, 'w') as handle:
        # the venv's interpreter lives under /root (0700): the module runs with the system python as nobody
        json.dump([dict(name='integration', hosts='localhost', gather_facts=False, tasks=tasks,
                        vars=dict(ansible_python_interpreter='/usr/bin/python3'))], handle)
    env = ansible_env(dict(HOME=home, ANSIBLE_LOCAL_TEMP=os.path.join(home, 'tmp'),
                           ANSIBLE_REMOTE_TMP=os.path.join(home, 'tmp')))
    argv = ['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups', '--',
            os.path.join(BIN_DIR, 'ansible-playbook'), playbook, '-i', os.path.join(REPO_ROOT, 'inventories', 'local')]
    completed = subprocess.run(argv, cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=300, check=False)
    try:
        report = json.loads(completed.stdout)
    except ValueError:
        raise AssertionError('ansible-playbook as nobody printed no JSON (rc %d):\n%s\n%s'
                             % (completed.returncode, completed.stdout[-3000:], completed.stderr[-3000:])) from None
    return PlaybookRun(completed, report)


def age(path, days):
    """Set a file's modification time ``days`` in the past."""
    moment = time.time() - days * 86400
    os.utime(path, (moment, moment))

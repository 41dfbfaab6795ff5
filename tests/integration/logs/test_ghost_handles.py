"""Ghost handles held by real processes: one entry per deleted file, allocated bytes, safe and idempotent truncation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.ghosts import handle_ghosts

MIB = 1024 * 1024
# Opens the file as the arguments say, writes, says "ready", then on each line of stdin writes that many bytes.
HOLDER = r'''
import os, sys
path, mode, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == 'tmpfile':
    fds = [os.open(path, os.O_TMPFILE | os.O_RDWR, 0o600)]
elif mode == 'twice':
    fds = [os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), os.open(path, os.O_RDONLY)]
else:  # a writer without O_APPEND: after a truncation it goes on writing at its old offset
    fds = [os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)]
os.write(fds[0], b'x' * size)
print(' '.join(str(fd) for fd in fds), flush=True)
for line in sys.stdin:
    os.write(fds[0], b'y' * int(line))
    print('wrote', flush=True)
'''


class Process:
    def __init__(self, path, mode, size):
        self.process = subprocess.Popen([sys.executable, '-c', HOLDER, path, mode, str(size)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.fds = [int(fd) for fd in self.process.stdout.readline().split()]
        self.pid = self.process.pid

    def write(self, size):
        self.process.stdin.write('%d\n' % size)
        self.process.stdin.flush()
        assert self.process.stdout.readline() == 'wrote\n'

    def stop(self):
        self.process.stdin.close()
        self.process.wait(10)


@pytest.fixture
def start():
    started = []

    def run(path, mode, size):
        started.append(Process(path, mode, size))
        return started[-1]
    yield run
    for process in started:
        process.stop()


def ghosts_of(holder, scope, paths, action='report', check_mode=False):
    """The ghosts held through ``holder``'s own descriptors (not those it inherited, like pytest's captured stderr)."""
    actions, diff = [], []
    found = handle_ghosts(scope, action, check_mode, paths, [], actions, diff)
    mine = [g for g in found if any(h['pid'] == holder.pid and h['fd'] in holder.fds for h in g['holders'])]
    return mine, [a for a in actions if a['pid'] == holder.pid and a['fd'] in holder.fds]


def test_one_file_held_through_two_descriptors_is_one_entry(tmp_path, start):
    log = str(tmp_path / 'app.log')
    holder = start(log, 'twice', 100 * MIB)
    os.unlink(log)
    ghosts, dummy = ghosts_of(holder, 'logs', [str(tmp_path / '*.log')])
    assert len(ghosts) == 1
    assert [(h['pid'], h['fd']) for h in ghosts[0]['holders']] == [(holder.pid, fd) for fd in sorted(holder.fds)]
    assert ghosts[0]['bytes_held'] == 100 * MIB                 # 100 MiB held, not 200


def test_an_o_tmpfile_file_is_never_a_log_and_never_truncated(tmp_path, start):
    holder = start(str(tmp_path), 'tmpfile', 10 * MIB)
    assert ghosts_of(holder, 'logs', [str(tmp_path / '*')], 'truncate')[0] == []
    ghosts, actions = ghosts_of(holder, 'all', [str(tmp_path / '*')], 'truncate')
    assert len(ghosts) == 1 and ghosts[0]['anonymous'] is True and ghosts[0]['truncatable'] is False
    assert actions == [] and ghosts[0]['status'] == 'reported'
    assert os.stat('/proc/%d/fd/%d' % (holder.pid, holder.fds[0])).st_size == 10 * MIB


def test_a_deleted_file_outside_paths_is_reported_not_truncated(tmp_path, start):
    other = str(tmp_path / 'cache.db')
    holder = start(other, 'twice', MIB)
    os.unlink(other)
    ghosts, actions = ghosts_of(holder, 'all', [str(tmp_path / '*.log')], 'truncate')
    assert len(ghosts) == 1 and ghosts[0]['truncatable'] is False and actions == []
    assert os.stat('/proc/%d/fd/%d' % (holder.pid, holder.fds[0])).st_size == MIB


def test_truncating_a_sparse_writers_file_is_idempotent(tmp_path, start):
    log = str(tmp_path / 'worker.log')
    holder = start(log, 'plain', 50 * MIB)
    os.unlink(log)
    paths = [str(tmp_path / '*.log')]
    plan, actions = ghosts_of(holder, 'logs', paths, 'truncate', check_mode=True)
    assert actions[0]['status'] == 'planned' and plan[0]['bytes_held'] == 50 * MIB
    done, actions = ghosts_of(holder, 'logs', paths, 'truncate')
    assert [a['status'] for a in actions] == ['done']
    holder.write(4096)                                          # at offset 50 MiB: a sparse file
    fd_path = '/proc/%d/fd/%d' % (holder.pid, holder.fds[0])
    assert os.stat(fd_path).st_size == 50 * MIB + 4096
    again, actions = ghosts_of(holder, 'logs', paths, 'truncate')
    assert again[0]['size_bytes'] == 50 * MIB + 4096 and again[0]['bytes_held'] <= 64 * 1024
    assert [a['status'] for a in actions] == ['done']           # 4 KiB freed: a change
    last, actions = ghosts_of(holder, 'logs', paths, 'truncate')
    assert last[0]['bytes_held'] == 0 and actions == []         # nothing left to free: no change

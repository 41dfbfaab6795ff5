"""Case 11: a log file is deleted while a process keeps writing to it (a ghost handle).

A real writer process appends to ``logs/worker.log``; the file is removed
while it is open, and the process goes on writing into the deleted inode.
daily.yml's log oversight must report it: the process's pid, the descriptor,
the path it had and the bytes it holds on the disk, in the task's result and
in the maintenance log. The default ``ghost_action: report`` must not touch
the held file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import format_size
from tests.harness import faults, faults_fs, faults_process

BEFORE_DELETE = 200000
AFTER_DELETE = 100000

# Writes, waits for the test to delete its log, writes on into the deleted file, says so, then holds it open.
WRITER = r'''
import os, sys, time
path, go, done = sys.argv[1:4]
log = open(path, 'a')
log.write('x' * %d); log.flush()
while not os.path.exists(go):
    time.sleep(0.02)
log.write('y' * %d); log.flush()
open(done, 'w').close()
time.sleep(600)
''' % (BEFORE_DELETE, AFTER_DELETE)


def allocated_bytes(pid, path):
    """Allocated bytes of the deleted ``path`` that process ``pid`` still holds open."""
    fd_dir = '/proc/%d/fd' % pid
    for fd in os.listdir(fd_dir):
        if os.readlink(os.path.join(fd_dir, fd)) == path + ' (deleted)':
            return os.stat(os.path.join(fd_dir, fd)).st_blocks * 512
    raise AssertionError('pid %d holds no deleted %s' % (pid, path))


def test_ghost_handle_reported_with_pid_and_bytes(sandbox, reliability, tmp_path):
    reliability.describe(
        '11-ghost-log-handle',
        'logs/worker.log deleted while a running process writes to it (it goes on writing into the deleted file)',
        'daily.yml reports the ghost handle: pid, descriptor, former path and bytes held, in the result and in the '
        'maintenance log; the held file is left as it is (ghost_action report)')
    box = sandbox
    path = os.path.join(box.root, 'logs', 'worker.log')
    go, done = str(tmp_path / 'go'), str(tmp_path / 'done')
    writer = subprocess.Popen([sys.executable, '-c', WRITER, path, go, done], stdin=subprocess.DEVNULL)
    try:
        faults_process.wait_for(lambda: os.path.exists(path) and os.path.getsize(path) == BEFORE_DELETE, 30, 'the writer')
        before = faults_fs.file_tree(os.path.join(box.root, 'logs'))
        os.unlink(path)
        open(go, 'w').close()
        faults_process.wait_for(lambda: os.path.exists(done), 30, 'the writer writing into the deleted file')
        # What the deleted file really holds on disk: its allocated blocks (what truncating it would free).
        held = allocated_bytes(writer.pid, path)
        assert held >= BEFORE_DELETE + AFTER_DELETE

        run = box.play('daily.yml', extra_vars=dict(health_check_probes=faults.steady_probes(box)))
        assert run.rc == 0, run.stderr[-3000:]
        audit = run.result('Audit the logs, find ghost handles, review errors')
        ghosts = [g for g in audit['ghost_handles'] if g['pid'] == writer.pid]
        assert len(ghosts) == 1, audit['ghost_handles']
        ghost = ghosts[0]
        assert ghost['path'] == path and ghost['bytes_held'] == held and ghost['status'] == 'reported'
        assert ghost['process'] == os.path.basename(sys.executable)[:15] and isinstance(ghost['fd'], int)
        holder = '1 ghost handle holding %s (pid %d %s fd %d: %s %s)' % (
            format_size(held), writer.pid, ghost['process'], ghost['fd'], path, format_size(held))
        assert holder in audit['summary']
        assert audit['metrics']['ghost_handles'] == 1 and audit['metrics']['ghost_bytes_held'] == held

        # The maintenance log keeps the handle with its pid and bytes.
        event = [e for e in faults.log_events(box, 'task') if e['task'].endswith('Audit the logs, find ghost handles, '
                                                                                 'review errors')][-1]
        assert holder in event['summary']
        assert event['items']['ghost_handles'] == [dict(name=path, status='reported',
                                                        metrics=dict(size_bytes=BEFORE_DELETE + AFTER_DELETE))]
        with open(os.path.join(box.maintenance_log_dir, 'MAINTENANCE_LOG.md')) as handle:
            assert holder in handle.read()

        # Reported, not touched: the writer's file still holds every byte.
        fd_path = '/proc/%d/fd/%d' % (writer.pid, ghost['fd'])
        assert os.stat(fd_path).st_size == BEFORE_DELETE + AFTER_DELETE and os.stat(fd_path).st_nlink == 0
        after = faults_fs.file_tree(os.path.join(box.root, 'logs'))
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=30)
    # worker.log was deleted by the fault itself, not by the run: only the other logs count as data here.
    before.pop(path)
    reliability.data_lost_bytes = faults_fs.lost_bytes(before, after)
    reliability.observed = (
        'reported in the result: pid, process, fd, former path logs/worker.log, %d bytes held; the summary line in '
        'maintenance.jsonl and MAINTENANCE_LOG.md names them too ("1 ghost handle holding 293.0 KiB (pid N python3 fd '
        'N: .../worker.log 293.0 KiB)"); the held file was not truncated' % held)
    assert reliability.data_lost_bytes == 0

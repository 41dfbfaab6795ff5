"""Process faults and waits: find a process by its command line, kill or signal it at the right moment, wait.

They act on real processes (the suite runs as root); nothing here fakes a result.
"""

from __future__ import annotations

import os
import signal
import threading
import time


def process_argv(pid):
    """The argv of process ``pid`` (empty when it is gone or a kernel thread)."""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return [part.decode(errors='replace') for part in handle.read().split(b'\0') if part]
    except OSError:
        return []


def find_processes(predicate):
    """PIDs of the processes whose argv satisfies ``predicate``."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit() and int(entry) != os.getpid():
            argv = process_argv(int(entry))
            if argv and predicate(argv):
                found.append(int(entry))
    return found


def bytes_written(pid):
    """Bytes the process wrote so far (``wchar`` of /proc/<pid>/io), or None when it is gone."""
    try:
        with open('/proc/%d/io' % pid) as handle:
            for line in handle:
                if line.startswith('wchar:'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def is_pg_dump_of(port):
    """A predicate: pg_dump connecting to ``port`` (so another cluster's dump on this machine is never touched)."""
    def predicate(argv):
        if os.path.basename(argv[0]) != 'pg_dump':
            return False
        return any(argv[i] == '-p' and argv[i + 1] == str(port) for i in range(len(argv) - 1)) or \
            '--port=%d' % port in argv
    return predicate


class Watcher(threading.Thread):
    """Polls until ``ready()`` returns something true, then calls ``act(value)`` once; gives up after ``timeout_s``.

    ``fired`` holds what ``act`` returned (None when it never fired), ``error`` any exception of the thread.
    """

    def __init__(self, ready, act, timeout_s=120.0, interval_s=0.01):
        super().__init__(daemon=True)
        self.ready, self.act, self.timeout_s, self.interval_s = ready, act, timeout_s, interval_s
        self.fired = None
        self.error = None
        self._halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.timeout_s
        try:
            while not self._halt.is_set() and time.monotonic() < deadline:
                value = self.ready()
                if value:
                    self.fired = self.act(value)
                    return
                time.sleep(self.interval_s)
        except Exception as exc:  # pylint: disable=broad-except  # reported by the test through .error
            self.error = exc

    def stop(self):
        self._halt.set()
        self.join(timeout=30)


def kill_pg_dump_mid_stream(port, min_bytes):
    """A Watcher that SIGKILLs the pg_dump of ``port`` once it has written ``min_bytes`` to its output.

    ``fired`` becomes ``dict(pid=, argv=, bytes_written=)``.
    """
    def ready():
        for pid in find_processes(is_pg_dump_of(port)):
            written = bytes_written(pid)
            if written is not None and written >= min_bytes:
                return pid, written
        return None

    def act(value):
        pid, written = value
        argv = process_argv(pid)
        os.kill(pid, signal.SIGKILL)
        return dict(pid=pid, argv=argv, bytes_written=written)

    return Watcher(ready, act)


def _process_stats():
    """``(pid, fields of /proc/<pid>/stat after the command name)`` of every process there is right now."""
    for entry in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/stat' % entry) as handle:
                yield int(entry), handle.read().rsplit(')', 1)[1].split()
        except OSError:
            continue  # gone meanwhile


def session_pids(sid):
    """Pids of the live (not zombie) processes of session ``sid``."""
    return [pid for pid, fields in _process_stats() if int(fields[3]) == sid and fields[0] != 'Z']


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll ``predicate`` until it is true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('timed out after %s s waiting for %s' % (timeout, what))


def wait_until(predicate, what, timeout=60):
    """:func:`wait_for` in the order the Docker tests read best: what to wait for, then how long at most."""
    return wait_for(predicate, timeout, what, interval=0.2)

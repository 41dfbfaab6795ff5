"""Tools of fault cases 01-06: processes found and killed by their command line, playbooks run side by side,
snapshots re-verified, a small filesystem mounted as the backup directory.

They act on real processes and real mounts (the suite runs as root); nothing here fakes a result.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import subprocess
import threading
import time

import psycopg2
import psycopg2.errors

from tests.harness import faults
from tests.harness.playbook import BIN_DIR, REPO_ROOT, PlaybookRun, ansible_env, run_tasks


# -- processes ------------------------------------------------------------------------------

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


# -- playbooks ------------------------------------------------------------------------------

# The host's health is not what these cases test, and the shared 2-core machine's load probe is often
# unhealthy: the health check reports, it does not fail the runs.
CASE_VARS = dict(health_check_fail_on='never')


def play(box, name, **extra_vars):
    """faults.play with CASE_VARS."""
    return faults.play(box, name, extra_vars=dict(CASE_VARS, **extra_vars))


def start_play(box, name, extra_vars=None):
    """Start ``playbooks/<name>`` against the sandbox as faults.play would run it, without waiting for it."""
    variables = faults.sandbox_vars(box)
    variables.update(CASE_VARS)
    variables.update(extra_vars or {})
    argv = [os.path.join(BIN_DIR, 'ansible-playbook'), os.path.join(REPO_ROOT, 'playbooks', name),
            '-i', os.path.join(REPO_ROOT, 'inventories', 'local'), '-e', json.dumps(variables)]
    env = ansible_env(dict(ENGINEROOM_MAINTENANCE_LOG_DIR=faults.maintenance_log_dir(box)))
    return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish_play(process, timeout=300):
    """Wait for a playbook started by :func:`start_play`; its PlaybookRun."""
    stdout, stderr = process.communicate(timeout=timeout)
    completed = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    try:
        report = json.loads(stdout)
    except ValueError:
        raise AssertionError('ansible-playbook printed no JSON (rc %d):\n%s\n%s'
                             % (process.returncode, stdout[-3000:], stderr[-3000:])) from None
    return PlaybookRun(completed, report)


def failed_tasks(run):
    """``[(task name without the role prefix, msg)]`` of the tasks that failed (ignored failures left out)."""
    return [(task['_task'].split(' : ')[-1], task.get('msg', '')) for task in run.tasks
            if task.get('failed') and not task.get('ignore_errors')]


# -- snapshots --------------------------------------------------------------------------------

def artifacts(dest, tier=None):
    """Published artifacts (those with a manifest) in ``dest``, oldest name first."""
    found = sorted(path[:-len('.manifest.json')] for path in glob.glob(os.path.join(dest, '*.manifest.json')))
    return [path for path in found if tier is None or '-%s-' % tier in os.path.basename(path)]


def leftovers(dest):
    """Hidden temporary files or directories a snapshot run leaves in ``dest`` (``.<name>.tmp``)."""
    return sorted(name for name in os.listdir(dest) if name.startswith('.') and '.tmp' in name)


def verify(box, paths, tier='database'):
    """Re-verify each snapshot in ``paths`` with snapshot_archive state=verified; ``{path: (ok, message)}``."""
    tasks = [dict(name='verify %s' % os.path.basename(path), ignore_errors=True,
                  **{'engineroom.maintenance.snapshot_archive': dict(
                      state='verified', tier=tier, database='app', dest=os.path.dirname(path), which=path)})
             for path in paths]
    run = run_tasks(tasks, env=dict(ENGINEROOM_MAINTENANCE_LOG_DIR=os.path.join(box.root, 'verify-log')))
    outcome = {}
    for path in paths:
        result = run.result('verify %s' % os.path.basename(path))
        entries = result.get('verified') or [dict(ok=False, message=result.get('msg', ''))]
        outcome[path] = (not result.get('failed') and all(e['ok'] for e in entries), entries[0]['message'])
    return outcome


# -- database ---------------------------------------------------------------------------------

def add_ballast(cluster, rows, dead_fraction=0.0):
    """``ballast.rows`` in the app database: ``rows`` rows of incompressible text, outside the application's
    ``public`` schema (so table_fingerprints does not include it), with ``dead_fraction`` of them deleted
    again to leave dead tuples for VACUUM."""
    cluster.execute(
        'CREATE SCHEMA IF NOT EXISTS ballast; '
        'CREATE TABLE ballast.rows AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body '
        'FROM generate_series(1, %d) g' % rows, dbname='app')
    if dead_fraction:
        cluster.execute('DELETE FROM ballast.rows WHERE id %% 100 < %d' % int(dead_fraction * 100), dbname='app')


def role_read_only(cluster, role='app'):
    """The role's own default_transaction_read_only (role-wide), or None when it has none."""
    config = cluster.execute('SELECT rolconfig FROM pg_roles WHERE rolname = %s', (role,))[0][0] or []
    for item in config:
        key, dummy, value = item.partition('=')
        if key == 'default_transaction_read_only':
            return value
    return None


def app_can_write(cluster):
    """Whether a new session of the application role can write: an UPDATE in a transaction rolled back."""
    conn = cluster.connect('app', user='app')
    try:
        with conn.cursor() as cursor:
            cursor.execute('SHOW default_transaction_read_only')
            setting = cursor.fetchone()[0]
            try:
                cursor.execute('UPDATE customers SET email = email WHERE id = 1')
                return setting == 'off'
            except psycopg2.errors.ReadOnlySqlTransaction:
                return False
            finally:
                conn.rollback()
    finally:
        conn.close()


# -- filesystems --------------------------------------------------------------------------------

@contextlib.contextmanager
def mounted(target, *options, fstype='tmpfs', source='tmpfs'):
    """Mount ``source`` on ``target`` for the block (root only); always unmounted again, lazily if busy."""
    os.makedirs(target, exist_ok=True)
    argv = ['mount'] + (['-t', fstype] if fstype else []) + (['-o', ','.join(options)] if options else []) + [
        source, target]
    subprocess.run(argv, check=True, capture_output=True)
    try:
        yield target
    finally:
        if subprocess.run(['umount', target], check=False, capture_output=True).returncode != 0:
            subprocess.run(['umount', '-l', target], check=False, capture_output=True)


def fill(directory, name='filler', chunk=1 << 20):
    """Write zeros to ``directory/name`` until the filesystem is full; the bytes written."""
    path = os.path.join(directory, name)
    written = 0
    block = b'\0' * chunk
    with open(path, 'wb', buffering=0) as handle:
        while True:
            try:
                written += handle.write(block)
            except OSError:
                break
    # What is left is less than a block: halve the writes down to one byte, to the very end.
    with open(path, 'ab', buffering=0) as handle:
        size = 4096
        while size:
            try:
                written += handle.write(b'\0' * size)
            except OSError:
                size //= 2
    return written


def table_contents(cluster):
    """``{table: md5 of its rows}`` from faults.table_fingerprints, without the on-disk size.

    The size (pg_total_relation_size) moves without any row changing: autovacuum adds the visibility
    and free-space maps of a table it visits. The rows are what a fault must not lose.
    """
    return dict((table, digest) for table, (dummy, digest) in faults.table_fingerprints(cluster).items())


@contextlib.contextmanager
def read_only(directory):
    """``directory`` bind-mounted onto itself read-only for the block: even root gets EROFS writing there."""
    subprocess.run(['mount', '--bind', directory, directory], check=True, capture_output=True)
    try:
        subprocess.run(['mount', '-o', 'remount,ro,bind', directory], check=True, capture_output=True)
        yield directory
    finally:
        if subprocess.run(['umount', directory], check=False, capture_output=True).returncode != 0:
            subprocess.run(['umount', '-l', directory], check=False, capture_output=True)

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance lock file: one JSON record whose existence means "maintenance is on".

Why a file and not a process: a maintenance run spans many Ansible tasks and
module processes, and a run that crashes must leave the lock behind, visible,
with the time after which it may be taken over (``expires_at``). So the lock
is a record on disk, and each change to it happens under a short ``flock`` of
its directory (released by the kernel when a process dies), which makes the
read-decide-write of acquire, steal and release one step between concurrent
runs. A new record appears with ``link()`` of a complete, fsynced temporary
file: the path either does not exist or holds a whole record, never an empty
or half-written one, and ``link`` fails when a record is already there.

Private to the collection: used by the maintenance_lock module and by the
``maintenance`` probe of health_probe.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from datetime import timedelta

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc, parse_iso_utc
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import (
    atomic_write,
    check_writable_dir,
    fsync_dir,
)

SCHEMA_VERSION = 1
DEFAULT_LOCK_FILE = '/var/lib/engineroom/maintenance.json'
REQUIRED_KEYS = ('schema_version', 'owner', 'started_at', 'expires_at')
FLAG_MARKER = 'engineroom_maintenance_flag'


class LockCorrupt(Exception):
    """The lock file exists but does not hold a lock record this collection can read."""


def new_record(owner, reason, run_id, controller, host, ttl_s, now, readonly_roles=None, flag_file=None,
               database=None):
    """A fresh lock record; ``schema_version`` first, as for every state file of the collection."""
    return dict(
        schema_version=SCHEMA_VERSION,
        reason=reason,
        owner=owner,
        run_id=run_id,
        controller=controller,
        host=host,
        started_at=iso_utc(now),
        expires_at=iso_utc(now + timedelta(seconds=ttl_s)),
        ttl_s=ttl_s,
        readonly_roles=list(readonly_roles or []),
        flag_file=flag_file,
        database=database,
    )


def seconds_left(record, now):
    """Seconds until the record expires (negative once expired)."""
    return int((parse_iso_utc(record['expires_at']) - now).total_seconds())


def is_expired(record, now):
    return seconds_left(record, now) <= 0


def parse_record(data, path):
    """Decode the bytes of a lock file, or raise :class:`LockCorrupt` saying what is wrong."""
    if not data.strip():
        raise LockCorrupt('lock file %s is empty' % path)
    try:
        record = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LockCorrupt('lock file %s is not a JSON lock record (%s)' % (path, exc)) from None
    if not isinstance(record, dict):
        raise LockCorrupt('lock file %s holds JSON but not a lock record (a %s)' % (path, type(record).__name__))
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise LockCorrupt('lock file %s lacks %s' % (path, ', '.join(missing)))
    if not isinstance(record['schema_version'], int) or record['schema_version'] > SCHEMA_VERSION:
        raise LockCorrupt('lock file %s has schema_version %r, this collection reads up to %d (written by a newer '
                          'version?)' % (path, record['schema_version'], SCHEMA_VERSION))
    try:
        parse_iso_utc(record['expires_at'])
        parse_iso_utc(record['started_at'])
    except (TypeError, ValueError):
        raise LockCorrupt('lock file %s has unreadable timestamps (started_at %r, expires_at %r)'
                          % (path, record['started_at'], record['expires_at'])) from None
    record.setdefault('readonly_roles', [])
    return record


def read_record(path):
    """The record in ``path``, or None when there is no lock file."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    return parse_record(data, path)


def record_bytes(record):
    return (json.dumps(record, indent=2) + '\n').encode('utf-8')


def lock_dir_problem(path, create_dirs):
    """None when the lock file's directory is usable, else the reason (creating it when allowed).

    A created directory is 0755, as DESIGN.md asks for state directories.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(directory):
        if not create_dirs:
            return 'directory %s does not exist: create it (root-owned, 0755) or set create_dirs: true' % directory
        try:
            os.makedirs(directory, mode=0o755)
            os.chmod(directory, 0o755)
        except OSError as exc:
            return 'directory %s could not be created: %s' % (directory, exc.strerror or exc)
    return check_writable_dir(directory)


def lock_dir_warning(path):
    """A warning when others than the owner may write the lock file's directory, else None.

    Anyone who can write there can fake, replace or remove the lock; DESIGN.md
    asks for root-owned 0755 state directories.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(directory).st_mode
    except OSError:
        return None
    if mode & 0o022:
        return ('directory %s of the lock file is writable by group or others (mode %04o): they can fake or remove '
                'the maintenance lock; make it root-owned 0755' % (directory, mode & 0o7777))
    return None


@contextlib.contextmanager
def guarded(path):
    """Hold an exclusive ``flock`` on the lock file's directory for one read-decide-write step.

    The directory rather than a side file: nothing is left behind, and the
    kernel drops the lock when the holder dies, so a crash never blocks others.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def create_record(path, record, mode=0o644):
    """Create the lock file with ``record`` unless one exists; True when created.

    The record is written and fsynced under a temporary name first, then
    linked to ``path``: ``link`` is atomic and fails with EEXIST, like
    ``O_CREAT|O_EXCL``, but the file appears complete.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(record_bytes(record))
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        try:
            os.link(tmp_path, path)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
    finally:
        os.unlink(tmp_path)
    fsync_dir(directory)
    return True


def replace_record(path, record, mode=0o644):
    """Replace an existing record atomically (extend, steal, add roles); call under :func:`guarded`."""
    atomic_write(path, record_bytes(record), mode=mode)


def remove_file(path):
    """Remove ``path`` durably; True when it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return True


# --- the plain flag file a web server tests with `if (-f ...)` ----------------------

def flag_bytes(record):
    """What the flag file holds: enough for an operator who finds it to know whose it is."""
    flag = {FLAG_MARKER: True}
    for key in ('owner', 'reason', 'run_id', 'started_at', 'expires_at'):
        flag[key] = record.get(key)
    return (json.dumps(flag, sort_keys=True) + '\n').encode('utf-8')


def flag_state(path):
    """``absent``, ``ours`` (written by this collection) or ``foreign`` (anything else)."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read(65536)
    except FileNotFoundError:
        return 'absent'
    except OSError:
        return 'foreign'
    try:
        flag = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return 'foreign'
    return 'ours' if isinstance(flag, dict) and flag.get(FLAG_MARKER) is True else 'foreign'


def flag_current(path, record):
    """True when the flag file already holds what :func:`flag_bytes` would write."""
    try:
        with open(path, 'rb') as handle:
            return handle.read() == flag_bytes(record)
    except OSError:
        return False


def write_flag(path, record):
    atomic_write(path, flag_bytes(record), mode=0o644)


# --- deciding what an acquisition does ------------------------------------------------

def acquire_outcome(current, owner, now, steal_expired):
    """What ``state=present`` by ``owner`` does with the ``current`` record (None when free).

    ``create`` (no lock), ``own`` (already ours), ``steal`` (another owner's
    expired lock and steal_expired), ``busy`` (held by another owner).
    """
    if current is None:
        return 'create'
    if current.get('owner') == owner:
        return 'own'
    if steal_expired and is_expired(current, now):
        return 'steal'
    return 'busy'


def describe_holder(record, now):
    """One line about who holds a lock, for messages and the summary."""
    left = seconds_left(record, now)
    when = ('expired %d s ago at %s' % (-left, record['expires_at']) if left <= 0
            else 'expires in %d s at %s' % (left, record['expires_at']))
    return '%s since %s (reason: %s; run_id %s; %s)' % (
        record.get('owner'), record.get('started_at'), record.get('reason'), record.get('run_id'), when)

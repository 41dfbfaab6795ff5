# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Append-only log files that several ansible-playbook runs share.

The maintenance log is written by every run on a controller, and under AWX by
several jobs at once into one mounted directory. Each record is appended with
one ``write`` on an ``O_APPEND`` descriptor while an exclusive ``flock`` on a
lock file in the same directory is held, so records never interleave or tear.
Size-based rotation renames ``name`` -> ``name.1`` -> ``name.2`` ... under the
same lock; the lock lives in its own file because renaming a locked file would
let the next writer lock a different inode.
"""

from __future__ import annotations

import fcntl
import os
import re

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import atomic_write

LOCK_NAME = '.maintenance-log.lock'
# The maintenance log's two files (written by the maintenance_log callback, read by maintenance_report).
JSONL_NAME = 'maintenance.jsonl'
MARKDOWN_NAME = 'MAINTENANCE_LOG.md'
FILE_MODE = 0o640


class LogError(Exception):
    """The log directory or a destination beside it cannot be used; the message says what to do."""


class DirectoryLock:
    """The exclusive lock of a directory's log files: opened once, taken around each record.

    ``with lock:`` blocks until the lock is granted. Keeping the descriptor open spares
    two system calls per record, which matters on runs of thousands of task results.
    """

    def __init__(self, directory):
        self.fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, FILE_MODE)

    def __enter__(self):
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self):
        os.close(self.fd)


def rotate(path, keep):
    """Shift ``path`` to ``path.1`` and older copies up by one, keeping ``keep`` old files.

    The caller holds the directory lock. With ``keep`` 0 the file is simply removed.
    """
    for number in sorted(rotated_numbers(path), reverse=True):
        source = '%s.%d' % (path, number)
        if number >= keep:
            os.unlink(source)
        else:
            os.rename(source, '%s.%d' % (path, number + 1))
    if keep > 0:
        os.rename(path, path + '.1')
    else:
        os.unlink(path)


def append_record(path, data, max_bytes=0, keep=0, header=b''):
    """Append ``data`` (bytes) to ``path``; the caller holds the directory lock.

    When ``max_bytes`` is set and the file would grow beyond it, the file is
    rotated first (a record is never split across files). ``header`` starts
    every new file.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        size = os.fstat(fd).st_size
        if max_bytes and size > len(header) and size + len(data) > max_bytes:
            os.close(fd)
            fd = None
            rotate(path, keep)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
            size = 0
        if size == 0 and header:
            data = header + data
        elif size and os.pread(fd, 1, size - 1) != b'\n':
            # A torn last line (a writer killed mid-record, a full disk) must not swallow this record too.
            data = b'\n' + data
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        if fd is not None:
            os.close(fd)


def rotated_numbers(path):
    """The numbers N of the existing ``path.N`` rotated copies."""
    directory, name = os.path.split(path)
    pattern = re.compile(r'^%s\.([0-9]+)$' % re.escape(name))
    numbers = []
    for entry in os.listdir(directory or '.'):
        match = pattern.match(entry)
        if match:
            numbers.append(int(match.group(1)))
    return numbers


def history_paths(path):
    """Every existing file of the log ``path``, oldest first (``path.N`` ... ``path.1``, ``path``)."""
    paths = ['%s.%d' % (path, number) for number in sorted(rotated_numbers(path), reverse=True)]
    if os.path.exists(path):
        paths.append(path)
    return paths


def write_if_changed(dest, data, check_mode=False):
    """Write ``data`` to ``dest`` atomically when its content differs; return whether it did (or would).

    A report depends only on the log, so the same history leaves the file alone. LogError when it cannot be written.
    """
    try:
        with open(dest, 'rb') as handle:
            changed = handle.read() != data
    except OSError:
        changed = True
    if changed and not check_mode:
        try:
            atomic_write(dest, data, mode=0o644)
        except OSError as exc:
            raise LogError('dest %s could not be written: %s' % (dest, exc.strerror or exc)) from None
    return changed

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Temporary files of snapshot runs: created locked, and removed by the next run once their writer is dead.

A run writes ``.<artifact name>.<random>.tmp`` files (and staging
directories of that shape) in dest and holds an exclusive ``flock`` on each
for as long as it lives. A run killed mid-write (OOM killer, reboot, lost
controller) leaves them behind; the kernel releases its locks with the
process. The next run finds every such name whose lock it can take, so no
live writer holds it, removes it and reports it with its size. A temp file
of a live concurrent run stays locked and is never touched.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import tempfile

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import parse_artifact_name

TEMP_NAME = re.compile(r'^\.(?P<artifact>.+)\.[A-Za-z0-9_]+\.tmp$')


def _lock(path):
    """An fd of ``path`` holding an exclusive flock, or None when another process holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def create_temp_file(dest, name):
    """A new temp file for artifact ``name`` in ``dest``: (path, fd holding its lock until closed)."""
    fd, path = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp', dir=dest)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return path, fd


def create_temp_dir(dest, name):
    """A new staging directory for artifact ``name`` in ``dest``: (path, fd holding its lock until closed)."""
    path = tempfile.mkdtemp(prefix='.%s.' % name, suffix='.tmp', dir=dest)
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return path, fd


def _size(path, info):
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass
    return total


def remove_stale(dest, check_mode=False):
    """Remove the temp files and directories of dead runs in ``dest``; return [dict(path, bytes)] (check mode: list)."""
    found = []
    try:
        names = sorted(os.listdir(dest))
    except OSError:
        return found
    for name in names:
        match = TEMP_NAME.match(name)
        if not match or parse_artifact_name(match.group('artifact')) is None:
            continue
        path = os.path.join(dest, name)
        try:
            info = os.lstat(path)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                continue
            fd = _lock(path)
        except OSError:
            continue  # gone meanwhile (its writer finished), or not ours to open
        if fd is None:
            continue  # a live run writes it
        try:
            found.append(dict(path=path, bytes=_size(path, info)))
            if not check_mode:
                if stat.S_ISDIR(info.st_mode):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        finally:
            os.close(fd)
    return found

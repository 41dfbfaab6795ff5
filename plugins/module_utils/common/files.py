# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that are either complete or absent.

Every artifact and state file of the collection is written here: a temporary
file in the destination directory (same filesystem, so the rename is atomic),
flushed and fsynced, renamed over the target, then the directory fsynced so
the rename itself survives a crash. A failed write removes its temporary file
and leaves any previous version untouched.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pwd
import tempfile

HASH_CHUNK_BYTES = 1024 * 1024


def _user_name():
    try:
        return 'user %s' % pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return 'uid %d' % os.geteuid()


def check_writable_dir(path):
    """Return None when files can be created in ``path``, else the reason why not.

    Used before any work starts, so that a bad destination fails fast and
    changes nothing. It creates and removes a probe file rather than asking
    ``os.access``, which says yes to root even on a read-only filesystem.
    """
    if not os.path.exists(path):
        return 'directory %s does not exist' % path
    if not os.path.isdir(path):
        return '%s is not a directory' % path
    try:
        fd, probe_path = tempfile.mkstemp(prefix='.engineroom-write-check.', suffix='.tmp', dir=path)
    except OSError as exc:
        reason = 'directory %s is not writable: %s' % (path, exc.strerror or exc)
        if os.geteuid() != 0:
            reason += ' (the module runs as %s: run the task with become: true, or give that user the directory)' % _user_name()
        return reason
    os.close(fd)
    os.unlink(probe_path)
    return None


def fsync_dir(path):
    """Make a rename or create in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data, mode=0o644):
    """Atomically replace ``path`` with ``data`` (bytes or str, str is UTF-8).

    The temporary file is named ``.<name>.*.tmp`` in the same directory so it
    never matches an artifact pattern, and is removed when anything fails.
    """
    if isinstance(data, str):
        data = data.encode('utf-8')
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.rename(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def sha256_stream(stream, chunk_bytes=HASH_CHUNK_BYTES):
    """Return (hex digest, byte count) of a binary stream read to its end."""
    digest = hashlib.sha256()
    total = 0
    while True:
        chunk = stream.read(chunk_bytes)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


def sha256_file(path):
    """Return (hex digest, byte count) of a file."""
    with open(path, 'rb') as handle:
        return sha256_stream(handle)


def rename_no_replace(src, dst):
    """Rename ``src`` to ``dst`` only if nothing named ``dst`` exists, atomically; FileExistsError otherwise.

    ``os.rename`` silently replaces: two writers naming their artifact after the
    same second would lose one. A hard link fails on an existing name in one
    step; where the filesystem has no hard links, the check and the rename are
    separate steps (the narrow race the link closes elsewhere).
    """
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK):
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst) from None
        os.rename(src, dst)
        return
    os.unlink(src)

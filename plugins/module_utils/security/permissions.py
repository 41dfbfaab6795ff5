# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File modes under the application root: the tree walk, secret-file and world-writable findings, safe fixes.

The tree walk never follows a symbolic link and the only fixes are ``fchmod``
calls on a file descriptor opened with ``O_NOFOLLOW`` and checked to be the
inode the walk saw, so a fix cannot reach outside the application root, not
even through a link planted between the audit and the fix.
"""

from __future__ import annotations

import fnmatch
import os
import stat

from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import finding, octal

SECRET_FILE_MODES = (0o600, 0o400)


def walk(root, errors):
    """Yield (path, lstat) of every directory (root included) and regular file under ``root``.

    Symbolic links are neither followed nor reported; unreadable directories
    are recorded in ``errors`` and the walk goes on.
    """
    try:
        yield root, os.lstat(root)
    except OSError as exc:
        errors.append(dict(path=root, error=exc.strerror or str(exc)))
        return
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            errors.append(dict(path=directory, error=exc.strerror or str(exc)))
            continue
        subdirs = []
        for entry in listed:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                errors.append(dict(path=entry.path, error=exc.strerror or str(exc)))
                continue
            if stat.S_ISDIR(info.st_mode):
                subdirs.append(entry.path)
                yield entry.path, info
            elif stat.S_ISREG(info.st_mode):
                yield entry.path, info
        pending.extend(reversed(subdirs))


def matches_any(name, globs):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in globs)


def secret_file_finding(path, info):
    """A secret file whose mode is not 0600/0400, with the chmod that fixes it."""
    mode = stat.S_IMODE(info.st_mode)
    target = 0o600 if mode & 0o200 else 0o400
    if mode & 0o004:
        code, severity, what = 'secret_file_world_readable', 'high', 'is readable by every user'
    else:
        code, severity, what = 'secret_file_mode', 'medium', 'is open to its group or others'
    return finding(code, severity, 'secret file %s has mode %s and %s: it must be 0600 or 0400 (fix: chmod %s)'
                   % (path, octal(mode), what, octal(target)),
                   path=path, mode=octal(mode), fix='chmod %s' % octal(target),
                   _fix=dict(path=path, dev=info.st_dev, ino=info.st_ino, mode=mode, target=target, directory=False))


def world_writable_finding(path, info):
    mode = stat.S_IMODE(info.st_mode)
    target = mode & ~0o002
    sticky = bool(mode & stat.S_ISVTX)
    return finding('world_writable_dir', 'medium' if sticky else 'high',
                   'directory %s has mode %s: every user can %s files in it (fix: chmod %s)'
                   % (path, octal(mode), 'create' if sticky else 'create, replace and delete', octal(target)),
                   path=path, mode=octal(mode), fix='chmod %s' % octal(target),
                   _fix=dict(path=path, dev=info.st_dev, ino=info.st_ino, mode=mode, target=target, directory=True))


def apply_fix(fix):
    """chmod one file or directory the audit saw, through a descriptor, never following a link.

    Returns None when done, else why not (the inode changed since the audit, a
    hard link would carry the change outside the tree, or the system refused).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
    if fix['directory']:
        flags |= os.O_DIRECTORY
    try:
        fd = os.open(fix['path'], flags)
    except OSError as exc:
        return 'cannot open %s: %s' % (fix['path'], exc.strerror or exc)
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (fix['dev'], fix['ino']) or stat.S_IMODE(info.st_mode) != fix['mode']:
            return '%s changed since the audit: run the audit again' % fix['path']
        if not fix['directory'] and info.st_nlink > 1:
            return ('%s has %d hard links: a chmod would change every one of them, possibly outside the application root; '
                    'fix it by hand' % (fix['path'], info.st_nlink))
        os.fchmod(fd, fix['target'])
    except OSError as exc:
        return 'cannot chmod %s: %s' % (fix['path'], exc.strerror or exc)
    finally:
        os.close(fd)
    return None

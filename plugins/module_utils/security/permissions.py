# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File modes under the application root: the tree walk, the mode and ownership findings, safe fixes.

Modes are judged by their actual bits: a secret file is open when a group or
other bit is set (0700, 0400, 0200, 0000 are not); a fix only ever removes
bits (never adds), so running it twice changes nothing the second time.

The tree walk never follows a symbolic link (one leaving the tree is
reported) and the only fixes are ``fchmod`` calls on a file descriptor opened
with ``O_NOFOLLOW`` and checked to be the inode the walk saw, so a fix cannot
reach outside the application root, not even through a link planted between
the audit and the fix. Files with several hard links and files of another
owner are reported and left alone, never failed.
"""

from __future__ import annotations

import fnmatch
import os
import pwd
import stat

from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import finding, octal

GROUP_OTHER_BITS = 0o077
ACCESS_WORDS = ((0o040, 'group read'), (0o020, 'group write'), (0o010, 'group execute'),
                (0o004, 'other read'), (0o002, 'other write'), (0o001, 'other execute'))


def walk(root, errors):
    """Yield (path, lstat) of everything under ``root`` (root included), links and special files too, never following.

    Unreadable directories and entries that vanish are recorded in ``errors`` and the walk goes on.
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
        pending.extend(reversed(subdirs))


def matches_any(name, globs):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in globs)


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def fix_plan(path, info, target, directory):
    """The ``_fix`` of a finding: only ever removes bits."""
    mode = stat.S_IMODE(info.st_mode)
    return dict(path=path, dev=info.st_dev, ino=info.st_ino, mode=mode, target=target & mode, directory=directory,
                nlink=info.st_nlink, uid=info.st_uid)


def secret_file_finding(path, info):
    """A secret file with a group or other bit set, or None; the fix removes those bits."""
    mode = stat.S_IMODE(info.st_mode)
    if not mode & GROUP_OTHER_BITS:
        return None
    target = mode & ~GROUP_OTHER_BITS
    words = ', '.join(word for bit, word in ACCESS_WORDS if mode & bit)
    if mode & 0o004:
        code, severity = 'secret_file_world_readable', 'high'
    else:
        code, severity = 'secret_file_mode', 'medium'
    return finding(code, severity, 'secret file %s has mode %s (%s): only its owner may have access (fix: chmod %s)'
                   % (path, octal(mode), words, octal(target)),
                   path=path, mode=octal(mode), fix='chmod %s' % octal(target),
                   _fix=fix_plan(path, info, target, False))


def world_writable_finding(path, info, directory):
    """A world-writable directory (sticky bit noted) or file; the fix removes the other-write bit."""
    mode = stat.S_IMODE(info.st_mode)
    target = mode & ~0o002
    if directory:
        sticky = bool(mode & stat.S_ISVTX)
        return finding('world_writable_dir', 'medium' if sticky else 'high',
                       'directory %s has mode %s: every user can %s files in it%s (fix: chmod %s)'
                       % (path, octal(mode), 'create' if sticky else 'create, replace and delete',
                          ' (sticky: only their own are deleted)' if sticky else '', octal(target)),
                       path=path, mode=octal(mode), sticky=sticky, fix='chmod %s' % octal(target),
                       _fix=fix_plan(path, info, target, True))
    return finding('world_writable_file', 'high', 'file %s has mode %s: every user can change it (fix: chmod %s)'
                   % (path, octal(mode), octal(target)),
                   path=path, mode=octal(mode), fix='chmod %s' % octal(target), _fix=fix_plan(path, info, target, False))


def special_bit_findings(path, info):
    """setuid/setgid regular files: reported, never changed (a program may need them)."""
    mode = stat.S_IMODE(info.st_mode)
    found = []
    for bit, code, what in ((stat.S_ISUID, 'setuid_file', 'its owner %s' % user_name(info.st_uid)),
                            (stat.S_ISGID, 'setgid_file', 'its group')):
        if mode & bit:
            found.append(finding(code, 'high', 'file %s has mode %s: it runs with the rights of %s; an application tree '
                                 'needs none - remove the bit (chmod %s) unless it is meant' % (
                                     path, octal(mode), what, 'u-s' if bit == stat.S_ISUID else 'g-s'),
                                 path=path, mode=octal(mode)))
    return found


def owner_finding(path, info, expected_uids):
    if info.st_uid in expected_uids:
        return None
    owner = user_name(info.st_uid)
    return finding('unexpected_owner', 'medium', '%s belongs to %s, not to %s: check who put it there (chown it or add '
                   '%s to expected_owners)' % (path, owner, ', '.join(sorted(user_name(u) for u in expected_uids)), owner),
                   path=path, owner=owner)


def outside_link_finding(path, root):
    """A symbolic link whose target leaves the tree (reported, never followed), or None."""
    try:
        target = os.readlink(path)
    except OSError:
        return None
    resolved = os.path.realpath(os.path.join(os.path.dirname(path), target))
    if resolved == root or resolved.startswith(root.rstrip('/') + '/'):
        return None
    return finding('symlink_outside_root', 'low', 'symbolic link %s points outside app_root to %s: not followed; '
                   'check that it is meant' % (path, resolved), path=path, target=resolved)


def special_file_finding(path, info):
    kind = 'device' if stat.S_ISBLK(info.st_mode) or stat.S_ISCHR(info.st_mode) else \
        'FIFO' if stat.S_ISFIFO(info.st_mode) else 'socket'
    return finding('special_file', 'medium' if kind == 'device' else 'info',
                   '%s is a %s: not read; an application tree holds none - check what created it' % (path, kind),
                   path=path, file_type=kind)


def fix_refusal(fix, euid):
    """Why a fix is left to the operator (reported as skipped, never failed), or None."""
    if not fix['directory'] and fix['nlink'] > 1:
        return ('%s has %d hard links: a chmod would change every one of them, possibly outside the application root; '
                'fix it by hand' % (fix['path'], fix['nlink']))
    if euid != 0 and fix['uid'] != euid:
        return '%s belongs to %s: only its owner or root may change its mode' % (fix['path'], user_name(fix['uid']))
    return None


def apply_fix(fix):
    """chmod one file or directory the audit saw, through a descriptor, never following a link.

    Returns (error, refusal): both None when done; a refusal (hard links appeared) is reported, not failed.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
    if fix['directory']:
        flags |= os.O_DIRECTORY
    try:
        fd = os.open(fix['path'], flags)
    except OSError as exc:
        return 'cannot open %s: %s' % (fix['path'], exc.strerror or exc), None
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (fix['dev'], fix['ino']) or stat.S_IMODE(info.st_mode) != fix['mode']:
            return '%s changed since the audit: run the audit again' % fix['path'], None
        refusal = fix_refusal(dict(fix, nlink=info.st_nlink, uid=info.st_uid), os.geteuid())
        if refusal:
            return None, refusal
        os.fchmod(fd, fix['target'])
    except OSError as exc:
        return 'cannot chmod %s: %s' % (fix['path'], exc.strerror or exc), None
    finally:
        os.close(fd)
    return None, None

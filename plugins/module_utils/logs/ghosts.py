# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ghost handles: deleted files still held open by a process, and truncating them through the holder's descriptor."""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import stat


def find_ghost_handles(scope_dirs=None, anonymous=False):
    """Deleted files still held open, one entry per file (device, inode) with every holder.

    The link count comes from stat() through /proc/<pid>/fd/<n> (the open
    file itself), not from the "(deleted)" text of the link; the text is only
    used to recover the path the file had. ``bytes_held`` is what the file
    occupies on disk (allocated blocks): a sparse file left by a writer without
    O_APPEND after a truncation holds little whatever its size says. Files made
    with O_TMPFILE (``/dir/#inode``, never linked) are only listed with
    ``anonymous=True`` and are marked so; ``scope_dirs`` keeps those whose
    former path is under one of the directories.
    """
    me = os.getpid()
    by_file = {}
    for pid_name in os.listdir('/proc'):
        if not pid_name.isdigit() or int(pid_name) == me:
            continue
        fd_dir = '/proc/%s/fd' % pid_name
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # the process ended, or is not ours to look into
        for fd_name in fds:
            found = _deleted_file(os.path.join(fd_dir, fd_name))
            if found is None:
                continue
            st, original = found
            tmpfile = bool(_TMPFILE_RE.match(os.path.basename(original)))
            if (tmpfile and not anonymous) or (scope_dirs is not None and not any(_under(original, d) for d in scope_dirs)):
                continue
            holder = dict(pid=int(pid_name), process=_process_name(pid_name), fd=int(fd_name))
            entry = by_file.setdefault((st.st_dev, st.st_ino), dict(
                path=original, bytes_held=st.st_blocks * 512, size_bytes=st.st_size, anonymous=tmpfile,
                device=st.st_dev, inode=st.st_ino, holders=[]))
            entry['holders'].append(holder)
    ghosts = []
    for entry in by_file.values():
        entry['holders'].sort(key=lambda h: (h['pid'], h['fd']))
        entry.update(entry['holders'][0])  # the first holder, named in the summary and used to truncate
        ghosts.append(entry)
    ghosts.sort(key=lambda g: (g['path'], g['pid'], g['fd']))
    return ghosts


_TMPFILE_RE = re.compile(r'^#\d+$')


def _deleted_file(link):
    """(stat, former path) of the file behind a /proc fd link when it is a deleted regular file on a disk, else None."""
    try:
        st = os.stat(link)
        target = os.readlink(link)
    except OSError:
        return None
    if st.st_nlink != 0 or not stat.S_ISREG(st.st_mode):
        return None
    original = target[:-len(' (deleted)')] if target.endswith(' (deleted)') else target
    if not original.startswith('/') or original.startswith('/memfd:'):
        return None  # anonymous memory files, not files that were on a disk
    return st, original


def may_truncate(ghost, paths):
    """True when a ghost's former path is a configured log (``paths``) or one of its rotated versions, and not O_TMPFILE."""
    if ghost['anonymous']:
        return False
    stem = _VERSION_SUFFIX_RE.sub('', ghost['path'])
    return any(fnmatch.fnmatch(ghost['path'], p) or fnmatch.fnmatch(stem, p) for p in paths)


_VERSION_SUFFIX_RE = re.compile(r'(?:\.\d+|-\d{8}(?:\d{2}){0,3})(?:\.gz|\.zst|\.xz|\.bz2)?$')


def _under(path, directory):
    directory = directory.rstrip('/') + '/'
    return path.startswith(directory)


def _process_name(pid):
    try:
        with open('/proc/%s/comm' % pid) as handle:
            return handle.read().strip()
    except OSError:
        return '?'


def truncate_ghost(ghost):
    """Truncate a deleted-but-open file to 0 through its holder's descriptor: the space comes back now."""
    os.truncate('/proc/%d/fd/%d' % (ghost['pid'], ghost['fd']), 0)


def ghost_scope_dirs(paths, logs):
    """Directories whose deleted files count as deleted logs: those of the configured paths."""
    dirs = set()
    for pattern in paths:
        directory = os.path.dirname(os.path.abspath(pattern))
        if glob.has_magic(directory):
            dirs.update(os.path.dirname(p) for p in logs)
        else:
            dirs.add(directory)
    return sorted(dirs)


def handle_ghosts(scope, ghost_action, check_mode, paths, logs, actions, diff):
    """Find ghost handles in scope; with ghost_action=truncate truncate each held file that is a configured log once.

    Idempotent: a file holding no blocks is left alone, so a second run
    changes nothing (check mode plans instead).
    """
    if scope == 'none':
        return []
    ghosts = find_ghost_handles(None if scope == 'all' else ghost_scope_dirs(paths, logs), anonymous=scope == 'all')
    for ghost in ghosts:
        ghost['status'] = 'reported'
        ghost['truncatable'] = may_truncate(ghost, paths)
        del ghost['device'], ghost['inode']
        if ghost_action != 'truncate' or ghost['bytes_held'] == 0 or not ghost['truncatable']:
            continue
        action = dict(action='truncate_ghost', path=ghost['path'], pid=ghost['pid'], fd=ghost['fd'],
                      size_bytes=ghost['bytes_held'])
        if check_mode:
            ghost['status'] = action['status'] = 'planned'
        else:
            try:
                truncate_ghost(ghost)
                ghost['status'], action['status'] = 'truncated', 'done'
            except OSError as exc:
                ghost['status'] = action['status'] = 'failed'
                action['error'] = exc.strerror or str(exc)
        actions.append(action)
        holders = ', '.join('pid %d fd %d' % (h['pid'], h['fd']) for h in ghost['holders'])
        header = '%s (deleted, held by %s)' % (ghost['path'], holders)
        diff.append(dict(before_header=header, after_header=header,
                         before='%d bytes held\n' % ghost['bytes_held'], after='0 bytes held\n'))
    return ghosts

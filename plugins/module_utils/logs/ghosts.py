# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ghost handles: deleted files still held open by a process, and truncating them through the holder's descriptor."""

from __future__ import annotations

import glob
import os
import stat


def find_ghost_handles(scope_dirs=None):
    """Open files with link count 0 held by any process, optionally only those under ``scope_dirs``.

    The link count comes from stat() through /proc/<pid>/fd/<n> (the open
    file itself), not from the "(deleted)" text of the link; the text is only
    used to recover the path the file had.
    """
    me = os.getpid()
    found = []
    for pid_name in os.listdir('/proc'):
        if not pid_name.isdigit() or int(pid_name) == me:
            continue
        fd_dir = '/proc/%s/fd' % pid_name
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # the process ended, or is not ours to look into
        for fd_name in fds:
            link = os.path.join(fd_dir, fd_name)
            try:
                st = os.stat(link)
                target = os.readlink(link)
            except OSError:
                continue
            if st.st_nlink != 0 or not stat.S_ISREG(st.st_mode):
                continue
            original = target[:-len(' (deleted)')] if target.endswith(' (deleted)') else target
            if not original.startswith('/') or original.startswith('/memfd:'):
                continue  # anonymous memory files, not files that were on a disk
            if scope_dirs is not None and not any(_under(original, d) for d in scope_dirs):
                continue
            found.append(dict(pid=int(pid_name), process=_process_name(pid_name), fd=int(fd_name), path=original,
                              bytes_held=st.st_size, device=st.st_dev, inode=st.st_ino))
    found.sort(key=lambda g: (g['path'], g['pid'], g['fd']))
    return found


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
    """Find ghost handles in scope; with ghost_action=truncate truncate each held file once (planned in check mode)."""
    if scope == 'none':
        return []
    ghosts = find_ghost_handles(None if scope == 'all' else ghost_scope_dirs(paths, logs))
    truncated = set()
    for ghost in ghosts:
        ghost['status'] = 'reported'
        if ghost_action != 'truncate' or ghost['bytes_held'] == 0:
            continue
        key = (ghost['device'], ghost['inode'])
        action = dict(action='truncate_ghost', path=ghost['path'], pid=ghost['pid'], fd=ghost['fd'],
                      size_bytes=ghost['bytes_held'])
        if key in truncated:
            ghost['status'] = 'planned' if check_mode else 'truncated'
            continue  # the same file through another descriptor: already handled
        truncated.add(key)
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
        diff.append(dict(before_header='%s (deleted, held by pid %d fd %d)' % (ghost['path'], ghost['pid'], ghost['fd']),
                         after_header='%s (deleted, held by pid %d fd %d)' % (ghost['path'], ghost['pid'], ghost['fd']),
                         before='%d bytes held\n' % ghost['bytes_held'], after='0 bytes held\n'))
    for ghost in ghosts:
        del ghost['device'], ghost['inode']
    return ghosts

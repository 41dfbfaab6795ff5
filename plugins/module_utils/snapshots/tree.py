# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Walking the file trees a full archive holds: member names, exclusions, sizes and the per-file tally."""

from __future__ import annotations

import fnmatch
import os
import stat

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    HashingReader,
)


def _excluded(relative, name, patterns):
    return any(fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern) for pattern in patterns)


def arcname_for(path):
    """Member name of a source path inside a full archive: ``files/`` + the absolute path without its ``/``."""
    return 'files/' + os.path.abspath(path).lstrip('/')


def _entries(directory):
    """The names under ``directory``: (directories, other names), each sorted, as ``os.walk`` splits them.

    A symlink to a directory counts as a directory (``os.walk``'s split), so
    the order members come out in is the one archives always had.
    """
    dirs, others = [], []
    with os.scandir(directory) as listing:
        for entry in listing:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (dirs if is_dir else others).append(entry.name)
    dirs.sort()
    others.sort()
    return dirs, others


def walk_tree(roots, exclude):
    """Yield (absolute path, member name, lstat) for every entry under ``roots``, in a stable order.

    Symlinks are yielded as links and never followed, so nothing outside the
    tree can be reached through them. ``exclude`` globs match the path relative
    to its root or the entry's own name; an excluded directory is skipped whole.
    Per directory: its subdirectories, then its other entries, each sorted by
    name; then each kept subdirectory in turn, depth first (``os.walk``'s
    order). Per entry that is one ``lstat`` and no other work unless
    ``exclude`` has patterns: on trees of many small files the walk is a
    visible share of an archive's time.
    """
    lstat, join = os.lstat, os.path.join
    for root in roots:
        root = os.path.abspath(root)
        info = lstat(root)
        yield root, arcname_for(root), info
        if not stat.S_ISDIR(info.st_mode):
            continue
        base = len(root.rstrip('/')) + 1
        prefix = arcname_for(root).rstrip('/') + '/'
        pending = [root]
        while pending:
            directory = pending.pop()
            try:
                dirs, others = _entries(directory)
            except OSError:
                continue  # unreadable or gone since it was listed, as os.walk skips it
            kept = []
            for names, is_dir_group in ((dirs, True), (others, False)):
                for name in names:
                    full = join(directory, name)
                    if exclude and _excluded(full[base:], name, exclude):
                        continue
                    entry = lstat(full)
                    yield full, prefix + full[base:], entry
                    if is_dir_group and stat.S_ISDIR(entry.st_mode):
                        kept.append(full)
            pending.extend(reversed(kept))


def estimate_tree_bytes(roots, exclude):
    """Bytes of the regular files an archive of ``roots`` would hold (for the space check)."""
    return sum(entry[2].st_size for entry in walk_tree(roots, exclude) if stat.S_ISREG(entry[2].st_mode))


class FileTally:
    """Counts, bytes and (optionally) per-file sha256 of the regular files put into an archive."""

    def __init__(self, checksums):
        self.count = 0
        self.total_bytes = 0
        self.checksums = {} if checksums else None

    def select(self, path, member, info):  # pylint: disable=unused-argument
        """Whether the entry is written into the archive (every one here; an incremental archive's tally chooses)."""
        return True

    def reader(self, handle):
        return HashingReader(handle) if self.checksums is not None else handle

    def add(self, member, size, reader):
        self.count += 1
        self.total_bytes += size
        if self.checksums is not None:
            self.checksums[member] = reader.sha256

    def as_manifest(self):
        record = dict(count=self.count, total_bytes=self.total_bytes)
        if self.checksums is not None:
            record['sha256'] = self.checksums
        return record

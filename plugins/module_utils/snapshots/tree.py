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


def walk_tree(roots, exclude):
    """Yield (absolute path, member name, lstat) for every entry under ``roots``, in a stable order.

    Symlinks are yielded as links and never followed, so nothing outside the
    tree can be reached through them. ``exclude`` globs match the path relative
    to its root or the entry's own name; an excluded directory is skipped whole.
    """
    for root in roots:
        root = os.path.abspath(root)
        info = os.lstat(root)
        yield root, arcname_for(root), info
        if not stat.S_ISDIR(info.st_mode):
            continue
        for directory, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            kept = []
            for name in dirnames + sorted(filenames):
                full = os.path.join(directory, name)
                relative = os.path.relpath(full, root)
                if _excluded(relative, name, exclude):
                    continue
                entry = os.lstat(full)
                yield full, arcname_for(full), entry
                if name in dirnames and stat.S_ISDIR(entry.st_mode):
                    kept.append(name)
            dirnames[:] = [name for name in dirnames if name in kept]


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

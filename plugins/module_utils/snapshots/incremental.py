# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incremental archives of the full tier: which files changed since the newest verified archive, and the chain.

A tar archive of the full tier written with ``file_checksums`` (or with
``mode: incremental``) records a file *index* in its manifest: for every
entry under ``files/`` one string ``type:size:mtime_ns:ctime_ns:inode:sha256:holder``
(type ``f``, ``d`` or ``l``; sha256 empty but for regular files; *holder*
the position in the chain of the archive that holds the file's bytes, 0 =
the base). One string per entry keeps the manifest quick to read and write
(a list per entry costs several times as much JSON). Such an archive can be
the base (or the parent) of an incremental one.

An incremental archive holds every directory and symlink (headers only), and
only the regular files whose size, mtime_ns, ctime_ns or inode differ from
the parent's index (or that are new); every other file is recorded by
reference (path, size, sha256 and holder copied from the parent's index).
Its manifest names the base and the chain (``incremental``: base, parent,
chain of {file, sha256} from the base to the parent, changed, referenced and
deleted members). ctime catches what mtime misses: content rewritten and its
mtime put back (``touch -r``), permission and owner changes.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.catalog import snapshots
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import (
    MANIFEST_SUFFIX,
    ManifestError,
    load_manifest,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tree import FileTally, walk_tree

MODES = ('full', 'incremental')
INDEX_FORMATS = ('tar.zst', 'tar.gz')
DELETED_LISTED = 100  # deleted members named in the module's result; the manifest lists them all


class ChainError(Exception):
    """An incremental chain that cannot be continued or restored: the reason, naming the base or link."""


def mode_problem(params):
    """Why ``mode`` does not fit the other options (a message), else None; incremental turns file_checksums on."""
    if params.get('mode', 'full') != 'incremental':
        return None
    if params['tier'] != 'full':
        return 'mode incremental applies to tier full (file trees): use tier full with paths, or mode full'
    if params['archive_format'] not in INDEX_FORMATS:
        return 'mode incremental needs archive_format tar.zst or tar.gz (got %s)' % params['archive_format']
    params['file_checksums'] = True  # references carry the sha256 of every unchanged file
    return None


def entry_kind(info):
    if stat.S_ISREG(info.st_mode):
        return 'f'
    if stat.S_ISDIR(info.st_mode):
        return 'd'
    if stat.S_ISLNK(info.st_mode):
        return 'l'
    return None


def stat_key(info):
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def parse_entry(value):
    """An index string as [type, size, mtime_ns, ctime_ns, inode, sha256 or None, holder]."""
    kind, size, mtime, ctime, inode, sha, holder = value.split(':')
    return [kind, int(size), int(mtime), int(ctime), int(inode), sha or None, int(holder)]


def _stat_prefix(kind, key):
    return '%s:%d:%d:%d:%d:' % (kind, key[0], key[1], key[2], key[3])


class IndexTally(FileTally):
    """A file tally that records the index and writes only the regular files changed since ``previous``."""

    def __init__(self, previous, position):
        super().__init__(True)
        self.previous = previous or {}
        self.position = position
        self.seen = {}

    def select(self, path, member, info):
        kind = entry_kind(info)
        prefix = _stat_prefix(kind, stat_key(info))
        self.seen[member] = (kind, prefix)
        if kind != 'f':
            return True
        old = self.previous.get(member)
        return not (old and old.startswith(prefix))

    def unchanged(self, member):
        kind = self.seen[member][0]
        return kind == 'f' and member not in self.checksums

    def index(self):
        index = {}
        for member, (_kind, prefix) in self.seen.items():
            if self.unchanged(member):
                index[member] = self.previous[member]
            else:
                index[member] = '%s%s:%d' % (prefix, self.checksums.get(member) or '', self.position)
        return index

    def deleted(self):
        """Members of the previous index that are gone, or whose type changed (a file now a directory)."""
        return sorted(member for member, old in self.previous.items()
                      if member not in self.seen or self.seen[member][0] != old[0])  # old[0]: its type letter


def _link(snap):
    return dict(file=os.path.basename(snap['path']), sha256=snap['manifest']['artifact']['sha256'])


class Increment:
    """What a full-tier tar archive becomes: a chain base (``parent`` None) or the next link after ``parent``.

    ``fallback`` says why an incremental run writes a full archive instead
    (no verified archive of these paths with an index in dest).
    """

    def __init__(self, mode, parent=None, fallback=None):
        self.mode = mode
        self.parent = parent
        self.fallback = fallback
        self.chain = []
        if parent:
            self.chain = list((parent['manifest'].get('incremental') or {}).get('chain') or []) + [_link(parent)]
        self.counts = None
        self.planned = None  # (tally, selected entries) of the preview

    @property
    def previous_index(self):
        return self.parent['manifest']['files']['index'] if self.parent else None

    def tally(self):
        """The tally of the write: the preview's, which has seen every entry (the write walks only the selected ones)."""
        if self.planned:
            self.planned[0].checksums = {}
            return self.planned[0]
        return IndexTally(self.previous_index, len(self.chain))

    def entries(self):
        """The entries the write walks: those the preview selected (changed files, every directory and symlink)."""
        return self.planned[1] if self.planned else None

    def preview(self, roots, exclude):
        """Compare the trees with the parent's index by stat alone (one walk: the write reuses it); returns the counts."""
        tally = IndexTally(self.previous_index, len(self.chain))
        changed_bytes = 0
        selected = []
        for path, member, info in walk_tree(roots, exclude):
            if entry_kind(info) and tally.select(path, member, info):
                selected.append((path, member, info))
                if entry_kind(info) == 'f':
                    tally.checksums[member] = None
                    changed_bytes += info.st_size
        self.counts = self._counts(tally, changed_bytes)
        self.planned = (tally, selected)
        return self.counts

    def _counts(self, tally, changed_bytes):
        referenced = [member for member in tally.seen if tally.unchanged(member)]
        deleted = tally.deleted()
        return dict(changed_files=len(tally.checksums), changed_bytes=changed_bytes, referenced_files=len(referenced),
                    referenced_bytes=sum(int(self.previous_index[member].split(':', 2)[1]) for member in referenced),
                    deleted=deleted)

    def record(self, manifest, tally):
        """The index (and, for a link, the chain and changes) into the manifest of the archive just written."""
        files = manifest['files']
        files['mode'] = 'incremental' if self.parent else 'full'
        files['index'] = tally.index()
        self.counts = self._counts(tally, tally.total_bytes)
        if self.parent:
            manifest['incremental'] = dict(base=self.chain[0], parent=self.chain[-1], chain=self.chain,
                                           **self.counts)

    def report(self):
        """The module's ``incremental`` result."""
        counts = self.counts or {}
        return dict(mode=self.mode, written='incremental' if self.parent else 'full',
                    base=self.chain[0]['file'] if self.chain else None, parent=self.chain[-1]['file'] if self.chain else None,
                    chain=[link['file'] for link in self.chain], fallback=self.fallback,
                    changed_files=counts.get('changed_files', 0), changed_bytes=counts.get('changed_bytes', 0),
                    referenced_files=counts.get('referenced_files', 0), referenced_bytes=counts.get('referenced_bytes', 0),
                    deleted_files=len(counts.get('deleted', ())), deleted=list(counts.get('deleted', ()))[:DELETED_LISTED])


def existing_report(path, mode):
    """The ``incremental`` result for the archive that already covers the slot (read from its manifest)."""
    try:
        manifest = load_manifest(path + MANIFEST_SUFFIX)
    except ManifestError:
        return None
    increment = Increment(mode)
    if manifest.get('incremental'):
        increment.chain = manifest['incremental']['chain']
        increment.parent = dict(path=path, manifest=manifest)
        increment.counts = manifest['incremental']
    elif not (manifest.get('files') or {}).get('index'):
        return None
    return increment.report()


def plan_increment(params, dest, roots):
    """The Increment this run writes, or None (a full archive without index: zip, or file_checksums false).

    For ``mode: incremental`` the parent is the newest verified archive of
    the same prefix, database and paths. Without one (or when it has no
    index) the run writes a full archive, the base of a new chain, and
    ``fallback`` says why. A parent whose chain is broken raises
    :class:`ChainError` naming the base or link.
    """
    mode = params.get('mode', 'full')
    if params['tier'] != 'full' or params['archive_format'] not in INDEX_FORMATS:
        return None
    if mode != 'incremental':
        return Increment(mode) if params['file_checksums'] else None
    roots = sorted(os.path.abspath(root) for root in roots)
    verified = [snap for snap in snapshots(dest, params['prefix'], 'full', params['database'], roots) if snap['verified']]
    if not verified:
        return Increment(mode, fallback='no verified archive of these paths in %s: wrote a full archive, the base of '
                                        'a new chain' % dest)
    newest = verified[-1]
    if not (newest['manifest'].get('files') or {}).get('index'):
        return Increment(mode, fallback='the newest verified archive %s has no file index (written with file_checksums '
                                        'false): wrote a full archive, the base of a new chain'
                                        % os.path.basename(newest['path']))
    check_chain(newest['path'], newest['manifest'])
    return Increment(mode, parent=newest)


def chain_files(path, manifest):
    """[(role, artifact path, recorded sha256)] from the base to ``path`` itself (role: base, link, archive)."""
    directory = os.path.dirname(path)
    chain = (manifest.get('incremental') or {}).get('chain') or []
    links = [('base' if position == 0 else 'link', os.path.join(directory, link['file']), link['sha256'])
             for position, link in enumerate(chain)]
    return links + [('base' if not chain else 'archive', path, manifest['artifact']['sha256'])]


def check_chain(path, manifest):
    """Every archive of the chain ending at ``path`` is there, with its manifest, size and sha256 as recorded.

    A cheap check (no re-reading): an archive missing, without its
    manifest, of another size or modified after its manifest was written is
    refused, naming it. A same-size corruption without a new mtime is found
    by re-reading (restore drill, ``state: verified``).
    """
    for role, link_path, sha in chain_files(path, manifest):
        name = os.path.basename(link_path)
        what = 'the incremental chain of %s: its %s %s' % (os.path.basename(path), role, name)
        try:
            recorded = load_manifest(link_path + MANIFEST_SUFFIX)
            info = os.stat(link_path)
        except (ManifestError, OSError) as exc:
            raise ChainError('%s is missing or has no readable manifest (%s): the chain cannot be restored; take a '
                             'full archive (mode: full) to start a new chain' % (what, getattr(exc, 'strerror', None) or exc)
                             ) from exc
        artifact = recorded['artifact']
        problem = None
        if artifact.get('sha256') != sha:
            problem = 'its manifest records sha256 %s, the chain %s' % (artifact.get('sha256'), sha)
        elif info.st_size != artifact.get('size_bytes'):
            problem = 'it is %d bytes, its manifest says %s' % (info.st_size, artifact.get('size_bytes'))
        elif info.st_mtime > os.stat(link_path + MANIFEST_SUFFIX).st_mtime:
            problem = 'it was modified after it was verified'
        if problem:
            raise ChainError('%s does not verify: %s; the chain cannot be restored: take a full archive (mode: full) to '
                             'start a new chain' % (what, problem))


def keep_chains(kept, dropped):
    """Move every base and link a kept incremental archive needs from ``dropped`` to ``kept``, with the reason.

    ``kept``/``dropped`` are retention's selections (dicts with path,
    manifest and reasons). Returns the new (kept, dropped).
    """
    by_name = dict((os.path.basename(snap['path']), snap) for snap in dropped)
    rescued = {}
    for snap in kept:
        chain = ((snap.get('manifest') or {}).get('incremental') or {}).get('chain') or []
        for position, link in enumerate(chain):
            needed = by_name.get(link['file'])
            if needed is None:
                continue
            reason = '%s of %s' % ('base' if position == 0 else 'link', os.path.basename(snap['path']))
            rescued.setdefault(needed['path'], dict(needed, reasons=[]))['reasons'].append(reason)
    kept = kept + list(rescued.values())
    return kept, [snap for snap in dropped if snap['path'] not in rescued]

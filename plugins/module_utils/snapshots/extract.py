# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading archives back: complete scans (every byte read, hashed where wanted) and extraction that cannot escape its target.

Every member is checked before anything of it is written: absolute names,
``..`` components, paths through links, links leaving the archive, and
device/fifo members are refused with the member named.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
import zlib

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    CHUNK_BYTES,
    ZSTD_ERROR,
    ArchiveError,
    HashingReader,
    HashingWriter,
    open_decompressor,
    read_all,
)


def unsafe_member_reason(name, link_target=None, is_link=False):
    """Why a member may not be extracted (absolute, ``..``, a link leaving the target), or None."""
    if not name or name.startswith('/') or os.path.isabs(name):
        return 'absolute path'
    parts = name.replace('\\', '/').split('/')
    if '..' in parts:
        return 'a ".." path component'
    if is_link:
        if link_target is None or os.path.isabs(link_target):
            return 'a link to the absolute path %s' % link_target
        resolved = os.path.normpath(os.path.join(os.path.dirname(name), link_target))
        if resolved == '..' or resolved.startswith('../') or os.path.isabs(resolved):
            return 'a link to %s, outside the archive' % link_target
    return None


def _unsafe(name, reason):
    return ArchiveError('refusing the archive: member %r has %s (a path-traversal "slip" attempt)' % (name, reason))


def _zip_is_link(entry):
    return stat.S_ISLNK(entry.external_attr >> 16)


class ArchiveScan:
    """What a complete pass over an archive found: files under ``files/``, their bytes and hashes, other members.

    ``absolute_links`` counts symlinks to absolute paths that extraction
    created as they are (a full archive stores links unchanged). Without
    ``file_hashes`` the contents under ``files/`` are still read completely
    (decompressed, CRC-checked for zip) but not hashed: the manifest holds no
    per-file sha256 to compare them with, and hashing is most of a listing's
    time. Other members (the database dump) are always hashed.
    """

    def __init__(self, file_hashes=True):
        self.file_hashes = file_hashes
        self.file_count = 0
        self.file_bytes = 0
        self.checksums = {}
        self.members = {}
        self.absolute_links = 0

    def add(self, name, size, sha):
        if name.startswith('files/'):
            self.file_count += 1
            self.file_bytes += size
            self.checksums[name] = sha
        else:
            self.members[name] = dict(size_bytes=size, sha256=sha)

    def wants_hash(self, name):
        return self.file_hashes or not name.startswith('files/')

    def read_member(self, name, size, source):
        """Read a member that is not extracted to its end (hashing it when wanted) and record it."""
        if self.wants_hash(name):
            digest = hashlib.sha256()
            read_all(source, digest.update)
            self.add(name, size, digest.hexdigest())
        else:
            read_all(source)
            self.add(name, size, None)


class _Extractor:
    """Creates members under ``target`` without ever following a link on disk.

    Where a member lands is decided by the disk, not by its name: a link
    extracted earlier could redirect a later member. So no parent component may
    be a link, regular files are opened with ``O_EXCL|O_NOFOLLOW``, and a
    relative link target is judged from the link's real parent directory.
    Absolute link targets are created as they are: nothing here follows them.
    """

    def __init__(self, target, scan):
        self.root = os.path.realpath(target)
        self.scan = scan

    def _parents(self, name, parts):
        """Create the directories ``parts`` below the root; refuse a component that is a link or not a directory."""
        current = self.root
        for part in parts:
            current = os.path.join(current, part)
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current)
                continue
            if stat.S_ISLNK(info.st_mode):
                raise _unsafe(name, 'a path through the link %s' % os.path.relpath(current, self.root))
            if not stat.S_ISDIR(info.st_mode):
                raise _unsafe(name, 'a path through %s, which is not a directory' % os.path.relpath(current, self.root))
        return current

    def directory(self, name):
        self._parents(name, [part for part in name.split('/') if part not in ('', '.')])

    def symlink(self, name, link_target):
        parts = [part for part in name.split('/') if part not in ('', '.')]
        parent = self._parents(name, parts[:-1])
        if os.path.isabs(link_target):
            self.scan.absolute_links += 1
        else:
            reason = unsafe_member_reason(name, link_target, True)
            landing = os.path.realpath(os.path.join(parent, link_target))
            if not reason and landing != self.root and not landing.startswith(self.root + os.sep):
                reason = 'a link to %s, outside the archive' % link_target
            if reason:
                raise _unsafe(name, reason)
        try:
            os.symlink(link_target, os.path.join(parent, parts[-1]))
        except FileExistsError as exc:
            raise _unsafe(name, 'a name that is already taken in the target (a duplicate member)') from exc

    def regular(self, name, mode, source):
        parts = [part for part in name.split('/') if part not in ('', '.')]
        path = os.path.join(self._parents(name, parts[:-1]), parts[-1])
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError as exc:
            raise _unsafe(name, 'a name that is already taken in the target (a duplicate member or a link)') from exc
        with os.fdopen(fd, 'wb') as handle:
            os.fchmod(fd, stat.S_IMODE(mode) & 0o777 or 0o600)
            sink = HashingWriter(handle)
            shutil.copyfileobj(source, sink, CHUNK_BYTES)
        self.scan.add(name, sink.size, sink.sha256)


def scan_tar(path, compression, target=None, only=None, file_hashes=True):
    """Read a tar archive completely; extract into ``target`` when given. Return (ArchiveScan, raw HashingReader).

    With ``only`` (a set of member names), just those members are extracted;
    the others are read and hashed as in a listing (``file_hashes``: see
    :class:`ArchiveScan`).

    Every member is checked before anything of it is written: absolute names,
    ``..`` components, paths through links, links leaving the archive, and
    device/fifo members are refused with the member named.
    """
    scan = ArchiveScan(file_hashes)
    extractor = _Extractor(target, scan) if target is not None else None
    with open(path, 'rb') as raw_handle:
        raw = HashingReader(raw_handle)
        stream = open_decompressor(compression, raw)
        try:
            with tarfile.open(fileobj=stream, mode='r|') as tar:
                for member in tar:
                    extract = extractor is not None and (only is None or member.name in only)
                    reason = unsafe_member_reason(member.name)
                    if reason:
                        raise _unsafe(member.name, reason)
                    if not (member.isreg() or member.isdir() or member.issym()):
                        raise _unsafe(member.name, 'a type that is not a file, directory or symlink')
                    if not extract:
                        if member.isreg():
                            scan.read_member(member.name, member.size, tar.extractfile(member))
                        continue
                    if member.isdir():
                        extractor.directory(member.name)
                    elif member.issym():
                        extractor.symlink(member.name, member.linkname)
                    else:
                        extractor.regular(member.name, member.mode, tar.extractfile(member))
            read_all(stream)
        except tarfile.TarError as exc:
            raise ArchiveError('archive %s is not a readable tar: %s' % (path, exc)) from exc
        except (EOFError, zlib.error, ZSTD_ERROR) as exc:
            raise ArchiveError('archive %s is damaged: %s' % (path, exc)) from exc
        raw.drain()
    return scan, raw


def scan_zip(path, target=None, file_hashes=True):
    """Read a zip completely (every CRC checked); extract into ``target`` when given."""
    scan = ArchiveScan(file_hashes)
    extractor = _Extractor(target, scan) if target is not None else None
    with open(path, 'rb') as raw_handle:
        raw = HashingReader(raw_handle)
        raw.drain()
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            for entry in entries:
                reason = unsafe_member_reason(entry.filename.rstrip('/'))
                if reason:
                    raise _unsafe(entry.filename, reason)
            for entry in entries:
                name = entry.filename.rstrip('/')
                if entry.is_dir():
                    if extractor:
                        extractor.directory(name)
                    continue
                if _zip_is_link(entry):
                    if extractor:
                        extractor.symlink(name, archive.read(entry).decode('utf-8', 'surrogateescape'))
                    continue
                with archive.open(entry) as source:
                    if extractor:
                        extractor.regular(name, entry.external_attr >> 16, source)
                    else:
                        scan.read_member(name, entry.file_size, source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise ArchiveError('archive %s is not a readable zip: %s' % (path, exc)) from exc
    return scan, raw


def scan_archive(path, archive_format, target=None, file_hashes=True):
    if archive_format == 'zip':
        return scan_zip(path, target, file_hashes)
    return scan_tar(path, 'zstd' if archive_format == 'tar.zst' else 'gzip', target, file_hashes=file_hashes)

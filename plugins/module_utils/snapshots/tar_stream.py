# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a tar stream of file trees (and extra members such as the dump) through a compressor.

:class:`TarStream` writes headers from ``tarfile.TarInfo`` and reads contents
straight into one reused buffer; for tar.zst it writes into
:class:`~.compression.ZstdFrameWriter`, which compresses frames on a pool and
stores already-compressed files in raw frames. ``tarfile``'s own stream
writer hands the compressor 10 KiB pieces and, with a larger ``bufsize``,
copies its whole buffer on every append.
"""

from __future__ import annotations

import os
import stat
import tarfile

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    CHUNK_BYTES,
    STORED_MEMBER_MIN_BYTES,
    BackgroundWriter,
    ZstdFrameWriter,
    is_compressed_name,
    open_compressor,
    shrank_error,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tree import (
    FileTally,
    walk_tree,
)


def _tarinfo(member, info, path):
    entry = tarfile.TarInfo(member)
    entry.mode = stat.S_IMODE(info.st_mode)
    entry.mtime = int(info.st_mtime)
    entry.uid, entry.gid = info.st_uid, info.st_gid
    if stat.S_ISDIR(info.st_mode):
        entry.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(info.st_mode):
        entry.type = tarfile.SYMTYPE
        entry.linkname = os.readlink(path)
    elif stat.S_ISREG(info.st_mode):
        entry.size = info.st_size
    else:
        return None  # sockets, fifos, devices: not data
    return entry


class TarStream:
    """Writes a tar stream, byte for byte what ``tarfile.open(mode='w|', format=PAX_FORMAT)`` writes.

    Headers come from ``TarInfo.tobuf`` (so names, PAX records and checksums
    are tarfile's); file contents are read with ``readinto`` straight into one
    reused buffer of ``chunk_bytes``, which goes to ``out`` whole. That is one
    copy per byte and one compressor call per MiB, where ``tarfile``'s stream
    writer makes 10 KiB calls and re-copies its buffer on every append.
    Memory stays at one buffer whatever the tree.
    """

    def __init__(self, out, chunk_bytes=CHUNK_BYTES):
        self.out = out
        self.store_from = getattr(out, 'store_from', None)
        self.buffer = bytearray(chunk_bytes)
        self.view = memoryview(self.buffer)
        self.fill = 0
        self.offset = 0

    def _flush(self):
        if self.fill:
            self.out.write(self.view[:self.fill])
            self.fill = 0

    def _put(self, data):
        size = len(data)
        if self.fill + size > len(self.buffer):
            self._flush()
        if size > len(self.buffer):
            self.out.write(data)
        else:
            self.buffer[self.fill:self.fill + size] = data
            self.fill += size
        self.offset += size

    def add(self, entry, handle=None, path=None, stored=False):
        """Write ``entry``'s header and, for a regular file, exactly ``entry.size`` bytes of ``handle``.

        ``stored`` contents (already compressed) go to ``out.store_from``
        where ``out`` has it (:class:`ZstdFrameWriter`), apart from the
        headers and padding around them.
        """
        self._put(entry.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, 'surrogateescape'))
        if handle is None or not entry.size:
            return
        if stored and self.store_from:
            self._flush()
            self.store_from(handle, entry.size, path)
            self.offset += entry.size
            self._pad()
            return
        left = entry.size
        while left:
            if self.fill == len(self.buffer):
                self._flush()
            room = min(left, len(self.buffer) - self.fill)
            got = handle.readinto(self.view[self.fill:self.fill + room])
            if not got:
                raise shrank_error(path)
            self.fill += got
            left -= got
        self.offset += entry.size
        self._pad()

    def _pad(self):
        remainder = self.offset % tarfile.BLOCKSIZE
        if remainder:
            self._put(bytes(tarfile.BLOCKSIZE - remainder))

    def close(self):
        """The end-of-archive marker (two zero blocks), padded to a whole record as tarfile does."""
        self._put(bytes(2 * tarfile.BLOCKSIZE))
        remainder = self.offset % tarfile.RECORDSIZE
        if remainder:
            self._put(bytes(tarfile.RECORDSIZE - remainder))
        self._flush()


def write_tar(out, compression, level, roots, exclude, extra_members=(), checksums=False, tally=None, entries=None):
    """Stream a tar of ``extra_members`` [(member name, file path)] and ``roots`` into ``out``.

    Returns the file tally of ``roots`` (for the manifest's ``files``). A
    ``tally`` given (see ``incremental``) chooses the entries written through
    its ``select``; ``entries`` (path, member, lstat), when given, stand for
    the walk of ``roots``.
    """
    tally = tally or FileTally(checksums)
    background = BackgroundWriter(out)
    frames = ZstdFrameWriter(background, level) if compression == 'zstd' else None
    try:
        compressor = frames or open_compressor(compression, level, background)
        tar = TarStream(compressor)
        for member, path in extra_members:
            info = os.stat(path)
            with open(path, 'rb', buffering=0) as handle:
                tar.add(_tarinfo(member, info, path), handle, path, _stored(member, info.st_size))
        for path, member, info in walk_tree(roots, exclude) if entries is None else entries:
            entry = _tarinfo(member, info, path)
            if entry is None or not tally.select(path, member, info):
                continue
            if entry.isreg():
                with open(path, 'rb', buffering=0) as handle:
                    reader = tally.reader(handle)
                    tar.add(entry, reader, path, _stored(member, info.st_size))
                tally.add(member, info.st_size, reader)
            else:
                tar.add(entry)
        tar.close()
        compressor.close()
    finally:
        if frames:
            frames.shutdown()
        background.finish()
    return tally


def _stored(member, size):
    """Whether a member's contents are stored rather than compressed again (see :class:`ZstdFrameWriter`)."""
    return size >= STORED_MEMBER_MIN_BYTES and is_compressed_name(member)

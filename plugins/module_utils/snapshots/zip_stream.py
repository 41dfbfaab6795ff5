# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a zip front to back into a stream that cannot seek, deflating on all cores.

Already-compressed files and links are stored; everything else is deflated
in pieces on an :class:`~.compression.OrderedPool`. The tests read it back
with ``zipfile`` and ``unzip -t``.
"""

from __future__ import annotations

import os
import stat
import struct
import time
import zipfile
import zlib

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    CHUNK_BYTES,
    BackgroundWriter,
    OrderedPool,
    is_compressed_name,
    shrank_error,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tree import (
    FileTally,
    walk_tree,
)

ZIP_DEFLATED_INLINE_BYTES = 64 * 1024  # smaller pieces are deflated in the caller's thread: a job costs more
ZIP_LOCAL = struct.Struct('<IHHHHHIIIHH')
ZIP_CENTRAL = struct.Struct('<IHHHHHHIIIHHHHHII')
ZIP_DESCRIPTOR64 = struct.Struct('<IIQQ')
ZIP_END64 = struct.Struct('<IQHHIIQQQQ')
ZIP_LOCATOR64 = struct.Struct('<IIQI')
ZIP_END = struct.Struct('<IHHHHIIH')
ZIP32_MAX = 0xFFFFFFFF
ZIP_VERSION, ZIP64_VERSION = 20, 45
ZIP_MADE_BY_UNIX = 3 << 8
ZIP_DATA_DESCRIPTOR, ZIP_UTF8 = 0x08, 0x800


def _deflate_piece(data, level, last):
    """Raw deflate of one piece of a member: pieces end on a sync flush, the last on the final block.

    Concatenated in order they are one deflate stream (as pigz writes it);
    deflate looks back 32 KiB only, so pieces of 1 MiB lose almost nothing.
    """
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _dos_time(mtime):
    moment = time.gmtime(max(mtime, 315532800))  # zip cannot date before 1980
    return ((moment.tm_hour << 11) | (moment.tm_min << 5) | (moment.tm_sec // 2),
            ((moment.tm_year - 1980) << 9) | (moment.tm_mon << 5) | moment.tm_mday)


class ZipStream:
    """A zip written front to back into a stream that cannot seek, deflating on a pool of threads.

    What ``zipfile`` writes in streaming mode, apart from the deflate work:
    each member has a local header, its data and, for files, a zip64 data
    descriptor with the CRC and sizes; the central directory (zip64 where a
    size, an offset or the count needs it) comes last. Files are read in
    pieces of :data:`CHUNK_BYTES`; the pieces of deflated files are
    compressed on an :class:`OrderedPool`, so all cores work and memory
    stays bounded whatever the file sizes. The tests read it back with
    ``zipfile`` and ``unzip -t``.
    """

    def __init__(self, sink, level):
        self.level = level
        self.out = OrderedPool(sink)
        self.entries = []

    def _begin(self, member, info, method, flags, crc=0, size=0):
        """Queue a member's local header; return its central-directory record (completed later)."""
        name, name_flag = _zip_name(member)
        clock, date = _dos_time(info.st_mtime)
        entry = dict(name=name, flags=flags | name_flag, method=method, time=clock, date=date, crc=crc, size=size,
                     compressed=size, attr=(info.st_mode & 0xFFFF) << 16 | (0x10 if stat.S_ISDIR(info.st_mode) else 0))
        self.entries.append(entry)
        self.out.later(lambda: entry.update(offset=self.out.position))
        if flags & ZIP_DATA_DESCRIPTOR:  # sizes follow in the descriptor; the zip64 extra holds their place
            extra = struct.pack('<HHQQ', 1, 16, 0, 0)
            header = ZIP_LOCAL.pack(0x04034b50, ZIP64_VERSION, entry['flags'], method, clock, date, 0, ZIP32_MAX,
                                    ZIP32_MAX, len(name), len(extra))
        else:
            extra = b''
            header = ZIP_LOCAL.pack(0x04034b50, ZIP_VERSION, entry['flags'], method, clock, date, crc, size, size,
                                    len(name), 0)
        self.out.put(header + name + extra)
        return entry

    def add_directory(self, member, info):
        self._begin(member + '/', info, zipfile.ZIP_STORED, 0)

    def add_link(self, member, info, target):
        data = target.encode('utf-8', 'surrogateescape')
        self._begin(member, info, zipfile.ZIP_STORED, 0, zlib.crc32(data), len(data))
        self.out.put(data)

    def add_file(self, member, info, handle, path, deflate):
        """Exactly ``info.st_size`` bytes of ``handle`` (a file that shrank meanwhile fails), stored or deflated."""
        entry = self._begin(member, info, zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED, ZIP_DATA_DESCRIPTOR)
        self.out.later(lambda: entry.update(data_start=self.out.position))
        crc, left = 0, info.st_size
        while True:
            piece = handle.read(min(left, CHUNK_BYTES))
            if left and not piece:
                raise shrank_error(path)
            crc = zlib.crc32(piece, crc)
            left -= len(piece)
            if not deflate:
                self.out.put(piece)
            elif len(piece) < ZIP_DEFLATED_INLINE_BYTES:
                self.out.put(_deflate_piece(piece, self.level, not left))
            else:
                self.out.submit(_deflate_piece, piece, self.level, not left)
            if not left:
                break
        entry.update(crc=crc, size=info.st_size)

        def descriptor():
            entry['compressed'] = self.out.position - entry['data_start']
            return ZIP_DESCRIPTOR64.pack(0x08074b50, entry['crc'], entry['compressed'], entry['size'])
        self.out.later(descriptor)

    def close(self):
        """Write the central directory and the end records after every member; :meth:`shutdown` follows."""
        self.out.drain()
        start = self.out.position
        for entry in self.entries:
            self.out.put(_zip_central(entry))
        self.out.drain()
        end = self.out.position
        count, size = len(self.entries), end - start
        if count >= 0xFFFF or start >= ZIP32_MAX or size >= ZIP32_MAX:
            self.out.put(ZIP_END64.pack(0x06064b50, 44, ZIP_MADE_BY_UNIX | ZIP64_VERSION, ZIP64_VERSION, 0, 0,
                                        count, count, size, start))
            self.out.put(ZIP_LOCATOR64.pack(0x07064b50, 0, end, 1))
        self.out.put(ZIP_END.pack(0x06054b50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), min(size, ZIP32_MAX),
                                  min(start, ZIP32_MAX), 0))
        self.out.drain()

    def shutdown(self):
        self.out.shutdown()


def _zip_name(member):
    """The member name as zip stores it, and the UTF-8 flag when it is not ASCII (as ``zipfile`` does)."""
    try:
        return member.encode('ascii'), 0
    except UnicodeEncodeError:
        return member.encode('utf-8'), ZIP_UTF8


def _zip_central(entry):
    """A member's central-directory record (zip64 extra with just the fields too large for 32 bits)."""
    wide = [value for value in (entry['size'], entry['compressed'], entry['offset']) if value >= ZIP32_MAX]
    extra = b''
    if wide:  # the zip64 extra holds, in this order, just the fields too large for 32 bits
        extra = struct.pack('<HH', 1, 8 * len(wide)) + b''.join(struct.pack('<Q', value) for value in wide)
    version = ZIP64_VERSION if wide or entry['flags'] & ZIP_DATA_DESCRIPTOR else ZIP_VERSION
    return ZIP_CENTRAL.pack(
        0x02014b50, ZIP_MADE_BY_UNIX | version, version, entry['flags'], entry['method'], entry['time'],
        entry['date'], entry['crc'], min(entry['compressed'], ZIP32_MAX), min(entry['size'], ZIP32_MAX),
        len(entry['name']), len(extra), 0, 0, 0, entry['attr'], min(entry['offset'], ZIP32_MAX)) + entry['name'] + extra


def write_zip(out, level, roots, exclude, extra_members=(), checksums=False):
    """Stream a zip into ``out``: deflate text-like files (on all cores), store already-compressed ones and links."""
    tally = FileTally(checksums)
    background = BackgroundWriter(out)
    archive = ZipStream(background, level)
    try:
        for member, path in extra_members:
            info = os.stat(path)
            with open(path, 'rb') as handle:
                archive.add_file(member, info, handle, path, not is_compressed_name(member))
        for path, member, info in walk_tree(roots, exclude):
            if stat.S_ISDIR(info.st_mode):
                archive.add_directory(member, info)
            elif stat.S_ISLNK(info.st_mode):
                archive.add_link(member, info, os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                with open(path, 'rb') as handle:
                    reader = tally.reader(handle)
                    archive.add_file(member, info, reader, path, not is_compressed_name(member))
                tally.add(member, info.st_size, reader)
        archive.close()
    finally:
        archive.shutdown()
        background.finish()
    return tally

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming compression, tar/zip archives of file trees, and extraction that cannot escape its target.

Everything streams in fixed-size chunks, so memory stays bounded whatever the
tree or dump size. Archives are written through :class:`HashingWriter`, which
hashes exactly the bytes that reach the disk, and read back through
:class:`HashingReader`, so writing and verifying share one definition of the
checksum.

Measured on this platform (docs/performance/snapshot.md): tar streams are
written by :class:`_TarStream` (headers from ``tarfile.TarInfo``, contents
read straight into one reused buffer); for tar.zst into
:class:`ZstdFrameWriter`, which compresses frames on an :class:`OrderedPool`
and stores already-compressed files in raw frames. ``tarfile``'s own stream
writer hands the compressor 10 KiB pieces and, with a larger ``bufsize``,
copies its whole buffer on every append. zip archives are written by
:class:`_ZipStream`, which deflates on the same kind of pool and stores
already-compressed files.
"""

from __future__ import annotations

import collections
import concurrent.futures
import fnmatch
import gzip
import hashlib
import os
import queue
import shutil
import stat
import struct
import tarfile
import threading
import time
import traceback
import zipfile
import zlib

try:
    import zstandard
    HAS_ZSTANDARD = True
    ZSTANDARD_IMPORT_ERROR = None
except ImportError:
    HAS_ZSTANDARD = False
    ZSTANDARD_IMPORT_ERROR = traceback.format_exc()

ZSTD_ERROR = zstandard.ZstdError if HAS_ZSTANDARD else ValueError
CHUNK_BYTES = 1024 * 1024
# tar.zst: compressible bytes go out in independent frames of FRAME_BYTES (about zstd -3's window, so little
# ratio is lost); already-compressed members from STORED_MEMBER_MIN_BYTES up go out as frames of raw blocks.
FRAME_BYTES = 2 * 1024 * 1024
STORED_MEMBER_MIN_BYTES = 128 * 1024
RAW_BLOCK_BYTES = 128 * 1024
# zstd magic number, frame header descriptor 0 (no content size, no checksum, not single-segment), window
# descriptor 0x38 (exponent 7: a 128 KiB window, the largest block size, so any decoder's window limit allows it).
RAW_FRAME_HEADER = b'\x28\xb5\x2f\xfd\x00\x38'
COMPRESSIONS = ('zstd', 'gzip', 'none')
DEFAULT_LEVELS = dict(zstd=3, gzip=6, none=0)
LEVEL_RANGES = dict(zstd=(1, 19), gzip=(1, 9), none=(0, 0))
ARCHIVE_FORMATS = ('tar.zst', 'tar.gz', 'zip')
# Suffixes of files whose content is already compressed: zip stores them as
# they are, since deflating them costs time and gains nothing.
COMPRESSED_SUFFIXES = frozenset((
    '.7z', '.avi', '.avif', '.br', '.bz2', '.docx', '.flac', '.gif', '.gz', '.heic', '.jar', '.jpeg', '.jpg',
    '.lz4', '.m4a', '.mkv', '.mov', '.mp3', '.mp4', '.odt', '.ods', '.ogg', '.pdf', '.png', '.pptx', '.rar',
    '.tgz', '.webm', '.webp', '.woff', '.woff2', '.xlsx', '.xz', '.zip', '.zst',
))


class ArchiveError(Exception):
    """An archive or compressed stream that cannot be written, read or extracted safely."""


def default_compression():
    """zstd when the ``zstandard`` library is importable, else gzip (standard library)."""
    return 'zstd' if HAS_ZSTANDARD else 'gzip'


def compression_of(filename):
    """The outer compression layer of an artifact, read from its name (``.zst``, ``.gz``, else none)."""
    if filename.endswith('.zst'):
        return 'zstd'
    if filename.endswith('.gz'):
        return 'gzip'
    return 'none'


def is_compressed_name(name):
    return os.path.splitext(name)[1].lower() in COMPRESSED_SUFFIXES


class HashingWriter:
    """A write-only file wrapper that hashes and counts what it passes on.

    It has ``tell`` but no ``seek``, so ``zipfile`` writes in streaming mode
    (data descriptors) and never rewrites bytes already hashed.
    """

    def __init__(self, raw):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def tell(self):
        return self.size

    def flush(self):
        self.raw.flush()

    @property
    def sha256(self):
        return self.digest.hexdigest()


class HashingReader:
    """A read-only file wrapper that hashes and counts what is read through it."""

    def __init__(self, raw):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size=-1):
        data = self.raw.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer):
        """Fill ``buffer`` (a memoryview) from the file and hash what arrived."""
        size = self.raw.readinto(buffer)
        if size:
            self.digest.update(buffer[:size])
            self.size += size
        return size

    def readable(self):
        return True

    def drain(self):
        """Read to the end, so the hash covers the whole file even past an archive's end marker."""
        while self.read(CHUNK_BYTES):
            pass

    @property
    def sha256(self):
        return self.digest.hexdigest()


class BackgroundWriter:
    """Pass writes on to ``sink`` (hashing, the disk) from a thread of its own; :meth:`finish` waits for all of it.

    The compressor's output then no longer waits for the checksum and the
    disk: the caller's thread goes on reading and compressing meanwhile
    (``hashlib`` and file writes release the GIL). At most ``depth`` chunks
    wait in between, so memory stays bounded. The chunks must not change
    after ``write``: ``bytes`` and ``bytearray`` are kept as they are (the
    compressors, the exec stream and the raw frames hand over a new one each
    time and never reuse it); anything else, such as a memoryview of a
    reused buffer, is copied. A failed write is raised on the next
    ``write`` or by :meth:`finish`; nothing is written after it.
    """

    def __init__(self, sink, depth=16):
        self.sink = sink
        self.error = None
        self._queue = queue.Queue(depth)
        self._thread = threading.Thread(target=self._drain, name='snapshot-writer', daemon=True)
        self._thread.start()

    def _drain(self):
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self.error is None:
                try:
                    self.sink.write(chunk)
                except BaseException as exc:  # pylint: disable=broad-except
                    self.error = exc  # raised in the caller's thread

    def write(self, data):
        if self.error is not None:
            raise self.error
        self._queue.put(data if isinstance(data, (bytes, bytearray)) else bytes(data))
        return len(data)

    def flush(self):
        """Nothing to do: :meth:`finish` is the point where everything has reached ``sink``."""

    def finish(self):
        """Wait until every chunk has reached ``sink``; raise the first write error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self.error is not None:
            raise self.error


class _Passthrough:
    """The ``none`` compression: writes go straight through; closing leaves the sink open."""

    def __init__(self, sink):
        self.sink = sink

    def write(self, data):
        return self.sink.write(data)

    def flush(self):
        self.sink.flush()

    def close(self):
        self.sink.flush()


def require_compression(compression):
    """Raise :class:`ArchiveError` when ``compression`` needs a library that is missing."""
    if compression == 'zstd' and not HAS_ZSTANDARD:
        raise ArchiveError('compression zstd needs the Python library zstandard on the target host: '
                           'pip install zstandard, or choose compression gzip')


def open_compressor(compression, level, sink, threads=-1):
    """A writable stream compressing into ``sink``; ``close()`` ends the stream but leaves ``sink`` open.

    zstd runs with ``threads`` workers (-1: one per core; 0: in the caller's
    thread) and writes frame checksums, so any later decompression also
    proves the content intact.
    """
    require_compression(compression)
    if compression == 'zstd':
        compressor = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
        return compressor.stream_writer(sink, closefd=False)
    if compression == 'gzip':
        return gzip.GzipFile(fileobj=sink, mode='wb', compresslevel=level, mtime=0)
    return _Passthrough(sink)


def raw_zstd_frame(handle, size, path):
    """The next ``size`` bytes of ``handle`` as one zstd frame of raw blocks, read straight into place.

    Readable by every zstd decoder, at no compression cost. A block header
    is 3 bytes, little-endian: bit 0 marks the last block, bits 1-2 the type
    (0: raw), the rest the size. ``size`` must be at least 1 (a frame needs
    a block). The frame is a new buffer, so it can be handed on uncopied.
    """
    blocks = -(-size // RAW_BLOCK_BYTES)
    frame = bytearray(len(RAW_FRAME_HEADER) + 3 * blocks + size)
    frame[:len(RAW_FRAME_HEADER)] = RAW_FRAME_HEADER
    view = memoryview(frame)
    start = len(RAW_FRAME_HEADER)
    for index in range(blocks):
        block = min(RAW_BLOCK_BYTES, size - index * RAW_BLOCK_BYTES)
        view[start:start + 3] = ((block << 3) | int(index == blocks - 1)).to_bytes(3, 'little')
        target = view[start + 3:start + 3 + block]
        filled = 0
        while filled < block:
            got = handle.readinto(target[filled:])
            if not got:
                raise _shrank(path)
            filled += got
        start += 3 + block
    return frame


class OrderedPool:
    """Jobs on a pool of threads whose output reaches ``sink`` in the order they were given, with bounded memory.

    An item is ``bytes`` (ready), a job (:meth:`submit`: its result is
    written when its turn comes) or a callable (:meth:`later`: called at
    its turn, when :attr:`position` counts every byte before it; it may
    return bytes to write). At most ``2 * threads + 2`` items wait.
    Compressors (zstandard, zlib) release the GIL, so jobs run beside the
    caller's reading of the next input.
    """

    def __init__(self, sink, threads=None):
        threads = threads or os.cpu_count() or 1
        self.sink = sink
        self.position = 0
        self.items = collections.deque()
        self.window = 2 * threads + 2
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix='snapshot-compress')

    def submit(self, func, *args):
        self.put(self._pool.submit(func, *args))

    def later(self, func):
        self.put(func)

    def put(self, item):
        self.items.append(item)
        while self.items:
            head = self.items[0]
            if isinstance(head, concurrent.futures.Future) and not head.done() and len(self.items) <= self.window:
                return
            self._emit(self.items.popleft())

    def _emit(self, item):
        if isinstance(item, concurrent.futures.Future):
            item = item.result()
        elif callable(item):
            item = item()
        if item:
            self.sink.write(item)
            self.position += len(item)

    def drain(self):
        """Write every waiting item."""
        while self.items:
            self._emit(self.items.popleft())

    def shutdown(self):
        """Stop the pool (again); jobs not yet started are dropped, as after a failure."""
        self._pool.shutdown(cancel_futures=True)


class ZstdFrameWriter:
    """A zstd stream written as independent frames: compressed on an :class:`OrderedPool`, or stored.

    Compressible bytes (:meth:`write`) are cut into frames of
    :data:`FRAME_BYTES`, each compressed with its checksum on a pool thread,
    so compression runs beside the reading of the next files.
    Already-compressed content (:meth:`store_from`) is read straight into
    frames of raw blocks and costs no compression at all: on an uploads tree
    of photos and PDFs that is most of the bytes. Concatenated frames are one
    valid zstd stream (``zstd -d``, ``tar --zstd``, zstandard's
    ``read_across_frames``).
    """

    def __init__(self, sink, level, threads=None):
        require_compression('zstd')
        self.level = level
        self.pending = bytearray()
        self._local = threading.local()
        self.frames = OrderedPool(sink, threads)

    def _compress(self, data):
        compressor = getattr(self._local, 'compressor', None)
        if compressor is None:  # a ZstdCompressor is not thread-safe: one per pool thread
            compressor = self._local.compressor = zstandard.ZstdCompressor(level=self.level, write_checksum=True)
        return compressor.compress(data)

    def _cut(self):
        if self.pending:
            self.frames.submit(self._compress, self.pending)  # handed over, never touched again
            self.pending = bytearray()

    def write(self, data):
        self.pending += data
        if len(self.pending) >= FRAME_BYTES:
            self._cut()
        return len(data)

    def store_from(self, handle, size, path):
        """Store exactly ``size`` bytes of ``handle`` in raw frames of up to :data:`CHUNK_BYTES`."""
        self._cut()
        left = size
        while left:
            take = min(left, CHUNK_BYTES)
            self.frames.put(raw_zstd_frame(handle, take, path))
            left -= take

    def flush(self):
        """Nothing to do: :meth:`close` ends the stream."""

    def close(self):
        """Compress what is left and hand every frame to ``sink`` (which stays open); :meth:`shutdown` follows."""
        self._cut()
        self.frames.drain()

    def shutdown(self):
        self.frames.shutdown()


def open_decompressor(compression, source):
    """A readable stream decompressing ``source`` (a file object)."""
    require_compression(compression)
    if compression == 'zstd':
        return zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True, closefd=False)
    if compression == 'gzip':
        return gzip.GzipFile(fileobj=source, mode='rb')
    return source


def read_all(stream, consume=None):
    """Read ``stream`` to its end in chunks, handing each to ``consume``; return the byte count.

    Decompression errors (a changed byte, a truncated file) come out as
    :class:`ArchiveError`.
    """
    total = 0
    try:
        while True:
            chunk = stream.read(CHUNK_BYTES)
            if not chunk:
                return total
            total += len(chunk)
            if consume:
                consume(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error, ZSTD_ERROR) as exc:
        raise ArchiveError('the compressed stream is damaged: %s' % exc) from exc


# -- building file trees into archives -------------------------------------------------

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


class _FileTally:
    """Counts, bytes and (optionally) per-file sha256 of the regular files put into an archive."""

    def __init__(self, checksums):
        self.count = 0
        self.total_bytes = 0
        self.checksums = {} if checksums else None

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


def _shrank(path):
    return ArchiveError('%s shrank while it was being archived: run again when it is not being rewritten' % path)


class _TarStream:
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
                raise _shrank(path)
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


def write_tar(out, compression, level, roots, exclude, extra_members=(), checksums=False):
    """Stream a tar of ``extra_members`` [(member name, file path)] and ``roots`` into ``out``.

    Returns the file tally of ``roots`` (for the manifest's ``files``).
    """
    tally = _FileTally(checksums)
    background = BackgroundWriter(out)
    frames = ZstdFrameWriter(background, level) if compression == 'zstd' else None
    try:
        compressor = frames or open_compressor(compression, level, background)
        tar = _TarStream(compressor)
        for member, path in extra_members:
            info = os.stat(path)
            with open(path, 'rb', buffering=0) as handle:
                tar.add(_tarinfo(member, info, path), handle, path, _stored(member, info.st_size))
        for path, member, info in walk_tree(roots, exclude):
            entry = _tarinfo(member, info, path)
            if entry is None:
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


class _ZipStream:
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
                raise _shrank(path)
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
    tally = _FileTally(checksums)
    background = BackgroundWriter(out)
    archive = _ZipStream(background, level)
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


# -- reading archives back --------------------------------------------------------------

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

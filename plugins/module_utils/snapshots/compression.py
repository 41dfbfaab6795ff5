# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compression layers and the byte plumbing every snapshot stream shares.

Codecs (zstd, gzip, none) behind :func:`open_compressor` /
:func:`open_decompressor`; :class:`HashingWriter` and :class:`HashingReader`,
which hash exactly the bytes that reach or leave the disk, so writing and
verifying share one definition of the checksum; :class:`BackgroundWriter`
(hashing and disk writes on a thread of their own); :class:`OrderedPool`
(compression jobs on all cores, output in order, bounded memory) and
:class:`ZstdFrameWriter` (tar.zst as independent frames, already-compressed
content stored in raw frames). Measured in docs/performance/snapshot.md.
"""

from __future__ import annotations

import collections
import concurrent.futures
import gzip
import hashlib
import os
import queue
import threading
import traceback
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
# Artifacts are flushed to the disk every SYNC_EVERY_BYTES while they are written (see SyncingFile).
SYNC_EVERY_BYTES = 64 * 1024 * 1024
RAW_BLOCK_BYTES = 128 * 1024
# zstd magic number, frame header descriptor 0 (no content size, no checksum, not single-segment), window
# descriptor 0x38 (exponent 7: a 128 KiB window, the largest block size, so any decoder's window limit allows it).
RAW_FRAME_HEADER = b'\x28\xb5\x2f\xfd\x00\x38'
COMPRESSIONS = ('zstd', 'gzip', 'none')
DEFAULT_LEVELS = dict(zstd=3, gzip=6, none=0)
LEVEL_RANGES = dict(zstd=(1, 19), gzip=(1, 9), none=(0, 0))


def level_problem(compression, level):
    """Why ``level`` does not fit ``compression``; None when it does (no level given, or no compression)."""
    low, high = LEVEL_RANGES[compression]
    if level is None or compression == 'none' or low <= level <= high:
        return None
    return 'compression_level %d is outside %d-%d for %s' % (level, low, high, compression)


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


class SyncingFile:
    """A file wrapper that flushes what was written to the disk (``fdatasync``) every ``every`` bytes.

    Without it nothing of a fresh artifact reaches the disk before the final
    ``fsync`` (the kernel starts writing back only when far more is dirty),
    so the whole artifact is written out while everything else waits. Behind
    :class:`BackgroundWriter` the syncs run on its thread, beside reading and
    compressing. The final ``fsync`` is still the caller's.
    """

    def __init__(self, handle, every=SYNC_EVERY_BYTES):
        self.handle = handle
        self.every = every
        self.since = 0

    def write(self, data):
        written = self.handle.write(data)
        self.since += len(data)
        if self.since >= self.every:
            self.handle.flush()
            os.fdatasync(self.handle.fileno())
            self.since = 0
        return written

    def flush(self):
        self.handle.flush()


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
                raise shrank_error(path)
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
        return zstandard.ZstdDecompressor().stream_reader(
            source, read_size=CHUNK_BYTES, read_across_frames=True, closefd=False)
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


def shrank_error(path):
    return ArchiveError('%s shrank while it was being archived: run again when it is not being rewritten' % path)


class ReadAheadHasher:
    """Reads a file to its end on a thread of its own, hashing every byte; :meth:`read` hands the bytes on in order.

    The artifact's sha256 and the disk reads then run beside whatever
    consumes the stream (decompression, a tar scan): ``hashlib`` and file
    reads release the GIL. At most ``depth`` chunks wait in between.
    :meth:`finish` reads whatever the consumer left (so the hash covers the
    whole file, as :meth:`HashingReader.drain`) and raises a read error.
    """

    def __init__(self, handle, chunk_bytes=CHUNK_BYTES, depth=8):
        self.handle = handle
        self.chunk_bytes = chunk_bytes
        self.digest = hashlib.sha256()
        self.size = 0
        self.error = None
        self._queue = queue.Queue(depth)
        self._left = b''
        self._ended = False
        self._thread = threading.Thread(target=self._fill, name='snapshot-read-ahead', daemon=True)
        self._thread.start()

    def _fill(self):
        try:
            while True:
                chunk = self.handle.read(self.chunk_bytes)
                if not chunk:
                    break
                self.digest.update(chunk)
                self.size += len(chunk)
                self._queue.put(chunk)
        except BaseException as exc:  # pylint: disable=broad-except
            self.error = exc  # raised in the consumer's thread
        self._queue.put(None)

    def _next(self):
        if self._ended:
            return b''
        chunk = self._queue.get()
        if chunk is None:
            self._ended = True
            if self.error is not None:
                raise self.error
            return b''
        return chunk

    def read(self, size=-1):
        """The next bytes of the file, at most ``size`` (-1: the next chunk whole); b'' at its end."""
        data = self._left if len(self._left) else memoryview(self._next())
        if 0 <= size < len(data):
            self._left = data[size:]
            return bytes(data[:size])
        self._left = b''
        return data.obj if data.obj is not None and len(data) == len(data.obj) else bytes(data)

    def readable(self):
        return True

    def finish(self):
        """Read to the end of the file (hashing all of it); raise the read error, if any."""
        self._left = b''
        while self._next():
            pass
        self._thread.join()

    @property
    def sha256(self):
        return self.digest.hexdigest()

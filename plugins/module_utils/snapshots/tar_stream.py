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

import hashlib
import os
import stat
import tarfile

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    CHUNK_BYTES,
    STORED_MEMBER_MIN_BYTES,
    ArchiveError,
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


def _template():
    """A ustar block as tarfile's PAX writer makes it for a plain member, with name, numbers and type left to fill."""
    block = bytearray(tarfile.TarInfo('x').tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, 'surrogateescape'))
    block[0:148] = bytes(148)
    block[148:156] = b' ' * 8
    block[156] = 0
    return bytes(block)


_TEMPLATE = _template()
_TEMPLATE_SUM = sum(_TEMPLATE)  # the checksum is the sum of the block's bytes: the template's plus what is filled in
_TYPES = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE}
_OCTAL_7 = 8 ** 7
_OCTAL_11 = 8 ** 11


def _pax_record(keyword, value):
    """One PAX record, ``"<length> <keyword>=<value>\\n"``, its length counting its own digits (as tarfile does)."""
    length = len(keyword) + len(value) + 3
    digits = length + len(str(length))
    digits = length + len(str(digits))
    return b'%d %s=%s\n' % (digits, keyword, value)


def _block(name, mode, uid, gid, size, mtime, kind, link):
    """A ustar header block from the template: name and link are ASCII bytes of at most 100, numbers fit."""
    numbers = b'%07o\0%07o\0%07o\0%011o\0%011o\0' % (mode, uid, gid, size, mtime)
    block = bytearray(_TEMPLATE)
    block[0:len(name)] = name
    block[100:148] = numbers
    block[156:157] = kind
    block[157:157 + len(link)] = link
    block[148:155] = b'%06o\0' % (_TEMPLATE_SUM + sum(name) + sum(numbers) + kind[0] + sum(link))
    return block


def tar_header(member, info, path):
    """(header bytes, content size) of a tree entry, byte for byte what ``_tarinfo(...).tobuf(PAX_FORMAT)`` gives.

    None for sockets, fifos and devices (not data). The common cases (ASCII
    name and link, numbers that fit their octal fields; a name or link over
    100 bytes gets tarfile's PAX ``path``/``linkpath`` record) are filled
    into a ready ustar block here; only the rest (non-ASCII names, huge
    numbers) goes through ``tarfile``, which costs about ten times as much
    per member: on trees of many small files the headers were a visible
    share of an archive's time.
    """
    kind = _TYPES.get(stat.S_IFMT(info.st_mode))
    if kind is None:
        return None
    size = info.st_size if kind == tarfile.REGTYPE else 0
    mtime = int(info.st_mtime)
    try:
        name = (member + '/' if kind == tarfile.DIRTYPE and not member.endswith('/') else member).encode('ascii')
        link = os.readlink(path).encode('ascii') if kind == tarfile.SYMTYPE else b''
    except UnicodeEncodeError:
        name = None
    if (name is None or not 0 <= info.st_uid < _OCTAL_7 or not 0 <= info.st_gid < _OCTAL_7 or size >= _OCTAL_11
            or not 0 <= mtime < _OCTAL_11):
        return _tarinfo(member, info, path).tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, 'surrogateescape'), size
    header = _block(name[:100], stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, size, mtime, kind, link[:100])
    if len(name) > 100 or len(link) > 100:
        records = (_pax_record(b'path', name) if len(name) > 100 else b'') + (
            _pax_record(b'linkpath', link) if len(link) > 100 else b'')
        pax = _block(b'././@PaxHeader', 0, 0, 0, len(records), 0, tarfile.XHDTYPE, b'')
        header = pax + records + bytes(-len(records) % tarfile.BLOCKSIZE) + header
    return bytes(header), size


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
        self.add_header(entry.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, 'surrogateescape'), entry.size, handle, path,
                        stored)

    def add_header(self, header, size, handle=None, path=None, stored=False):
        """:meth:`add` with the header already made (:func:`tar_header`) and the content's size."""
        self._put(header)
        if handle is None or not size:
            return
        if stored and self.store_from:
            self._flush()
            self.store_from(handle, size, path)
            self.offset += size
            self._pad()
            return
        left = size
        while left:
            if self.fill == len(self.buffer):
                self._flush()
            room = min(left, len(self.buffer) - self.fill)
            got = handle.readinto(self.view[self.fill:self.fill + room])
            if not got:
                raise shrank_error(path)
            self.fill += got
            left -= got
        self.offset += size
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
            made = tar_header(member, info, path)
            if made is None or not tally.select(path, member, info):
                continue
            if stat.S_ISREG(info.st_mode):
                with open(path, 'rb', buffering=0) as handle:
                    reader = tally.reader(handle)
                    tar.add_header(made[0], made[1], reader, path, _stored(member, made[1]))
                tally.add(member, made[1], reader)
            else:
                tar.add_header(made[0], 0)
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


class UnusualTar(Exception):
    """A tar member :class:`TarScanner` leaves to ``tarfile`` (GNU long names, hard links, devices, global PAX headers)."""


_ZERO_BLOCK = bytes(tarfile.BLOCKSIZE)
_SCAN_TYPES = {tarfile.REGTYPE: 'file', tarfile.AREGTYPE: 'file', tarfile.DIRTYPE: 'dir', tarfile.SYMTYPE: 'link'}


def _octal(field):
    text = field.rstrip(b'\0 ').lstrip(b' ')
    if not text or text[:1] in (b'\x80', b'\xff'):
        raise UnusualTar('number field %r' % field)
    return int(text, 8)


class TarScanner:
    """One pass over an uncompressed tar stream (``stream.read``), in large reads: every member's name, kind and bytes.

    The reader :func:`scan_tar_members` uses for verification: headers are
    checked (checksum, end marker) and parsed here, and every content byte
    is read and handed to ``sha256`` where a hash is wanted, in slices of
    the large reads, where ``tarfile``'s stream reader makes several small
    reads and Python calls per member. It reads what this collection's
    writer makes (ustar blocks, PAX ``path``/``linkpath``/``size``
    records); anything else raises :class:`UnusualTar`, and the caller
    reads the archive with ``tarfile`` instead.
    """

    def __init__(self, stream, read_bytes=4 * CHUNK_BYTES):
        self.stream = stream
        self.read_bytes = read_bytes
        self.data = memoryview(b'')
        self.pos = 0

    def _fill(self):
        chunk = self.stream.read(self.read_bytes)
        if not chunk:
            return False
        rest = self.data[self.pos:]
        self.data = memoryview(bytes(rest) + chunk) if len(rest) else memoryview(chunk)
        self.pos = 0
        return True

    def _take(self, size):
        """The next ``size`` bytes (a header or PAX records) as bytes; ArchiveError when the stream ends first."""
        while len(self.data) - self.pos < size:
            if not self._fill():
                raise ArchiveError('the tar stream ends inside a member header: the archive is truncated')
        piece = bytes(self.data[self.pos:self.pos + size])
        self.pos += size
        return piece

    def _content(self, size, digest):
        """Read ``size`` bytes of content and the padding after them, hashing the content into ``digest`` when given."""
        left = size
        while left:
            if self.pos == len(self.data) and not self._fill():
                raise ArchiveError('the tar stream ends inside a member\'s content: the archive is truncated')
            piece = min(left, len(self.data) - self.pos)
            if digest is not None:
                digest.update(self.data[self.pos:self.pos + piece])
            self.pos += piece
            left -= piece
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self._take(pad)

    def members(self, want_hash):
        """Yield (name, kind 'file'/'dir'/'link', size, link target, sha256 hex or None) up to the end marker.

        ``want_hash(name)``: whether a regular member's content is hashed.
        """
        pax = {}
        while True:
            header = self._take(tarfile.BLOCKSIZE)
            if header == _ZERO_BLOCK:
                return
            self._check(header)
            kind = header[156:157]
            size = int(pax['size']) if 'size' in pax else _octal(header[124:136])
            if kind == tarfile.XHDTYPE:
                pax = self._pax(self._take(size + (-size % tarfile.BLOCKSIZE))[:size])
                continue
            name = pax.get('path') or self._ustar_name(header)
            link = pax.get('linkpath') or header[157:257].split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')
            pax = {}
            what = _SCAN_TYPES.get(kind)
            if what is None:
                raise UnusualTar('member type %r' % kind)
            if what == 'file' and name.endswith('/'):
                what = 'dir'
            if what != 'file':
                if size:
                    raise UnusualTar('a %s with content' % what)
                yield name.rstrip('/') if what == 'dir' else name, what, 0, link, None
                continue
            digest = hashlib.sha256() if want_hash(name) else None
            self._content(size, digest)
            yield name, what, size, link, digest.hexdigest() if digest is not None else None

    @staticmethod
    def _check(header):
        stored = _octal(header[148:156])
        unsigned = sum(header) - sum(header[148:156]) + 256
        if stored != unsigned:
            raise ArchiveError('a tar header\'s checksum does not match: the archive is damaged')

    @staticmethod
    def _ustar_name(header):
        name = header[0:100].split(b'\0', 1)[0]
        prefix = header[345:500].split(b'\0', 1)[0] if header[257:263] == b'ustar\0' else b''
        return (prefix + b'/' + name if prefix else name).decode('utf-8', 'surrogateescape')

    @staticmethod
    def _pax(records):
        """The PAX records of an extended header, as tarfile reads them (UTF-8 values; others left to tarfile)."""
        found = {}
        pos = 0
        while pos < len(records):
            space = records.index(b' ', pos)
            length = int(records[pos:space])
            keyword, _sep, value = records[space + 1:pos + length - 1].partition(b'=')
            pos += length
            if keyword == b'hdrcharset':
                raise UnusualTar('PAX hdrcharset')
            try:
                found[keyword.decode('ascii')] = value.decode('utf-8')
            except UnicodeDecodeError as exc:
                raise UnusualTar('a PAX record that is not UTF-8') from exc
        return found


def scan_tar_members(stream, want_hash):
    """Every member of an uncompressed tar ``stream`` (see :class:`TarScanner`), then the stream read to its end.

    Yields what :meth:`TarScanner.members` yields; raises ArchiveError for a
    damaged or truncated tar, :class:`UnusualTar` for what only ``tarfile``
    reads.
    """
    scanner = TarScanner(stream)
    yield from scanner.members(want_hash)
    while scanner.stream.read(scanner.read_bytes):
        pass

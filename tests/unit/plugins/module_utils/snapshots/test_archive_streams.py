"""The fast stream paths of the snapshot modules against their reference behaviour, on real files.

* the tar writer must produce exactly the bytes ``tarfile`` (stream mode, PAX) produces, whatever the members;
* tar.zst must decompress (python-zstandard and the zstd program) to those bytes, with already-compressed
  members stored verbatim in raw frames;
* the zip writer's archives must read back through ``zipfile`` and ``unzip -t``: every CRC, name, mode and link,
  zip64 records where the count needs them;
* the background writer must deliver every byte in order and surface a failed write;
* the exec demultiplexer must split Docker's frames however the socket cuts them, and refuse a cut-off stream.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import zipfile

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    ArchiveError,
    BackgroundWriter,
    HashingWriter,
    STORED_MEMBER_MIN_BYTES,
    open_decompressor,
    raw_zstd_frame,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tar_stream import write_tar
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.zip_stream import ZipStream, write_zip
from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.client import DockerExecError, ExecStream


def _tree(root):
    """Members that exercise the header paths: empty, odd and exact-block sizes, > 1 MiB, long and non-ASCII names, links."""
    os.makedirs(os.path.join(root, 'a' * 120, 'sub'))
    sizes = dict(empty=0, one=1, block=512, odd=513, big=(1 << 20) + 7, two=(3 << 20) + 511)
    for name, size in sizes.items():
        with open(os.path.join(root, name + '.bin'), 'wb') as handle:
            handle.write(bytes((index * 7 + size) % 251 for index in range(size)))
    with open(os.path.join(root, 'a' * 120, 'sub', 'n\u00e4me-\u00fcber-' + 'x' * 90 + '.txt'), 'w') as handle:
        handle.write('long and non-ASCII path\n')
    os.symlink('one.bin', os.path.join(root, 'link'))
    os.symlink('/etc/hostname', os.path.join(root, 'abs-link'))
    os.chmod(os.path.join(root, 'odd.bin'), 0o640)
    return sizes


def _reference_tar(roots, extra):
    """What tarfile itself writes for the same members (the module's tar writer before it was replaced)."""
    from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tar_stream import _tarinfo
    from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tree import walk_tree
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w|', format=tarfile.PAX_FORMAT) as tar:
        for member, path in extra:
            info = os.stat(path)
            with open(path, 'rb') as handle:
                tar.addfile(_tarinfo(member, info, path), handle)
        for path, member, info in walk_tree(roots, []):
            entry = _tarinfo(member, info, path)
            if entry is None:
                continue
            if entry.isreg():
                with open(path, 'rb') as handle:
                    tar.addfile(entry, handle)
            else:
                tar.addfile(entry)
    return out.getvalue()


@pytest.mark.parametrize('checksums', [False, True])
def test_tar_writer_is_byte_identical_to_tarfile(tmp_path, checksums):
    root = tmp_path / 'tree'
    root.mkdir()
    sizes = _tree(str(root))
    extra = [('database/app.dump', str(root / 'odd.bin'))]
    out = io.BytesIO()
    sink = HashingWriter(out)
    tally = write_tar(sink, 'none', 0, [str(root)], [], extra, checksums)
    assert out.getvalue() == _reference_tar([str(root)], extra)
    assert sink.size == len(out.getvalue()) and len(out.getvalue()) % tarfile.RECORDSIZE == 0
    assert tally.count == len(sizes) + 1 and tally.total_bytes == sum(sizes.values()) + len('long and non-ASCII path\n')
    if checksums:
        member = 'files/' + str(root / 'big.bin').lstrip('/')
        assert tally.checksums[member] == hashlib.sha256((root / 'big.bin').read_bytes()).hexdigest()


def _zstd_program_output(data):
    """What the zstd program decodes ``data`` to, or None where it is not installed."""
    if not shutil.which('zstd'):
        return None
    return subprocess.run(['zstd', '-d', '-q', '-c'], input=data, capture_output=True, check=True).stdout


@pytest.mark.parametrize('size', [1, 128 * 1024, 128 * 1024 + 1, (1 << 20) + 3])
def test_raw_zstd_frame_decodes_to_its_input(size):
    data = os.urandom(size + 10)
    source = io.BytesIO(data)
    frame = raw_zstd_frame(source, size, 'source')
    assert source.tell() == size  # exactly size bytes taken
    assert len(frame) == 6 + 3 * -(-size // (128 * 1024)) + size  # frame header and 3 bytes a block, nothing else
    assert open_decompressor('zstd', io.BytesIO(bytes(frame))).read() == data[:size]
    assert _zstd_program_output(bytes(frame)) in (None, data[:size])


def test_raw_zstd_frame_refuses_a_short_file():
    with pytest.raises(ArchiveError, match='source shrank while it was being archived'):
        raw_zstd_frame(io.BytesIO(b'x' * 1000), 2000, 'source')


def test_tar_zst_stores_compressed_members_and_decodes_to_the_tar(tmp_path):
    """Already-compressed members of STORED_MEMBER_MIN_BYTES or more are stored verbatim; the rest is compressed.

    Whatever the frames, the stream decodes to the very bytes of the uncompressed tar.
    """
    root = tmp_path / 'tree'
    root.mkdir()
    _tree(str(root))
    photo = os.urandom(STORED_MEMBER_MIN_BYTES + 4099)
    (root / 'photo.JPG').write_bytes(photo)
    (root / 'small.png').write_bytes(os.urandom(1000))
    (root / 'notes.txt').write_bytes(b'compressible text\n' * 50000)
    dump = tmp_path / 'app.dump.zst'
    dump.write_bytes(os.urandom(STORED_MEMBER_MIN_BYTES * 3))
    extra = [('database/app.dump.zst', str(dump))]
    plain = io.BytesIO()
    write_tar(HashingWriter(plain), 'none', 0, [str(root)], [], extra)
    packed = io.BytesIO()
    sink = HashingWriter(packed)
    write_tar(sink, 'zstd', 3, [str(root)], [], extra)
    data = packed.getvalue()
    assert sink.size == len(data)
    assert open_decompressor('zstd', io.BytesIO(data)).read() == plain.getvalue()
    assert _zstd_program_output(data) in (None, plain.getvalue())
    assert photo[:128 * 1024] in data and dump.read_bytes()[:128 * 1024] in data  # stored, not compressed again
    assert len(data) < len(plain.getvalue()) - 800000  # the text was compressed


def _unzip_test(path):
    """``unzip -t`` of the archive (every CRC), where unzip is installed."""
    if shutil.which('unzip'):
        done = subprocess.run(['unzip', '-tqq', str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_zip_writer_reads_back_whole(tmp_path):
    """Deflated pieces (inline and on the pool), stored files, links, directories, non-ASCII names, empty files."""
    root = tmp_path / 'tree'
    root.mkdir()
    sizes = _tree(str(root))
    (root / 'photo.jpg').write_bytes(os.urandom(3 << 20))
    (root / 'app.log').write_bytes(b''.join(b'%08d request served\n' % index for index in range(400000)))
    extra = [('database/app.dump.zst', str(root / 'big.bin'))]
    path = tmp_path / 'out.zip'
    with open(path, 'wb') as handle:
        sink = HashingWriter(handle)
        tally = write_zip(sink, 6, [str(root)], [], extra, checksums=True)
    assert sink.size == path.stat().st_size
    _unzip_test(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        infos = {info.filename: info for info in archive.infolist()}
        prefix = 'files/' + str(root).lstrip('/') + '/'
        for name in list(sizes) + ['photo', 'app']:
            member = prefix + name + ('.bin' if name in sizes else '.jpg' if name == 'photo' else '.log')
            data = archive.read(member)
            assert data == (root / member[len(prefix):]).read_bytes()
            if member in tally.checksums:
                assert hashlib.sha256(data).hexdigest() == tally.checksums[member]
        assert infos[prefix + 'photo.jpg'].compress_type == zipfile.ZIP_STORED
        assert infos[prefix + 'app.log'].compress_type == zipfile.ZIP_DEFLATED
        assert infos[prefix + 'app.log'].compress_size < infos[prefix + 'app.log'].file_size // 4
        assert archive.read(prefix + 'link') == b'one.bin' and stat.S_ISLNK(infos[prefix + 'link'].external_attr >> 16)
        assert infos[prefix + 'odd.bin'].external_attr >> 16 & 0o777 == 0o640
        assert infos[prefix + 'a' * 120 + '/'].is_dir()
        assert any('n\u00e4me' in name for name in infos)
        assert archive.read('database/app.dump.zst') == (root / 'big.bin').read_bytes()


def test_zip_writer_uses_zip64_end_records_past_65535_members(tmp_path):
    info = os.stat(str(tmp_path))
    path = tmp_path / 'many.zip'
    with open(path, 'wb') as handle:
        background = BackgroundWriter(handle)
        archive = ZipStream(background, 6)
        try:
            for index in range(70000):
                archive.add_directory('d%05d' % index, info)
            archive.close()
        finally:
            archive.shutdown()
            background.finish()
    with zipfile.ZipFile(path) as archive:
        assert len(archive.infolist()) == 70000
    _unzip_test(path)


def test_zip_writer_refuses_a_file_that_shrank(tmp_path):
    candidates = ['/sys/devices/virtual/net/lo/mtu', '/sys/kernel/mm/transparent_hugepage/enabled']
    short = [path for path in candidates if os.path.isfile(path) and os.lstat(path).st_size > len(open(path, 'rb').read())]
    if not short:
        pytest.skip('no sysfs file with a size larger than its content here')
    with pytest.raises(ArchiveError, match='%s shrank while it was being archived' % short[0]):
        write_zip(HashingWriter(io.BytesIO()), 6, [short[0]], [])


def test_tar_writer_refuses_a_file_that_shrank(tmp_path):
    """A file yielding fewer bytes than its size said fails clearly instead of being padded with zeros.

    sysfs files are real such files: lstat says 4096 bytes, reading gives a few.
    """
    candidates = ['/sys/devices/virtual/net/lo/mtu', '/sys/kernel/mm/transparent_hugepage/enabled']
    short = [path for path in candidates if os.path.isfile(path) and os.lstat(path).st_size > len(open(path, 'rb').read())]
    if not short:
        pytest.skip('no sysfs file with a size larger than its content here')
    out = io.BytesIO()
    with pytest.raises(ArchiveError, match='%s shrank while it was being archived' % short[0]):
        write_tar(HashingWriter(out), 'none', 0, [short[0]], [])


def test_background_writer_keeps_order_and_copies_views():
    out = io.BytesIO()
    writer = BackgroundWriter(out, depth=2)
    buffer = bytearray(b'abc')
    writer.write(memoryview(buffer))
    buffer[:] = b'xyz'  # the caller reuses its buffer at once: what was written must not change
    for index in range(200):
        writer.write(b'%d,' % index)
    writer.finish()
    assert out.getvalue() == b'abc' + b''.join(b'%d,' % index for index in range(200))


def test_background_writer_surfaces_a_failed_write():
    class FullDisk:
        def __init__(self):
            self.written = 0

        def write(self, data):
            if self.written >= 3:
                raise OSError(errno.ENOSPC, 'No space left on device')
            self.written += 1
            return len(data)
    disk = FullDisk()
    writer = BackgroundWriter(disk, depth=1)
    with pytest.raises(OSError, match='No space left'):
        for _index in range(100):
            writer.write(b'chunk')
        writer.finish()
    with pytest.raises(OSError, match='No space left'):
        writer.finish()
    assert disk.written == 3


def _frames(*parts):
    return b''.join(struct.pack('>BxxxL', stream, len(data)) + data for stream, data in parts)


def _demux(raw, cut):
    """Feed ``raw`` to the demultiplexer in pieces of at most ``cut`` bytes, as a socket may deliver it."""
    stream = ExecStream.__new__(ExecStream)
    stream.stderr, stream._limit, stream.argv, stream.container = b'', 65536, ['pg_dump'], 'db'
    source = io.BytesIO(raw)

    def fill(view):
        data = source.read(min(cut, len(view)))
        view[:len(data)] = data
        return len(data)
    return b''.join(stream._demultiplex(fill)), stream.stderr


@pytest.mark.parametrize('cut', [1, 3, 8, 9, 4096, 1 << 21])
def test_demultiplexer_splits_frames_however_they_arrive(cut):
    big = os.urandom(3 << 20)
    raw = _frames((1, b'PGDMP'), (2, b'pg_dump: warning: one\n'), (1, b''), (1, big), (2, b'two\n'), (1, b'end'))
    out, err = _demux(raw, cut)
    assert out == b'PGDMP' + big + b'end'
    assert err == b'pg_dump: warning: one\ntwo\n'


@pytest.mark.parametrize('cut_at', [3, 8 + 2, 8 + 9 - 1])  # inside the second frame's header or payload
def test_demultiplexer_refuses_a_stream_cut_inside_a_frame(cut_at):
    raw = _frames((1, b'PGDMP'), (1, b'more data'))
    with pytest.raises(DockerExecError, match='ended in the middle of a frame'):
        _demux(raw[:8 + 5 + cut_at], 4096)

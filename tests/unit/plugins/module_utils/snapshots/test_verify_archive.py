"""Verification of full archives is a real read-back: every byte hashed, every frame decompressed, members hashed.

The archives are written by the module's own writer on real files; the damage is done to the artifact on disk,
and where the artifact's sha256 alone would catch it the manifest is recomputed, so the check under test is the
one that has to catch it: a member's recorded sha256 (a stored frame carries no checksum of its own), a zstd
frame's checksum, the end of a truncated stream.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import HashingWriter
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tar_stream import write_tar
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.verify import (
    VerifyError,
    _scan_tar_fast,
    verify_archive,
)


def _archive(tmp_path, compression='zstd', checksums=True):
    """A tar.zst (or tar.gz) of a small tree, written as the module writes it, and its manifest."""
    root = tmp_path / 'tree'
    (root / 'docs' / ('d' * 110)).mkdir(parents=True)
    for index in range(300):
        (root / 'docs' / ('note%03d.txt' % index)).write_text('line %d of a small text file\n' % index * (index + 1))
    (root / 'docs' / ('d' * 110) / 'deep.txt').write_text('long path\n')
    (root / 'photo.jpg').write_bytes(os.urandom(400 * 1024))  # stored in raw frames: no frame checksum
    os.symlink('photo.jpg', str(root / 'link'))
    fmt = 'tar.zst' if compression == 'zstd' else 'tar.gz'
    path = str(tmp_path / ('a.' + fmt))
    with open(path, 'wb') as handle:
        sink = HashingWriter(handle)
        tally = write_tar(sink, compression, 3 if compression == 'zstd' else 6, [str(root)], [], (), checksums)
    manifest = dict(tier='full', artifact=dict(file=os.path.basename(path), size_bytes=sink.size,
                                               sha256=sink.sha256, format=fmt, compression=fmt),
                    files=tally.as_manifest())
    return path, manifest, root


def _rewrite(path, manifest, data):
    """Write ``data`` as the artifact and record its size and sha256, as if the damage had been there all along."""
    with open(path, 'wb') as handle:
        handle.write(data)
    manifest['artifact'].update(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize('compression', ['zstd', 'gzip'])
@pytest.mark.parametrize('checksums', [True, False])
def test_intact_archive_verifies_with_every_file_counted(tmp_path, compression, checksums):
    path, manifest, _root = _archive(tmp_path, compression, checksums)
    scan, raw = _scan_tar_fast(path, manifest['artifact']['format'], checksums)  # the one-pass reader, no fallback
    assert raw.sha256 == manifest['artifact']['sha256'] and scan.file_count == 302
    assert bool(scan.checksums) and all(scan.checksums.values()) == checksums
    detail = verify_archive(path, manifest)
    assert detail['files'] == manifest['files']['count'] == 302
    assert detail['file_bytes'] == manifest['files']['total_bytes']


def test_flipped_byte_in_a_stored_member_is_caught_by_its_recorded_hash(tmp_path):
    path, manifest, root = _archive(tmp_path)
    with open(path, 'rb') as handle:
        data = bytearray(handle.read())
    photo = (root / 'photo.jpg').read_bytes()
    at = data.find(photo[200000:200064])  # a raw frame holds the photo's bytes as they are
    assert at > 0
    data[at + 10] ^= 0x01
    _rewrite(path, manifest, bytes(data))
    with pytest.raises(VerifyError, match='member files/.*photo.jpg does not match its recorded sha256'):
        verify_archive(path, manifest)


def test_flipped_byte_in_a_compressed_frame_is_caught_by_decompression(tmp_path):
    path, manifest, _root = _archive(tmp_path)
    with open(path, 'rb') as handle:
        data = bytearray(handle.read())
    data[-300] ^= 0x20  # inside the last frame: the notes' headers and text, compressed with a checksum
    _rewrite(path, manifest, bytes(data))
    with pytest.raises(VerifyError, match='cannot be read back'):
        verify_archive(path, manifest)


@pytest.mark.parametrize('keep', [0.3, 0.7, 0.99])
def test_truncated_frame_is_caught_even_with_a_recomputed_manifest(tmp_path, keep):
    path, manifest, _root = _archive(tmp_path)
    with open(path, 'rb') as handle:
        data = handle.read()
    _rewrite(path, manifest, data[:int(len(data) * keep)])
    with pytest.raises(VerifyError, match='cannot be read back'):
        verify_archive(path, manifest)


def test_a_changed_byte_fails_on_the_artifact_hash(tmp_path):
    path, manifest, _root = _archive(tmp_path, checksums=False)
    with open(path, 'r+b') as handle:
        handle.seek(-100, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-100, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0xff]))
    with pytest.raises(VerifyError, match='sha256'):
        verify_archive(path, manifest)


def test_a_tar_only_tarfile_reads_is_verified_all_the_same(tmp_path):
    """GNU long names and hard links are left to tarfile's reader; the verdict is the same."""
    source = tmp_path / 'f.txt'
    source.write_text('x' * 5000)
    plain = tmp_path / 'plain.tar'
    with tarfile.open(str(plain), 'w', format=tarfile.GNU_FORMAT) as tar:
        tar.add(str(source), arcname='files/' + 'g' * 150)
    data = gzip.compress(plain.read_bytes())
    path = str(tmp_path / 'gnu.tar.gz')
    manifest = dict(tier='full', artifact=dict(file='gnu.tar.gz', format='tar.gz', compression='tar.gz'),
                    files=dict(count=1, total_bytes=5000,
                               sha256={'files/' + 'g' * 150: hashlib.sha256(b'x' * 5000).hexdigest()}))
    _rewrite(path, manifest, data)
    assert verify_archive(path, manifest)['files'] == 1

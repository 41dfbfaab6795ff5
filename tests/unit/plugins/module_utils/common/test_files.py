"""Atomic writes and checksums on the real filesystem."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.common import files as _files


def test_atomic_write_replaces_and_sets_mode(tmp_path):
    target = tmp_path / 'state.json'
    target.write_text('old')
    _files.atomic_write(str(target), '{"new": true}', mode=0o600)
    assert target.read_text() == '{"new": true}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ['state.json']


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / 'state.json'
    target.write_text('old')

    def broken_fsync(fd):
        raise OSError(28, 'No space left on device')

    # The only fake here: a full disk cannot be produced on demand in a unit test.
    monkeypatch.setattr(_files.os, 'fsync', broken_fsync)
    with pytest.raises(OSError, match='No space left'):
        _files.atomic_write(str(target), b'new' * 1000)
    assert target.read_text() == 'old'
    assert os.listdir(tmp_path) == ['state.json']


def test_sha256_file_matches_hashlib(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / 'blob'
    path.write_bytes(data)
    assert _files.sha256_file(str(path)) == (hashlib.sha256(data).hexdigest(), len(data))


def test_check_writable_dir(tmp_path):
    assert _files.check_writable_dir(str(tmp_path)) is None
    assert os.listdir(tmp_path) == []  # the write check cleans up after itself
    assert 'does not exist' in _files.check_writable_dir(str(tmp_path / 'missing'))
    (tmp_path / 'file').write_text('x')
    assert 'is not a directory' in _files.check_writable_dir(str(tmp_path / 'file'))
    assert 'is not writable' in _files.check_writable_dir('/sys/kernel')


def test_rename_no_replace_publishes_and_never_overwrites(tmp_path):
    """Two writers of the same second: the first keeps its artifact, the second gets FileExistsError."""
    first, second, final = tmp_path / 'a.tmp', tmp_path / 'b.tmp', tmp_path / 'app-20261123T020000Z.dump'
    first.write_bytes(b'first')
    second.write_bytes(b'second')
    _files.rename_no_replace(str(first), str(final))
    assert final.read_bytes() == b'first' and not first.exists()
    with pytest.raises(FileExistsError):
        _files.rename_no_replace(str(second), str(final))
    assert final.read_bytes() == b'first' and second.read_bytes() == b'second'

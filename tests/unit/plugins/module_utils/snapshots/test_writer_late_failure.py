"""A failure after the rename must take the artifact back and say so truthfully (real files, real tar.zst)."""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots import writer


def _params(paths):
    return dict(tier='full', format='custom', compression='zstd', compression_level=None, database=None,
                container=None, container_user='postgres', docker_host=None, pg_dump_path=None, paths=paths,
                exclude=[], archive_format='tar.zst', file_checksums=False, prefix='files', min_free_bytes=0,
                lock_wait_timeout_s=300, jobs=2, exact_count_max_rows=1000)


@pytest.mark.parametrize('failing', ['fsync_dir', 'write_manifest'])
def test_failure_after_rename_removes_the_artifact(tmp_path, monkeypatch, failing):
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'a.txt').write_text('a' * 1000)
    dest = tmp_path / 'dest'
    dest.mkdir()

    def broken(*_args, **_kwargs):
        raise OSError(errno.EIO, 'Input/output error', str(dest))
    monkeypatch.setattr(writer, failing, broken)  # a failing disk cannot be produced for real here
    with pytest.raises(writer.SnapshotFailure) as caught:
        writer.SnapshotWriter(_params([str(tree)]), str(dest), [str(tree)]).take(str(dest))
    assert 'Input/output error' in str(caught.value) and 'nothing of this run is left in dest' in str(caught.value)
    assert os.listdir(str(dest)) == []  # neither the renamed artifact nor a temp file stays behind

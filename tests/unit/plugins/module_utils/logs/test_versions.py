"""Which files are logs."""

from __future__ import annotations

import os

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.versions import LogPathError, expand_paths


def test_a_fifo_is_no_log(tmp_path):
    fifo = str(tmp_path / 'pipe.log')
    os.mkfifo(fifo)
    logs, unmatched, skipped = expand_paths([str(tmp_path / '*.log')])
    assert logs == [] and skipped == [dict(path=fifo, reason='is not a regular file')]
    with pytest.raises(LogPathError, match='is not a regular file'):
        expand_paths([fifo])

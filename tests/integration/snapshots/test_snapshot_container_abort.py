"""A local failure during a container dump stops pg_dump inside the container (real container, real full disk)."""

from __future__ import annotations

import os
import subprocess
import time

from tests.harness.playbook import run_tasks
from tests.integration.snapshots.test_snapshot_container import _exec, pg_container  # noqa: F401 pylint: disable=unused-import
from tests.integration.snapshots.test_snapshot_roundtrip import ARCHIVE


def _dumps_running():
    """pg_dump processes of the bulky database, as the host sees them (containers' processes included)."""
    out = subprocess.run(['ps', '-eo', 'args'], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith('pg_dump') and line.endswith('-d bulky')]


def test_local_failure_stops_the_dump_in_the_container(pg_container, tiny_fs, docker_client):  # noqa: F811 pylint: disable=redefined-outer-name
    name = pg_container[0]
    container = docker_client.containers.get(name)
    _exec(container, 'createdb', 'bulky')
    # Small on disk (TOAST compresses the repetition), some 40 MB as a dump: the 2 MiB dest fills up mid-stream.
    _exec(container, 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', 'bulky', '-c',
          "CREATE TABLE b AS SELECT g AS id, repeat('abcdefgh', 125000) AS body FROM generate_series(1, 40) g")
    dest = os.path.join(tiny_fs, 'snapshots')
    run = run_tasks([{'name': 'disk fills', 'ignore_errors': True,
                      ARCHIVE: dict(database='bulky', container=name, dest=dest, compression='none', min_free_bytes=0)}])
    result = run.result('disk fills')
    assert result['failed'] and 'No space left on device' in result['msg'] and 'Traceback' not in result['msg']
    assert any(cmd.startswith('kill -TERM ') and name in cmd for cmd in result['executed_commands'])
    assert os.listdir(dest) == []
    for _attempt in range(40):  # the signal is delivered asynchronously; give pg_dump a moment to exit
        if not _dumps_running():
            break
        time.sleep(0.25)
    assert _dumps_running() == []

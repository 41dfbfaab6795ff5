"""Bad inputs and faults of snapshot_archive / snapshot_restore, each against real PostgreSQL and real files.

Every case asserts the clear message and that nothing changed: no artifact,
no manifest, no temporary file left, older snapshots still verifying.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time
import zipfile

import pytest
import zstandard

from tests.harness.playbook import run_tasks
from tests.integration.snapshots.conftest import SAMPLE_TABLES, drop_database
from tests.integration.snapshots.test_snapshot_roundtrip import ARCHIVE, RESTORE, assert_ok, conn, manifest_of


def files_in(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


@pytest.fixture
def readonly_dir(tmp_path):
    path = str(tmp_path / 'ro')
    os.mkdir(path)
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', path], check=False).returncode != 0:
        pytest.skip('cannot mount a read-only tmpfs here')
    yield path
    subprocess.run(['umount', path], check=False)


def test_bad_inputs_fail_clearly_and_write_nothing(pg, sample_db, dest, readonly_dir, tmp_path):
    c = conn(pg)
    old_pg_dump = tmp_path / 'pg_dump'
    old_pg_dump.write_text('#!/bin/sh\necho "pg_dump (PostgreSQL) 13.0"\n')
    old_pg_dump.chmod(0o755)
    cases = {
        'unknown database': dict(c, database='no_such_db_%d' % os.getpid(), dest=dest),
        'wrong password': dict(c, database=sample_db, dest=dest, login_password='wrong'),
        'dest not writable': dict(c, database=sample_db, dest=readonly_dir),
        'missing path': dict(c, tier='full', database=sample_db, dest=dest, paths=[str(tmp_path / 'nope')]),
        'old pg_dump': dict(c, database=sample_db, dest=dest, pg_dump_path=str(old_pg_dump)),
        'level out of range': dict(c, database=sample_db, dest=dest, compression_level=42),
        'directory in a container': dict(database=sample_db, dest=dest, container='any', format='directory'),
    }
    tasks = [{'name': name, ARCHIVE: args, 'ignore_errors': True} for name, args in cases.items()]
    tasks.append({'name': 'restore into foreign db', 'ignore_errors': True,
                  RESTORE: dict(c, dest=dest, database=sample_db, scratch_database=sample_db)})
    run = run_tasks(tasks)
    messages = dict((name, run.result(name).get('msg', '')) for name in list(cases) + ['restore into foreign db'])
    assert all(run.result(name).get('failed') for name in messages), messages
    assert 'does not exist' in messages['unknown database'] and 'check the database option' in messages['unknown database']
    assert 'password authentication failed' in messages['wrong password']
    assert 'cannot hold snapshots' in messages['dest not writable'] and readonly_dir in messages['dest not writable']
    assert 'nope does not exist' in messages['missing path'] and 'missing_ok' in messages['missing path']
    assert 'pg_dump 13.0' in messages['old pg_dump'] and 'older than server 15' in messages['old pg_dump']
    assert 'compression_level 42' in messages['level out of range']
    assert 'format directory needs a local pg_dump' in messages['directory in a container']
    assert 'does not start with scratch_prefix' in messages['restore into foreign db']
    for name in cases:
        assert 'Traceback' not in messages[name]
    assert [n for n in files_in(dest) if not n.endswith('.manifest.json')] == []
    assert files_in(dest) == [] and files_in(readonly_dir) == []
    rows = pg.execute('SELECT count(*) FROM orders', dbname=sample_db)[0][0]
    assert rows == SAMPLE_TABLES['public.orders']  # the "foreign" database was not touched


def test_tampered_snapshot_fails_verification_and_restore(pg, sample_db, dest):
    c = conn(pg)
    run = run_tasks([{'name': 'take', ARCHIVE: dict(c, database=sample_db, dest=dest, format='plain')}])
    assert_ok(run)
    path = run.result('take')['snapshot']['path']
    with open(path, 'r+b') as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    run = run_tasks([
        {'name': 'verify', ARCHIVE: dict(database=sample_db, dest=dest, state='verified'), 'ignore_errors': True},
        {'name': 'drill', RESTORE: dict(c, dest=dest, database=sample_db), 'ignore_errors': True},
    ])
    verify, drill = run.result('verify'), run.result('drill')
    assert verify['failed'] and 'does not match its manifest' in verify['msg'] and path in verify['msg']
    assert verify['verified'][0]['ok'] is False
    assert drill['failed'] and drill['msg'].startswith('refusing to restore') and 'sha256' in drill['msg']
    assert pg.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'restore\\_drill\\_%'")[0][0] == 0


def test_retention_keeps_newest_verified_and_never_touches_foreign_files(pg, sample_db, dest):
    c = conn(pg)
    base = dict(c, database=sample_db, dest=dest, slot='always')
    run = run_tasks([{'name': 'first', ARCHIVE: base}])
    assert_ok(run)
    only = run.result('first')['snapshot']['path']
    manifest = manifest_of(only)
    manifest['verified_at'] = None
    with open(only + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle)
    run = run_tasks([{'name': 'prune', ARCHIVE: dict(base, state='pruned', keep_last=0), 'ignore_errors': True}])
    prune = run.result('prune')
    assert prune['failed'] and 'refusing to prune' in prune['msg'] and 'verified' in prune['msg']
    assert os.path.exists(only)

    foreign = os.path.join(dest, 'notes.txt')
    lookalike = os.path.join(dest, '%s-database-20200101T000000Z.dump.zst' % sample_db)  # no manifest: not ours
    for path in (foreign, lookalike):
        with open(path, 'w') as handle:
            handle.write('someone else\'s file')
    run = run_tasks([{'name': 'second', ARCHIVE: base}, {'name': 'third', ARCHIVE: base}])
    assert_ok(run)
    second, newest = run.result('second')['snapshot']['path'], run.result('third')['snapshot']['path']
    before = files_in(dest)
    planned = run_tasks([{'name': 'plan', ARCHIVE: dict(base, state='pruned', keep_last=1)},
                         {'name': 'plan with a new one', ARCHIVE: dict(base, keep_last=1)}], check=True)
    assert sorted(planned.result('plan')['pruned']) == sorted([only, second])
    with_new = planned.result('plan with a new one')
    assert with_new['snapshot']['status'] == 'planned' and with_new['kept'] == [with_new['snapshot']['path']]
    assert sorted(with_new['pruned']) == sorted([only, second, newest])  # the new one would replace all three
    assert files_in(dest) == before  # check mode lists, deletes nothing
    run = run_tasks([{'name': 'prune', ARCHIVE: dict(base, state='pruned', keep_last=1)},
                     {'name': 'prune again', ARCHIVE: dict(base, state='pruned', keep_last=1)}])
    assert_ok(run)
    pruned = run.result('prune')
    assert sorted(pruned['pruned']) == sorted([only, second])
    assert pruned['kept'] == [newest] and pruned['changed'] is True
    assert run.result('prune again')['changed'] is False and run.result('prune again')['pruned'] == []
    # The kept snapshot with its manifest and globals artifact; the pruned ones' globals went with them.
    assert sorted(files_in(dest)) == sorted([os.path.basename(foreign), os.path.basename(lookalike),
                                             os.path.basename(newest), os.path.basename(newest) + '.manifest.json',
                                             os.path.basename(newest) + '.globals.sql'])


def test_retention_refuses_to_prune_for_a_newest_snapshot_damaged_since_it_was_written(pg, sample_db, dest):
    base = dict(conn(pg), database=sample_db, dest=dest, slot='always')
    run = run_tasks([{'name': 'older', ARCHIVE: base}, {'name': 'newer', ARCHIVE: base}])
    assert_ok(run)
    older, newer = run.result('older')['snapshot']['path'], run.result('newer')['snapshot']['path']
    with open(newer, 'r+b') as handle:  # its manifest still says verified
        handle.seek(os.path.getsize(newer) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    before = files_in(dest)
    run = run_tasks([{'name': 'prune', ARCHIVE: dict(base, state='pruned', keep_last=1), 'ignore_errors': True}])
    prune = run.result('prune')
    assert prune['failed'] and prune['msg'].startswith('refusing to prune: the newest snapshot retention keeps, %s, '
                                                       'does not verify now' % newer)
    assert 'nothing was deleted' in prune['msg']
    assert files_in(dest) == before and os.path.exists(older)


def test_dest_too_small_is_refused_or_cleaned(pg, tiny_fs):
    name = 'snap_big_%d' % os.getpid()
    pg.create_database(name)
    try:
        # 1.2 MB of random bytes: the estimate (table size) fits in 2 MiB, the hex-escaped plain dump does not.
        pg.execute("CREATE TABLE blobs AS SELECT g AS id, decode(string_agg(lpad(to_hex((random() * 255)::int), 2, '0'), ''), "
                   "'hex') AS data FROM generate_series(1, 300) g, generate_series(1, 4000) b GROUP BY g", dbname=name)
        c = conn(pg)
        dest = os.path.join(tiny_fs, 'snaps')
        run = run_tasks([
            {'name': 'estimate', ARCHIVE: dict(c, database=name, dest=dest, min_free_bytes=1800000),
             'ignore_errors': True},
            {'name': 'enospc', ARCHIVE: dict(c, database=name, dest=dest, min_free_bytes=0, format='plain',
                                             compression='none'), 'ignore_errors': True},
        ])
        estimate, enospc = run.result('estimate'), run.result('enospc')
        assert estimate['failed'] and 'bytes free' in estimate['msg'] and 'min_free_bytes' in estimate['msg']
        assert enospc['failed'] and 'No space left on device' in enospc['msg'] and 'removed' in enospc['msg']
        assert files_in(dest) == []  # no partial file, no temp file, no manifest
    finally:
        drop_database(pg, name)


def _written_bytes(pid):
    with open('/proc/%s/io' % pid) as handle:
        return int(dict(line.split(': ') for line in handle.read().splitlines())['wchar'])


def _kill_pg_dump_of(database, stop, killed):
    """SIGKILL the pg_dump dumping ``database`` once it has written 2 MB: really mid-stream."""
    while not stop.is_set():
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                    argv = handle.read().split(b'\0')
                if argv and argv[0].endswith(b'pg_dump') and database.encode() in argv \
                        and _written_bytes(pid) >= 2 * 1024 * 1024:
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    return
            except (OSError, ValueError, KeyError):
                continue  # not ours, or gone meanwhile
        time.sleep(0.002)


def test_pg_dump_killed_mid_stream_leaves_no_snapshot(pg, sample_db, dest):
    name = 'snap_kill_%d' % os.getpid()
    pg.create_database(name)
    try:
        pg.execute("CREATE TABLE filler AS SELECT g, md5(g::text) || md5((g * 7)::text) AS t "
                   "FROM generate_series(1, 200000) g", dbname=name)
        c = conn(pg)
        run = run_tasks([{'name': 'older', ARCHIVE: dict(c, database=sample_db, dest=dest)}])
        assert_ok(run)
        older = run.result('older')['snapshot']['path']
        stop = threading.Event()
        killed_pids = []
        killer = threading.Thread(target=_kill_pg_dump_of, args=(name, stop, killed_pids))
        killer.start()
        try:
            run = run_tasks([
                # plain + gzip 9 compresses in the module's own thread, so pg_dump waits on the pipe meanwhile
                {'name': 'killed', ARCHIVE: dict(c, database=name, dest=dest, format='plain', compression='gzip',
                                                 compression_level=9), 'ignore_errors': True},
                {'name': 'older still verifies', ARCHIVE: dict(database=sample_db, dest=dest, state='verified')},
            ])
        finally:
            stop.set()
            killer.join()
        assert killed_pids, 'the watcher never caught pg_dump mid-stream'
        killed = run.result('killed')
        assert killed['failed'] and 'killed by signal 9' in killed['msg'] and 'nothing was written' in killed['msg']
        assert not [n for n in files_in(dest) if n.startswith(name) or n.startswith('.')]
        still = run.result('older still verifies')['verified'][0]
        assert still['path'] == older and still['ok'] is True
    finally:
        drop_database(pg, name)


def _slip_members():
    return [('files/ok.txt', b'fine'), ('../etc/x', b'escaped'), ('/tmp/abs-%d' % os.getpid(), b'absolute')]


def _write_manifest(path, fmt, count):
    with open(path, 'rb') as handle:
        data = handle.read()
    manifest = dict(schema_version=1, tier='full', created_at='2026-01-01T00:00:00Z', verified_at='2026-01-01T00:00:00Z',
                    host='crafted', artifact=dict(file=os.path.basename(path), size_bytes=len(data),
                                                  sha256=hashlib.sha256(data).hexdigest(), format=fmt,
                                                  compression=fmt),
                    files=dict(count=count, total_bytes=4 * count))
    with open(path + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle)


def test_crafted_slip_archives_are_refused(pg, tmp_path):
    os.makedirs(str(tmp_path / 'snaps'))
    tar_path = str(tmp_path / 'snaps' / 'evil-full-20260101T000000Z.tar.zst')
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w') as tar:
        for name, data in _slip_members():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with open(tar_path, 'wb') as handle:
        handle.write(zstandard.ZstdCompressor().compress(raw.getvalue()))
    zip_path = str(tmp_path / 'snaps' / 'zevil-full-20260101T000000Z.zip')
    with zipfile.ZipFile(zip_path, 'w') as archive:
        archive.writestr('files/ok.txt', b'fine')
        archive.writestr('files/../../etc/x', b'escaped')
    link_path = str(tmp_path / 'snaps' / 'linky-full-20260101T000000Z.tar.zst')
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w') as tar:
        info = tarfile.TarInfo('files/out')
        info.type, info.linkname = tarfile.SYMTYPE, '../../../../etc'
        tar.addfile(info)
    with open(link_path, 'wb') as handle:
        handle.write(zstandard.ZstdCompressor().compress(raw.getvalue()))
    for path, fmt, count in ((tar_path, 'tar.zst', 1), (zip_path, 'zip', 1), (link_path, 'tar.zst', 0)):
        _write_manifest(path, fmt, count)
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    run = run_tasks([{'name': name, 'ignore_errors': True,
                      RESTORE: dict(conn(pg), snapshot=path, scratch_dir=str(scratch))}
                     for name, path in (('tar', tar_path), ('zip', zip_path), ('link', link_path))])
    assert "member '../etc/x'" in run.result('tar')['msg'] and 'slip' in run.result('tar')['msg']
    assert "member 'files/../../etc/x'" in run.result('zip')['msg']
    assert "member 'files/out'" in run.result('link')['msg'] and 'outside' in run.result('link')['msg']
    assert all(run.result(n)['failed'] for n in ('tar', 'zip', 'link'))
    assert not os.path.exists(str(tmp_path / 'etc')) and not os.path.exists('/tmp/abs-%d' % os.getpid())
    assert os.listdir(str(scratch)) == []

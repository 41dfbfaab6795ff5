"""Regressions of the snapshot review: link slips, absolute links, scratch database guards, server errors."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile

import zstandard
from psycopg2 import sql

from tests.harness.playbook import run_tasks
from tests.integration.snapshots.conftest import SAMPLE_TABLES, drop_database, fill_sample
from tests.integration.snapshots.test_snapshot_faults import _write_manifest
from tests.integration.snapshots.test_snapshot_roundtrip import ARCHIVE, RESTORE, assert_ok, conn, drill_databases


def _tar_zst(path, members):
    """Write a tar.zst of (name, kind, payload) members: kind 'link' (payload = target) or 'file' (payload = bytes)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w') as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == 'link':
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                info.size, info.mode = len(payload), 0o640
                tar.addfile(info, io.BytesIO(payload))
    with open(path, 'wb') as handle:
        handle.write(zstandard.ZstdCompressor().compress(raw.getvalue()))


def _zip(path, members):
    with zipfile.ZipFile(path, 'w') as archive:
        for name, kind, payload in members:
            info = zipfile.ZipInfo(name)
            if kind == 'link':
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, payload.encode())
            else:
                info.external_attr = (stat.S_IFREG | 0o640) << 16
                archive.writestr(info, payload)


SLIP_THROUGH_LINK = [('files/l', 'link', '.'), ('files/l/l/c', 'link', '../../../outside/pwned'),
                     ('files/c', 'file', b'pwnd')]
ABSOLUTE_LINK = [('files/srv/app/current', 'link', '/var/www/releases/x'), ('files/srv/app/a.txt', 'file', b'data')]


def test_link_slips_are_refused_and_absolute_links_restored(pg, tmp_path):
    snaps = tmp_path / 'snaps'
    snaps.mkdir()
    (tmp_path / 'outside').mkdir()
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    cases = {}
    for label, members, count in (('slip', SLIP_THROUGH_LINK, 1), ('abs', ABSOLUTE_LINK, 1)):
        tar_path = str(snaps / ('%s-full-20260101T000000Z.tar.zst' % label))
        _tar_zst(tar_path, members)
        zip_path = str(snaps / ('%szip-full-20260101T000000Z.zip' % label))
        _zip(zip_path, members)
        _write_manifest(tar_path, 'tar.zst', count)
        _write_manifest(zip_path, 'zip', count)
        cases[label + ' tar'] = tar_path
        cases[label + ' zip'] = zip_path
    run = run_tasks([{'name': name, 'ignore_errors': True, RESTORE: dict(conn(pg), snapshot=path, scratch_dir=str(scratch))}
                     for name, path in cases.items()])
    for name in ('slip tar', 'slip zip'):
        result = run.result(name)
        assert result['failed'] and "member 'files/l/l/c'" in result['msg'] and 'through the link files/l' in result['msg']
        assert 'Traceback' not in result['msg']
    assert os.listdir(str(tmp_path / 'outside')) == []  # nothing landed outside the scratch directory
    for name in ('abs tar', 'abs zip'):
        result = run.result(name)
        assert not result.get('failed'), result.get('msg')
        assert result['matches'] is True and result['files']['absolute_links'] == 1
        assert result['files']['restored_count'] == 1 and result['files']['restored_bytes'] == 4
    assert os.listdir(str(scratch)) == []  # every scratch directory removed again


def test_absolute_link_kept_for_inspection_is_not_followed(pg, tmp_path):
    path = str(tmp_path / 'abs-full-20260101T000000Z.tar.zst')
    _tar_zst(path, ABSOLUTE_LINK)
    _write_manifest(path, 'tar.zst', 1)
    run = run_tasks([{'name': 'keep', RESTORE: dict(conn(pg), snapshot=path, scratch_dir=str(tmp_path), keep=True)}])
    assert_ok(run)
    restored = os.path.join(run.result('keep')['scratch_dir'], 'files', 'srv', 'app')
    assert os.readlink(os.path.join(restored, 'current')) == '/var/www/releases/x'
    assert stat.S_IMODE(os.stat(os.path.join(restored, 'a.txt')).st_mode) == 0o640


def _mark(pg, dbname):
    rows = pg.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (dbname,))
    return rows[0][0] if rows else None


def test_scratch_database_guards(pg, dest):
    source = 'drillsrc_%d' % os.getpid()
    foreign = 'restore_drill_foreign_%d' % os.getpid()
    fill_sample(pg, source)
    pg.execute(sql.SQL('CREATE DATABASE {}').format(sql.Identifier(foreign)))
    pg.execute(sql.SQL('CREATE TABLE precious (id int)'), dbname=foreign)
    c = conn(pg)
    try:
        run = run_tasks([
            {'name': 'take', ARCHIVE: dict(c, database=source, dest=dest)},
            {'name': 'source as scratch', 'ignore_errors': True,
             RESTORE: dict(c, dest=dest, database=source, scratch_prefix='drillsrc_', scratch_database=source)},
            {'name': 'login db as scratch', 'ignore_errors': True,
             RESTORE: dict(c, dest=dest, database=source, login_db=foreign, scratch_database=foreign)},
            {'name': 'unmarked existing', 'ignore_errors': True,
             RESTORE: dict(c, dest=dest, database=source, scratch_database=foreign)},
            {'name': 'kept drill', RESTORE: dict(c, dest=dest, database=source, keep=True)},
            {'name': 'replaces its own leftover', RESTORE: dict(c, dest=dest, database=source)},
        ])
        assert run.result('take')['changed'] is True
        msg = run.result('source as scratch')['msg']
        assert run.result('source as scratch')['failed'] and 'refusing scratch database %s' % source in msg
        assert 'dumped database' in msg
        msg = run.result('login db as scratch')['msg']
        assert run.result('login db as scratch')['failed'] and 'login database' in msg
        msg = run.result('unmarked existing')['msg']
        assert run.result('unmarked existing')['failed'] and 'does not carry the mark' in msg and foreign in msg
        assert pg.execute('SELECT count(*) FROM orders', dbname=source)[0][0] == SAMPLE_TABLES['public.orders']
        assert pg.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'precious'", dbname=foreign)[0][0] == 1
        kept = run.result('kept drill')['scratch_database']
        assert kept == 'restore_drill_' + source
        assert run.result('replaces its own leftover')['matches'] is True
        assert kept not in drill_databases(pg)  # the marked leftover was replaced, then dropped
        assert any('COMMENT ON DATABASE' in cmd and 'restore drill' in cmd
                   for cmd in run.result('kept drill')['executed_commands'])
    finally:
        drop_database(pg, source)
        drop_database(pg, foreign)
        drop_database(pg, 'restore_drill_' + source)


def test_scratch_database_marked_and_create_failure_is_clear(pg, sample_db, dest):
    role = 'nocreatedb_%d' % os.getpid()
    pg.create_role(role, 'pw-nocreatedb')
    c = conn(pg)
    try:
        run = run_tasks([
            {'name': 'take', ARCHIVE: dict(c, database=sample_db, dest=dest)},
            {'name': 'kept', RESTORE: dict(c, dest=dest, database=sample_db, keep=True)},
            {'name': 'no createdb', 'ignore_errors': True,
             RESTORE: dict(c, dest=dest, database=sample_db, login_user=role, login_password='pw-nocreatedb',
                           scratch_database='restore_drill_nocreate_%d' % os.getpid())},
        ])
        kept = run.result('kept')['scratch_database']
        assert (_mark(pg, kept) or '').startswith('engineroom.maintenance restore drill ')
        failed = run.result('no createdb')
        assert failed['failed'] and 'Traceback' not in failed['msg']
        assert 'permission denied to create database' in failed['msg'] and 'CREATEDB' in failed['msg']
        assert not any(cmd.startswith('DROP DATABASE') for cmd in failed['executed_commands'])
        assert 'restore_drill_nocreate_%d' % os.getpid() not in drill_databases(pg)
    finally:
        drop_database(pg, 'restore_drill_' + sample_db)
        pg.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))

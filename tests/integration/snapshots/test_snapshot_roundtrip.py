"""snapshot_archive and snapshot_restore end to end: real pg_dump/pg_restore/psql, real files, real playbooks."""

from __future__ import annotations

import json
import os
import stat
import zipfile

from tests.harness.playbook import run_tasks
from tests.integration.snapshots.conftest import SAMPLE_TABLES

ARCHIVE = 'engineroom.maintenance.snapshot_archive'
RESTORE = 'engineroom.maintenance.snapshot_restore'


def conn(pg):
    return dict(login_host=pg.host, login_port=pg.port, login_user='postgres', login_password=pg.superuser_password)


def assert_ok(run):
    failed = [(t['_task'], t.get('msg')) for t in run.tasks if t.get('failed')]
    assert run.rc == 0 and not failed, (failed, run.stderr[-2000:])


def manifest_of(path):
    with open(path + '.manifest.json') as handle:
        return json.load(handle)


def drill_databases(pg):
    return [row[0] for row in pg.execute("SELECT datname FROM pg_database WHERE datname LIKE 'restore\\_drill\\_%'")]


def test_database_tier_dump_verify_slot_and_restore(pg, sample_db, dest):
    c = conn(pg)
    run = run_tasks([
        {'name': 'custom', ARCHIVE: dict(c, database=sample_db, dest=dest)},
        {'name': 'again in the slot', ARCHIVE: dict(c, database=sample_db, dest=dest)},
        {'name': 'plain gzip', ARCHIVE: dict(c, database=sample_db, dest=dest, prefix='plain', format='plain',
                                             compression='gzip', slot='always')},
        {'name': 'directory', ARCHIVE: dict(c, database=sample_db, dest=dest, prefix='dirfmt', format='directory',
                                            jobs=2)},
        {'name': 'custom gzip', ARCHIVE: dict(c, database=sample_db, dest=dest, prefix='zlib', compression='gzip')},
        {'name': 'verify all', ARCHIVE: dict(database=sample_db, dest=dest, state='verified', which='all')},
        {'name': 'drill custom', RESTORE: dict(c, dest=dest, database=sample_db)},
        {'name': 'drill plain', RESTORE: dict(c, dest=dest, database=sample_db, prefix='plain')},
        {'name': 'drill directory', RESTORE: dict(c, dest=dest, database=sample_db, prefix='dirfmt', jobs=2)},
        {'name': 'drill custom gzip', RESTORE: dict(c, dest=dest, database=sample_db, prefix='zlib')},
    ])
    assert_ok(run)
    first = run.result('custom')
    snap = first['snapshot']
    assert first['changed'] is True and snap['status'] == 'written'
    assert snap['path'].endswith('.dump.zst') and os.path.basename(snap['path']).startswith(sample_db + '-database-')
    assert os.path.getsize(snap['path']) == snap['size_bytes']
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    manifest = manifest_of(snap['path'])
    assert list(manifest)[0] == 'schema_version' and manifest['schema_version'] == 2
    assert manifest['verified_at'] and manifest['tier'] == 'database'
    assert manifest['artifact'] == dict(file=os.path.basename(snap['path']), size_bytes=snap['size_bytes'],
                                        sha256=snap['sha256'], format='custom', compression='zstd')
    assert manifest['database']['pg_dump_version'].startswith('15.')
    tables = manifest['database']['tables']
    assert dict((t, v['rows']) for t, v in tables.items()) == SAMPLE_TABLES
    assert all(v['exact'] for v in tables.values())
    assert first['verified'][0]['ok'] is True

    second = run.result('again in the slot')
    assert second['changed'] is False and second['snapshot']['status'] == 'existing'
    assert second['snapshot']['path'] == snap['path']
    assert len([n for n in os.listdir(dest) if n.startswith(sample_db) and n.endswith('.dump.zst')]) == 1

    # custom + gzip is pg_dump's own zlib (-Z): a plain .dump that pg_restore reads, not compressed twice.
    zlib = run.result('custom gzip')['snapshot']
    assert zlib['path'].endswith('.dump') and manifest_of(zlib['path'])['artifact']['compression'] == 'gzip'
    assert run.result('drill custom gzip')['matches'] is True

    plain = run.result('plain gzip')['snapshot']
    assert plain['path'].endswith('.sql.gz') and manifest_of(plain['path'])['artifact']['format'] == 'plain'

    directory = run.result('directory')['snapshot']
    assert directory['path'].endswith('.dir.tar.zst')
    dir_manifest = manifest_of(directory['path'])
    assert dir_manifest['artifact']['format'] == 'directory' and dir_manifest['database']['dump_files'] >= 5
    assert 'pg_restore read all' in run.result('directory')['verified'][0]['message']
    assert 'pg_restore read the whole dump' in first['verified'][0]['message']
    assert not [n for n in os.listdir(dest) if n.startswith('.')]  # staging directory and temp files are gone

    verified = run.result('verify all')
    assert verified['changed'] is False and [v['ok'] for v in verified['verified']] == [True]

    for name in ('drill custom', 'drill plain', 'drill directory'):
        drill = run.result(name)
        assert drill['matches'] is True, drill['summary']
        assert drill['changed'] is False
        assert dict((t['table'], t['actual']) for t in drill['tables']) == SAMPLE_TABLES
        assert drill['rto_s'] > 0
    assert run.result('drill plain')['snapshot'] == plain['path']
    assert any(' -j 2 ' in cmd for cmd in run.result('drill directory')['executed_commands'])
    assert drill_databases(pg) == []  # the scratch databases were dropped


def make_tree(root):
    """Text files, an already-compressed (random) jpg, a nested dir, a symlink inside the tree, an excluded file."""
    os.makedirs(os.path.join(root, 'uploads', 'nested'))
    with open(os.path.join(root, 'uploads', 'readme.txt'), 'w') as handle:
        handle.write('hello\n' * 1000)
    with open(os.path.join(root, 'uploads', 'nested', 'photo.jpg'), 'wb') as handle:
        handle.write(os.urandom(50000))
    with open(os.path.join(root, 'uploads', 'skip.tmp'), 'w') as handle:
        handle.write('excluded')
    os.symlink('readme.txt', os.path.join(root, 'uploads', 'alias-link'))
    return os.path.join(root, 'uploads')


def test_full_tier_tar_and_zip_with_restore_drill(pg, sample_db, dest, tmp_path):
    tree = make_tree(str(tmp_path))
    c = conn(pg)
    common = dict(c, tier='full', database=sample_db, dest=dest, paths=[tree, str(tmp_path / 'absent')],
                  missing_ok=True, exclude=['*.tmp'], slot='always')
    run = run_tasks([
        {'name': 'tar', ARCHIVE: dict(common, file_checksums=True)},
        {'name': 'zip', ARCHIVE: dict(common, prefix='zipped', archive_format='zip')},
        {'name': 'drill tar', RESTORE: dict(c, dest=dest, tier='full', database=sample_db, scratch_dir=str(tmp_path))},
        {'name': 'drill zip', RESTORE: dict(c, dest=dest, tier='full', prefix='zipped', keep=True,
                                            scratch_dir=str(tmp_path))},
    ])
    assert_ok(run)
    tar = run.result('tar')
    assert any('absent' in w for w in tar.get('warnings', []))
    manifest = manifest_of(tar['snapshot']['path'])
    assert manifest['files']['count'] == 2  # readme.txt and photo.jpg; the link is not a file, skip.tmp excluded
    assert manifest['files']['total_bytes'] == 6000 + 50000
    assert len(manifest['files']['sha256']) == 2
    assert manifest['database']['member'] == 'database/%s.dump.zst' % sample_db

    zipped = run.result('zip')['snapshot']['path']
    with zipfile.ZipFile(zipped) as archive:
        kinds = dict((info.filename.rsplit('/', 1)[-1], info.compress_type) for info in archive.infolist())
        link = [info for info in archive.infolist() if info.filename.endswith('alias-link')][0]
        assert archive.read(link) == b'readme.txt'  # stored as a link, not followed
    assert kinds['photo.jpg'] == zipfile.ZIP_STORED and kinds['readme.txt'] == zipfile.ZIP_DEFLATED
    assert kinds[sample_db + '.dump.zst'] == zipfile.ZIP_STORED
    assert 'skip.tmp' not in kinds

    for name in ('drill tar', 'drill zip'):
        drill = run.result(name)
        assert drill['matches'] is True, drill['summary']
        assert drill['files']['restored_count'] == 2 and drill['files']['restored_bytes'] == 56000
    assert run.result('drill tar')['files']['checksums_checked'] == 2
    kept = run.result('drill zip')
    assert kept['changed'] is True
    restored = os.path.join(kept['scratch_dir'], 'files', tree.lstrip('/'))
    assert os.readlink(os.path.join(restored, 'alias-link')) == 'readme.txt'
    with open(os.path.join(restored, 'readme.txt')) as handle:
        assert handle.read() == 'hello\n' * 1000
    assert kept['scratch_database'] in drill_databases(pg)
    pg.execute('DROP DATABASE %s WITH (FORCE)' % kept['scratch_database'])
    assert not os.path.exists(run.result('drill tar')['scratch_dir'])


def test_check_mode_plans_without_writing(pg, sample_db, dest):
    c = conn(pg)
    run = run_tasks([{'name': 'plan', ARCHIVE: dict(c, database=sample_db, dest=dest)},
                     {'name': 'plan drill', RESTORE: dict(c, dest=dest, database=sample_db), 'ignore_errors': True}],
                    check=True, diff=True)
    plan = run.result('plan')
    assert plan['changed'] is True and plan['snapshot']['status'] == 'planned'
    assert plan['snapshot']['path'].startswith(os.path.join(dest, sample_db + '-database-'))
    assert os.path.basename(plan['snapshot']['path']) in plan['diff']['after']
    assert plan['summary'].startswith('would write')
    assert not os.path.exists(dest)  # not even the directory was created
    assert 'no database snapshot' in run.result('plan drill')['msg']

"""The full_archive role on localhost: the real dump of the `pg` fixture plus real uploads and log trees."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile

import pytest

from tests.harness.backup_roles import (APP_TABLES, LOGS, UPLOADS, assert_ran, drop_database, expect_failure,
                                        fill_app_database, listing, make_tree, role_task, show)
from tests.harness.playbook import run_tasks


@pytest.fixture(scope='module')
def app_db(pg):
    name = 'role_full_%d' % os.getpid()
    fill_app_database(pg, name)
    yield name
    drop_database(pg, name)


@pytest.fixture
def site():
    """uploads/, logs/ and an empty backups location in a fresh directory."""
    path = tempfile.mkdtemp(prefix='engineroom-role-full-')
    make_tree(os.path.join(path, 'uploads'), UPLOADS)
    make_tree(os.path.join(path, 'logs'), LOGS)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fleet(pg, database, site):
    return dict(engineroom_database=database, engineroom_backup_dir=os.path.join(site, 'backups'),
                engineroom_uploads_dir=os.path.join(site, 'uploads'), engineroom_logs_dir=os.path.join(site, 'logs'),
                engineroom_postgres=dict(login_host=pg.host, login_port=pg.port, login_user='postgres',
                                         login_password=pg.superuser_password))


def test_weekly_archive_of_dump_uploads_and_logs(pg, app_db, site):
    dest = os.path.join(site, 'backups')
    run = run_tasks([
        role_task('full_archive', dict(full_archive_archive_format='tar.gz', full_archive_exclude=['*.1']),
                  name='first'),
        show('full_archive_result', 'first result'),
        show('full_archive_verify_result', 'first verification'),
        role_task('full_archive', dict(full_archive_archive_format='tar.gz', full_archive_exclude=['*.1']),
                  name='second'),
        show('full_archive_result', 'second result'),
    ], extra_vars=fleet(pg, app_db, site))
    assert_ran(run)

    first = run.result('first result')['full_archive_result']
    snap = first['snapshot']
    assert first['changed'] is True and snap['status'] == 'written' and snap['tier'] == 'full'
    assert os.path.basename(snap['path']).startswith(app_db + '-full-') and snap['path'].endswith('.tar.gz')
    with open(snap['manifest_path']) as handle:
        manifest = json.load(handle)
    assert manifest['verified_at'] and manifest['database']['name'] == app_db
    assert {t: v['rows'] for t, v in manifest['database']['tables'].items()} == APP_TABLES
    archived = dict(UPLOADS, **{'app.log': LOGS['app.log']})  # app.log.1 is excluded
    assert manifest['files']['count'] == len(archived)
    assert manifest['files']['total_bytes'] == sum(len(c) for c in archived.values())
    assert sorted(manifest['files']['roots']) == sorted([os.path.join(site, 'uploads'), os.path.join(site, 'logs')])
    assert len(manifest['files']['sha256']) == len(archived)  # full_archive_file_checksums defaults to true
    with tarfile.open(snap['path']) as archive:
        names = archive.getnames()
    assert 'files' + os.path.join(site, 'uploads', 'invoices/2026/11/inv-1.pdf') in names
    assert 'files' + os.path.join(site, 'logs', 'app.log.1') not in names
    assert any(n.startswith('database/%s.' % app_db) for n in names)
    assert run.result('first verification')['full_archive_verify_result']['verified'][0]['ok'] is True

    second = run.result('second result')['full_archive_result']
    assert second['changed'] is False and second['snapshot']['status'] == 'existing'
    assert second['snapshot']['path'] == snap['path']
    assert [n for n in listing(dest) if n.endswith('.tar.gz')] == [os.path.basename(snap['path'])]


def test_files_only_archive_without_logs(site):
    """No database and no log directory: the uploads alone, named `snapshot-full-...`."""
    run = run_tasks([
        role_task('full_archive', dict(full_archive_database='', full_archive_logs_dir='',
                                       full_archive_uploads_dir=os.path.join(site, 'uploads'),
                                       full_archive_dest=os.path.join(site, 'backups'),
                                       full_archive_archive_format='zip')),
        show('full_archive_result', 'result'),
    ])
    assert_ran(run)
    snap = run.result('result')['full_archive_result']['snapshot']
    assert os.path.basename(snap['path']).startswith('snapshot-full-') and snap['path'].endswith('.zip')
    with open(snap['manifest_path']) as handle:
        manifest = json.load(handle)
    assert manifest['files']['roots'] == [os.path.join(site, 'uploads')] and manifest['files']['count'] == len(UPLOADS)
    assert not manifest.get('database')


def test_bad_settings_fail_clearly_and_change_nothing(pg, app_db, site):
    dest = os.path.join(site, 'backups')
    connection = fleet(pg, app_db, site)['engineroom_postgres']
    missing = os.path.join(site, 'no-such-uploads')
    run = run_tasks([
        expect_failure('full_archive', dict(full_archive_database='', full_archive_uploads_dir='',
                                            full_archive_logs_dir='', full_archive_dest=dest), 'nothing to archive'),
        expect_failure('full_archive', dict(full_archive_database=app_db, full_archive_uploads_dir=missing,
                                            full_archive_logs_dir='', full_archive_dest=dest,
                                            full_archive_postgres=connection, full_archive_archive_format='tar.gz'),
                       'missing uploads'),
    ])
    assert_ran(run)
    assert 'nothing to archive' in run.result('nothing to archive')['ansible_failed_result']['msg']
    assert missing in run.result('missing uploads')['ansible_failed_result']['msg']
    assert not [n for n in listing(dest) if not n.startswith('.')]

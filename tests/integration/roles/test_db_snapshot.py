"""The db_snapshot role on localhost against the real PostgreSQL of the `pg` fixture."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest

from tests.harness.backup_roles import (APP_TABLES, assert_ran, drop_database, expect_failure, fill_app_database,
                                        listing, role_task, seed_history, show)
from tests.harness.playbook import run_tasks


@pytest.fixture(scope='module')
def app_db(pg):
    name = 'role_snap_%d' % os.getpid()
    fill_app_database(pg, name)
    yield name
    drop_database(pg, name)


@pytest.fixture
def backup_dir():
    path = tempfile.mkdtemp(prefix='engineroom-role-snap-')
    yield os.path.join(path, 'backups')
    shutil.rmtree(path, ignore_errors=True)


def fleet(pg, database, dest):
    """The fleet-wide variables the role derives its defaults from."""
    return dict(engineroom_database=database, engineroom_backup_dir=dest,
                engineroom_postgres=dict(login_host=pg.host, login_port=pg.port, login_user='postgres',
                                         login_password=pg.superuser_password))


def test_daily_snapshot_verified_pruned_and_idempotent(pg, app_db, backup_dir):
    seeded = seed_history(backup_dir, app_db, app_db, [1, 2, 3, 4, 5, 6, 8, 9, 10] + list(range(40, 420, 30)))
    foreign = os.path.join(backup_dir, 'notes.txt')
    orphan = os.path.join(backup_dir, '%s-database-20200101T000000Z.dump' % app_db)  # no manifest: not ours
    for path in (foreign, orphan):
        with open(path, 'w') as handle:
            handle.write('keep me\n')

    run = run_tasks([
        role_task('db_snapshot', {}, name='first'),
        show('db_snapshot_result', 'first result'),
        show('db_snapshot_verify_result', 'first verification'),
        role_task('db_snapshot', {}, name='second'),
        show('db_snapshot_result', 'second result'),
        show('db_snapshot_verify_result', 'second verification'),
    ], extra_vars=fleet(pg, app_db, backup_dir))
    assert_ran(run)

    first = run.result('first result')['db_snapshot_result']
    snap = first['snapshot']
    assert first['changed'] is True and snap['status'] == 'written' and snap['tier'] == 'database'
    assert os.path.basename(snap['path']).startswith(app_db + '-database-') and os.path.isfile(snap['path'])
    with open(snap['manifest_path']) as handle:
        manifest = json.load(handle)
    assert manifest['verified_at'] and manifest['database']['name'] == app_db
    assert {t: v['rows'] for t, v in manifest['database']['tables'].items()} == APP_TABLES
    verification = run.result('first verification')['db_snapshot_verify_result']
    assert [(v['path'], v['ok']) for v in verification['verified']] == [(snap['path'], True)]
    assert verification['changed'] is False

    # Retention 7 days / 4 weeks / 6 months: the last six days before today stay, 13 months ago goes.
    for days in (1, 2, 3, 4, 5, 6):
        assert seeded[days] in first['kept'] and os.path.exists(seeded[days])
    assert seeded[400] in first['pruned']
    for path in first['pruned']:
        assert not os.path.exists(path) and not os.path.exists(path + '.manifest.json')
    assert snap['path'] in first['kept'] and len(first['kept']) <= 7 + 4 + 6
    assert os.path.exists(foreign) and os.path.exists(orphan)

    second = run.result('second result')['db_snapshot_result']
    assert second['changed'] is False and second['snapshot']['status'] == 'existing'
    assert second['snapshot']['path'] == snap['path'] and second['pruned'] == []
    assert run.result('second verification')['db_snapshot_verify_result']['verified'][0]['ok'] is True
    assert len([n for n in listing(backup_dir) if n.endswith('.manifest.json')]) == len(first['kept'])


def test_check_mode_plans_and_writes_nothing(pg, app_db, backup_dir):
    run = run_tasks([
        role_task('db_snapshot', dict(db_snapshot_verify='all', db_snapshot_compression='gzip')),
        show('db_snapshot_result', 'result'),
        show('db_snapshot_verify_result', 'verification'),
    ], check=True, extra_vars=fleet(pg, app_db, backup_dir))
    assert_ran(run)
    result = run.result('result')['db_snapshot_result']
    assert result['changed'] is True and result['snapshot']['status'] == 'planned'
    assert result['snapshot']['path'].endswith('.dump')  # custom format with pg_dump's own gzip
    assert run.result('verification')['db_snapshot_verify_result'].get('skipped') is True
    assert not os.path.exists(backup_dir)


def test_bad_settings_fail_clearly_and_change_nothing(pg, app_db, backup_dir):
    connection = fleet(pg, app_db, backup_dir)['engineroom_postgres']
    run = run_tasks([
        expect_failure('db_snapshot', dict(db_snapshot_database='', db_snapshot_dest=backup_dir), 'no database'),
        expect_failure('db_snapshot', dict(db_snapshot_database='no_such_db_%d' % os.getpid(),
                                           db_snapshot_dest=backup_dir, db_snapshot_postgres=connection),
                       'unknown database'),
        expect_failure('db_snapshot', dict(db_snapshot_database=app_db, db_snapshot_dest=backup_dir,
                                           db_snapshot_postgres=dict(connection, login_password='wrong-password')),
                       'wrong password'),
        expect_failure('db_snapshot', dict(db_snapshot_database=app_db, db_snapshot_dest=backup_dir,
                                           db_snapshot_postgres=connection, db_snapshot_format='tarball'),
                       'bad format'),
    ])
    assert_ran(run)
    assert 'db_snapshot_database is empty' in run.result('no database')['ansible_failed_result']['msg']
    unknown = run.result('unknown database')['ansible_failed_result']['msg']
    assert 'no_such_db_%d' % os.getpid() in unknown
    assert 'password' in run.result('wrong password')['ansible_failed_result']['msg'].lower()
    bad_format = run.result('bad format')['ansible_failed_result']['msg']
    assert 'db_snapshot_format' in bad_format and 'tarball' in bad_format
    assert not [n for n in listing(backup_dir) if not n.startswith('.')]

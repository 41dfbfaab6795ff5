"""The dr_drill role on localhost: real archives and dumps of the `pg` fixture restored into scratch copies."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest

from tests.harness.backup_roles import (APP_TABLES, UPLOADS, assert_ran, databases_like, drop_database,
                                        expect_failure, fill_app_database, listing, make_tree, role_task, show)
from tests.harness.playbook import run_tasks


@pytest.fixture(scope='module')
def app_db(pg):
    name = 'role_drill_%d' % os.getpid()
    fill_app_database(pg, name)
    yield name
    drop_database(pg, name)


@pytest.fixture
def site():
    path = tempfile.mkdtemp(prefix='engineroom-role-drill-')
    os.chmod(path, 0o755)
    make_tree(os.path.join(path, 'uploads'), UPLOADS)
    os.makedirs(os.path.join(path, 'scratch'))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fleet(pg, database, site):
    return dict(engineroom_database=database, engineroom_backup_dir=os.path.join(site, 'backups'),
                engineroom_uploads_dir=os.path.join(site, 'uploads'), engineroom_logs_dir='',
                engineroom_postgres=dict(login_host=pg.host, login_port=pg.port, login_user='postgres',
                                         login_password=pg.superuser_password))


def test_drills_of_the_full_archive_and_the_database_snapshot(pg, app_db, site):
    scratch = os.path.join(site, 'scratch')
    run = run_tasks([
        role_task('full_archive', dict(full_archive_archive_format='tar.gz')),
        role_task('db_snapshot', dict(db_snapshot_format='plain', db_snapshot_compression='gzip')),
        role_task('dr_drill', dict(dr_drill_scratch_dir=scratch), name='full drill'),
        show('dr_drill_result', 'full drill result'),
        role_task('dr_drill', dict(dr_drill_scratch_dir=scratch), name='full drill again'),
        show('dr_drill_result', 'full drill again result'),
        role_task('dr_drill', dict(dr_drill_tier='database', dr_drill_rto_objective_s=3600), name='database drill'),
        show('dr_drill_result', 'database drill result'),
    ], extra_vars=fleet(pg, app_db, site))
    assert_ran(run)

    full = run.result('full drill result')['dr_drill_result']
    assert full['matches'] is True and full['rto_s'] > 0 and full['changed'] is False
    assert os.path.basename(full['snapshot']).startswith(app_db + '-full-')
    assert {t['table']: t['actual'] for t in full['tables']} == APP_TABLES
    assert full['files']['match'] is True and full['files']['restored_count'] == len(UPLOADS)
    assert full['files']['checksums_checked'] == len(UPLOADS)
    assert run.result('full drill again result')['dr_drill_result']['changed'] is False

    database = run.result('database drill result')['dr_drill_result']
    assert database['matches'] is True and database['rto_s'] > 0
    assert os.path.basename(database['snapshot']).startswith(app_db + '-database-')
    assert {t['table']: t['actual'] for t in database['tables']} == APP_TABLES

    assert databases_like(pg, 'restore_drill_') == []  # scratch databases dropped
    assert listing(scratch) == []  # scratch directories removed


def test_mismatch_and_missed_objective_are_reported_then_fail(pg, app_db, site):
    """A manifest that promises other row counts than the dump holds: the drill reports, then fails."""
    dest = os.path.join(site, 'backups')
    prepared = run_tasks([role_task('db_snapshot', dict(db_snapshot_format='plain', db_snapshot_compression='gzip')),
                          show('db_snapshot_result', 'snapshot')], extra_vars=fleet(pg, app_db, site))
    assert_ran(prepared)
    manifest_path = prepared.result('snapshot')['db_snapshot_result']['snapshot']['manifest_path']
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest['database']['tables']['public.orders']['rows'] = 1201
    with open(manifest_path, 'w') as handle:
        json.dump(manifest, handle)

    run = run_tasks([
        expect_failure('dr_drill', dict(dr_drill_tier='database'), 'mismatch'),
        show('dr_drill_result', 'mismatch result'),
        role_task('dr_drill', dict(dr_drill_tier='database', dr_drill_fail_on_mismatch=False), name='tolerated'),
        show('dr_drill_result', 'tolerated result'),
        expect_failure('dr_drill', dict(dr_drill_tier='database', dr_drill_fail_on_mismatch=False,
                                        dr_drill_rto_objective_s=0.000001), 'objective'),
        expect_failure('dr_drill', dict(dr_drill_database='', dr_drill_dest=dest), 'nothing to drill'),
        expect_failure('dr_drill', dict(dr_drill_tier='full'), 'no full archive'),
    ], extra_vars=fleet(pg, app_db, site))
    assert_ran(run)

    failed = run.result('mismatch')['ansible_failed_result']['msg']
    assert 'does not match the manifest' in failed and 'public.orders' in failed
    reported = run.result('mismatch result')['dr_drill_result']
    assert reported['matches'] is False and reported['rto_s'] > 0
    orders = [t for t in reported['tables'] if t['table'] == 'public.orders'][0]
    assert orders == dict(table='public.orders', expected=1201, actual=1200, exact=True, match=False, compared='content')
    assert run.result('tolerated result')['dr_drill_result']['matches'] is False
    assert 'recovery time objective' in run.result('objective')['ansible_failed_result']['msg']
    assert 'no snapshots to pick' in run.result('nothing to drill')['ansible_failed_result']['msg']
    assert run.result('no full archive')['ansible_failed_result']['msg']
    assert databases_like(pg, 'restore_drill_') == []

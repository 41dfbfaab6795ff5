"""Case 13: every module under check mode on a sandbox changes nothing, on disk or in PostgreSQL.

One playbook holds each module's typical changing call (a lock with read-only
roles, a database snapshot and a full archive, a purge, a forced VACUUM, log
rotation with ghost truncation, the security audit's fixes, docker cleanup of a
stopped container, the HTML report, plus the read-only ones: health probes, the
database review and a restore drill) and runs with ``--check``. Before and
after: the sandbox's file tree (paths, kinds, modes, sizes, sha256; the
maintenance log the callback writes and the cluster's own files left out), the
application tables, every role's settings, the list of databases, and the
stopped container the docker cleanup would remove.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.harness import faults, faults_db, faults_fs
from tests.harness.playbook import run_tasks

IMAGE = 'engineroom-maintenance-test:bookworm'
LABEL = 'engineroom.fault13'
# Module calls that would change something (each must say changed: true in check mode).
CHANGING = ('maintenance_lock', 'snapshot_archive database', 'snapshot_archive full', 'pg_purge', 'pg_vacuum',
            'log_rotation_check', 'security_audit', 'docker_hygiene', 'maintenance_report')
READ_ONLY = ('health_probe', 'pg_insight', 'snapshot_restore')


def module_calls(box, variables):
    db = dict(variables['engineroom_postgres'], login_db='app')
    root = box.root
    calls = {
        'maintenance_lock': ('maintenance_lock', dict(
            db, state='present', owner='check-mode', reason='check mode sweep', lock_file=root + '/state/maintenance.json',
            flag_file=root + '/state/maintenance.flag', readonly_roles=['app'], terminate_sessions=True, create_dirs=True)),
        'snapshot_archive database': ('snapshot_archive', dict(
            db, database='app', dest=root + '/backups', prefix='checkmode', keep_last=1)),
        'snapshot_archive full': ('snapshot_archive', dict(
            db, tier='full', database='app', dest=root + '/backups', paths=[root + '/uploads'], slot='always',
            keep_last=1)),
        'pg_purge': ('pg_purge', dict(
            db, table='public.audit_log', timestamp_column='created_at', older_than_days=365,
            snapshot_dest=root + '/backups')),
        'pg_vacuum': ('pg_vacuum', dict(db, force=True)),
        'log_rotation_check': ('log_rotation_check', dict(
            paths=[root + '/logs/*.log'], policy=dict(max_size='1K', keep=2, compress=True), enforce=True,
            check_logrotate=False, ghost_action='truncate', state_file=root + '/state/log_rotation_check.json')),
        'security_audit': ('security_audit', dict(app_root=root, fix=True, checks=['secret_files', 'world_writable_dirs'])),
        'docker_hygiene': ('docker_hygiene', dict(only_labels=[LABEL], min_age_h=0, prune_images=False)),
        'maintenance_report': ('maintenance_report', dict(log_dir=box.maintenance_log_dir,
                                                          dest=root + '/results/report.html')),
        'health_probe': ('health_probe', dict(probes=faults.steady_probes(box), fail_on='never',
                                              prometheus_textfile=root + '/results/health.prom')),
        'pg_insight': ('pg_insight', dict(db)),
        'snapshot_restore': ('snapshot_restore', dict(db, dest=root + '/backups', database='app')),
    }
    return [{'name': label, 'engineroom.maintenance.' + module: args} for label, (module, args) in calls.items()]


@pytest.fixture
def stopped_container(docker_client):
    """A stopped container only the docker_hygiene call of this case may consider (its own label)."""
    container = docker_client.containers.create(IMAGE, command=['true'], labels={LABEL: '1'})
    try:
        yield container
    finally:
        container.remove(force=True)


def test_every_module_in_check_mode_changes_nothing(sandbox, reliability, stopped_container, docker_client):
    reliability.describe(
        '13-check-mode',
        'each module\'s typical changing call run with --check on a sandbox (lock + read-only roles, snapshot, full '
        'archive, purge, forced VACUUM, rotation + ghost truncation, security fixes, docker cleanup, report; probes, '
        'review, restore drill)',
        'every changing call reports changed (what it would do), and nothing changed: file tree hash, table contents, '
        'role settings, databases, the stopped container')
    box = sandbox
    variables = box.variables()
    env = dict(ENGINEROOM_MAINTENANCE_LOG_DIR=box.maintenance_log_dir)
    # Real setup: a verified snapshot (the purge's safety net and the drill's input), something for the fixes.
    setup = run_tasks([{'name': 'snapshot', 'engineroom.maintenance.snapshot_archive': dict(
        variables['engineroom_postgres'], login_db='app', database='app', dest=box.root + '/backups')}], env=env)
    assert setup.result('snapshot')['changed'], setup.stderr[-2000:]
    os.chmod(os.path.join(box.root, 'uploads', 'exports'), 0o777)
    box.cluster.execute('VACUUM (ANALYZE)', dbname='app')  # so that autovacuum has nothing left to change meanwhile
    time.sleep(1)

    exclude = ('maintenance-log', 'postgres')
    files_before = faults_fs.tree_state(box.root, exclude)
    db_before = faults_db.database_state(box.cluster)
    container_before = (stopped_container.id, docker_client.containers.get(stopped_container.id).status)

    run = run_tasks(module_calls(box, variables), check=True, env=env)
    assert run.rc == 0, [(t['_task'], t.get('msg')) for t in run.tasks if t.get('failed')] or run.stderr[-2000:]
    results = dict((label, run.result(label)) for label in CHANGING + READ_ONLY)
    would = dict((label, results[label]['changed']) for label in CHANGING)
    assert all(would.values()), would
    assert results['maintenance_lock']['summary'].startswith('(check mode) would: maintenance on: lock taken by check-mode')
    assert results['maintenance_lock']['roles_changed'] == ['app']
    assert 'would delete 14,965 of 14,965 rows' in results['pg_purge']['summary']
    assert 'would work on 4 of 4 tables' in results['pg_vacuum']['summary']
    assert 'would remove 1 stopped containers' in results['docker_hygiene']['summary']
    assert results['log_rotation_check']['summary'].endswith('4 actions planned')
    assert results['snapshot_restore']['summary'].startswith('would restore ')
    assert not any(results[label]['changed'] for label in ('health_probe', 'pg_insight'))

    files_after = faults_fs.tree_state(box.root, exclude)
    changed_paths = sorted(set(files_before.items()) ^ set(files_after.items()))
    assert changed_paths == []
    db_after = faults_db.database_state(box.cluster)
    assert db_after == db_before
    assert (stopped_container.id, docker_client.containers.get(stopped_container.id).status) == container_before

    reliability.data_lost_bytes = sum(entry[2] for path, entry in files_before.items()
                                      if entry[0] == 'file' and files_after.get(path) != entry)
    reliability.observed = (
        '%d module calls under --check: the %d changing ones said what they would do (lock + app read-only, 2 '
        'snapshots, delete 14,965 rows, vacuum 4 tables, 4 rotation actions, 2 fixes, remove 1 container, the '
        'report), the read-only ones changed nothing either; '
        'file tree (%d entries), table contents, role settings, database list and the stopped container identical '
        'before and after' % (len(results), len(CHANGING), len(files_before)))
    assert reliability.data_lost_bytes == 0

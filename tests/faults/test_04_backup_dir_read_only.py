"""Case 04: the backup directory cannot be written when weekly.yml starts."""

from __future__ import annotations

import os

from tests.harness import faults, faults_db, faults_fs, faults_snapshots

PREFLIGHT_TASK = 'Check the full archive can be taken now, in %s'


def test_backup_directory_not_writable(sandbox, reliability):
    reliability.describe(
        '04-backup-dir-read-only',
        'the backup directory (holding the day\'s snapshot) bind-mounted onto itself read-only (mount --bind, '
        'then remount,ro,bind), since permission bits do not stop root; then weekly.yml',
        'the run fails at its first check with a clear "not writable: Read-only file system" naming the '
        'directory, before any work: no maintenance lock taken, no role made read-only, no pg_dump of data, '
        'nothing written or removed in the backup directory')
    box, cluster = sandbox, sandbox.cluster
    backups = os.path.join(box.root, 'backups')
    daily = box.play('daily.yml', faults.HEALTH_REPORTED_ONLY)
    assert daily.rc == 0, faults.failed_tasks(daily)
    files_before = faults_fs.file_tree(backups, os.path.join(box.root, 'uploads'))
    tables_before = faults_db.table_contents(cluster)

    with faults_fs.bind_read_only(backups):
        run = box.play('weekly.yml', faults.HEALTH_REPORTED_ONLY)
        listing = sorted(os.listdir(backups))

    assert run.rc != 0
    failed = faults.failed_tasks(run)
    assert [name for name, dummy in failed] == [PREFLIGHT_TASK % backups], failed
    message = failed[0][1]
    assert message == 'dest %s cannot hold snapshots: directory %s is not writable: Read-only file system' % (
        backups, backups)
    # Before any work: the lock was never taken, no role changed, pg_dump ran for its version only.
    ran = [t['_task'].split(' : ')[-1] for t in run.tasks if not t.get('skipped')]
    assert 'Take the maintenance lock' not in ran and 'Release the maintenance lock' not in ran
    assert not os.path.exists(os.path.join(box.root, 'state', 'maintenance.json'))
    assert faults_db.role_read_only(cluster) is None and faults_db.app_can_write(cluster)
    dumps = [c for c in run.result(PREFLIGHT_TASK % backups).get('executed_commands', []) if 'pg_dump' in c]
    assert all(c.endswith('--version') for c in dumps), dumps
    assert listing == sorted(os.listdir(backups)) and faults_snapshots.leftovers(backups) == []
    assert faults_db.table_contents(cluster) == tables_before
    entries = faults.maintenance_log_entries(box)
    weekly = [e for e in entries if e['event'] == 'task' and e['run_id'] == entries[-1]['run_id']]
    assert [e['module'] for e in weekly if e['status'] == 'failed'] == ['engineroom.maintenance.snapshot_archive']
    assert not any(e['module'] in ('engineroom.maintenance.maintenance_lock', 'engineroom.maintenance.pg_vacuum',
                                   'engineroom.maintenance.pg_purge') for e in weekly if e['status'] != 'skipped')

    lost = faults_fs.lost_bytes(files_before, faults_fs.file_tree(backups, os.path.join(box.root, 'uploads')))
    reliability.observed = (
        'weekly.yml failed at its first check (the archive task in check mode, before the window): "%s"; no lock '
        'file, app role never read-only, pg_dump only asked for its version, backup directory unchanged'
        % message.replace(backups, '<backups>'))
    reliability.data_lost_bytes = lost
    assert lost == 0

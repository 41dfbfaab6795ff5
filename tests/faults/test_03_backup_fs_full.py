"""Case 03: the backup filesystem fills up while weekly.yml writes the full archive."""

from __future__ import annotations

import os

from tests.harness import faults, faults_db, faults_fs, faults_process, faults_snapshots

ARCHIVE_TASK = 'Take the full archive of the slot, then apply retention, in %s'


def test_backup_filesystem_full_during_archive(sandbox, reliability):
    reliability.describe(
        '03-backup-fs-full',
        'the backup directory on a 48 MB tmpfs holding last week\'s archive; once the new archive\'s first '
        'temporary file appears there, another writer fills the filesystem to the last byte (ENOSPC)',
        'the archive task fails with a clear "No space left on device" naming the directory; no partial archive, '
        'temp file or manifest left; the older archive intact and still verifies; no purge after the failed '
        'archive; the window exited (lock released, app role writable)')
    box, cluster = sandbox, sandbox.cluster
    backupfs = os.path.join(box.root, 'backupfs')
    backups = os.path.join(backupfs, 'backups')
    with faults_fs.tmpfs_mounted(backupfs, 'size=48m', 'mode=0755'):
        # min_free_bytes 0: the up-front space check (256 MB by default) would refuse this small filesystem
        # before the archive starts; the case is a disk that fills up while the archive is written.
        variables = dict(engineroom_backup_dir=backups, full_archive_min_free_bytes=0)
        first = box.play('weekly.yml', dict(faults.HEALTH_REPORTED_ONLY, **variables))
        assert first.rc == 0, faults.failed_tasks(first)
        older = faults_snapshots.artifacts(backups, 'full')
        assert len(older) == 1
        listing = sorted(os.listdir(backups))
        files_before = faults_fs.file_tree(backups, os.path.join(box.root, 'uploads'))
        tables_before = faults_db.table_contents(cluster)

        filler = faults_process.Watcher(lambda: faults_snapshots.leftovers(backups), lambda names: (names, faults_fs.fill_to_last_byte(backupfs)))
        filler.start()
        try:
            # Run the window again, and archive although the week's slot is covered.
            run = box.play('weekly.yml', dict(faults.HEALTH_REPORTED_ONLY, engineroom_weekly_rerun=True, full_archive_slot='always', **variables))
        finally:
            filler.stop()
        assert filler.error is None and filler.fired, 'no temporary file of the archive was seen'
        seen, filled = filler.fired
        os.unlink(os.path.join(backupfs, 'filler'))

        assert run.rc != 0
        failed = faults.failed_tasks(run)
        assert [name for name, dummy in failed] == [ARCHIVE_TASK % backups], failed
        message = failed[0][1]
        assert 'No space left on device' in message and backups in message
        assert 'partial files removed: nothing of this run is left in dest' in message
        # No partial archive, no temp file, no manifest: the directory is as before; the older archive verifies.
        assert sorted(os.listdir(backups)) == listing and faults_snapshots.leftovers(backups) == []
        assert faults_snapshots.artifacts(backups) == older
        verified = faults_snapshots.verify(box, older, tier='full')
        assert verified[older[0]][0], verified
        # The purge never ran without its archive, and the window was left.
        assert not any('pg_purge' in str(t.get('action')) and not t.get('skipped') for t in run.tasks)
        assert faults_db.table_contents(cluster) == tables_before
        assert run.result('Release the maintenance lock')['released'] is True
        assert not os.path.exists(os.path.join(box.root, 'state', 'maintenance.json'))
        assert faults_db.role_read_only(cluster) is None and faults_db.app_can_write(cluster)
        logged = [e for e in faults.maintenance_log_entries(box) if e['event'] == 'task' and e['status'] == 'failed']
        assert [e['module'] for e in logged] == ['engineroom.maintenance.snapshot_archive']

        lost = faults_fs.lost_bytes(files_before, faults_fs.file_tree(backups, os.path.join(box.root, 'uploads')))
    reliability.observed = (
        'filler wrote %d bytes once %s appeared; task failed: "%s"; backup directory as before (%s verifies), no '
        'purge, lock released, app role writable'
        % (filled, seen[0], message.replace(backups, '<backups>'), os.path.basename(older[0])))
    reliability.data_lost_bytes = lost
    assert lost == 0

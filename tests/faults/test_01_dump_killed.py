"""Case 01: pg_dump killed with SIGKILL in the middle of its output during daily.yml."""

from __future__ import annotations

import os

from tests.harness import faults, faults_db, faults_fs, faults_process, faults_snapshots


def test_dump_killed_mid_stream(sandbox, reliability):
    reliability.describe(
        '01-dump-killed',
        'pg_dump of daily.yml SIGKILLed once it has written 2 MB of its output (a 300,000-row table added so '
        'the dump is still running), with a good snapshot of the day already in place',
        'the snapshot task fails naming pg_dump; no new artifact, manifest or temp file in the backup directory; '
        'the earlier snapshot untouched and still verifies; the maintenance log records the failed task')
    box, cluster = sandbox, sandbox.cluster
    backups = os.path.join(box.root, 'backups')

    first = box.play('daily.yml', faults.HEALTH_REPORTED_ONLY)
    assert first.rc == 0, faults.failed_tasks(first)
    good = faults_snapshots.artifacts(backups, 'database')
    assert len(good) == 1
    faults_db.add_ballast(cluster, 300000)
    listing = sorted(os.listdir(backups))
    files_before = faults_fs.file_tree(backups, os.path.join(box.root, 'uploads'))
    tables_before = faults_db.table_contents(cluster)

    killer = faults_process.kill_pg_dump_mid_stream(cluster.port, min_bytes=2 << 20)
    killer.start()
    try:
        # slot always: the day's slot is covered, this run must dump again.
        run = box.play('daily.yml', dict(faults.HEALTH_REPORTED_ONLY, db_snapshot_slot='always'))
    finally:
        killer.stop()
    assert killer.error is None
    assert killer.fired, 'pg_dump of port %d was never seen writing 2 MB' % cluster.port

    # The run failed at the snapshot, in words that name the cause and say nothing was written.
    assert run.rc != 0
    failed = faults.failed_tasks(run)
    assert [name for name, dummy in failed] == ['Take the database snapshot of the slot, then apply retention, in '
                                                '%s' % backups]
    message = failed[0][1]
    assert 'pg_dump' in message and 'signal 9' in message and 'nothing was written to %s' % backups in message
    # Nothing of the killed run is left: no artifact, no manifest, no temp file.
    assert sorted(os.listdir(backups)) == listing
    assert faults_snapshots.leftovers(backups) == []
    assert faults_snapshots.artifacts(backups) == good
    # The earlier snapshot is byte for byte what it was, and still verifies against its manifest.
    files_after = faults_fs.file_tree(backups, os.path.join(box.root, 'uploads'))
    lost = faults_fs.lost_bytes(files_before, files_after)
    assert faults_db.table_contents(cluster) == tables_before
    verified = faults_snapshots.verify(box, good)
    assert verified[good[0]][0], verified
    # The maintenance log has the failed task and a failed run.
    entries = faults.maintenance_log_entries(box)
    logged = [e for e in entries if e['event'] == 'task' and e['status'] == 'failed']
    assert [e['module'] for e in logged] == ['engineroom.maintenance.snapshot_archive']
    assert 'signal 9' in logged[0]['msg']
    assert [e['status'] for e in entries if e['event'] == 'run_end'][-1] == 'failed'

    reliability.observed = (
        'pg_dump (pid %d) killed after writing %d bytes; task failed: "%s"; backup directory unchanged (%d files, '
        'no temp file); %s verifies (%s); maintenance.jsonl has the failed snapshot_archive task'
        % (killer.fired['pid'], killer.fired['bytes_written'], message.replace(backups, '<backups>'), len(listing),
           os.path.basename(good[0]), verified[good[0]][1]))
    reliability.data_lost_bytes = lost
    assert lost == 0

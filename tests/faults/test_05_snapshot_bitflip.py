"""Case 05: one byte of the latest database snapshot flipped on disk."""

from __future__ import annotations

import os

from tests.harness import faults, faults_db, faults_fs, faults_snapshots


def test_flipped_byte_in_latest_snapshot(sandbox, reliability):
    reliability.describe(
        '05-snapshot-bitflip',
        'one byte in the middle of the latest database snapshot XORed with 0xFF (two snapshots of the day on '
        'disk, retention keep_last 2 so both stay), then daily.yml and the monthly restore drill',
        'daily verify fails naming the snapshot and the checksum; the drill refuses that snapshot, names the '
        'older one that verifies as the one to use instead, and restores nothing; no snapshot deleted or changed')
    box, cluster = sandbox, sandbox.cluster
    backups = os.path.join(box.root, 'backups')

    first = box.play('daily.yml', faults.HEALTH_REPORTED_ONLY)
    assert first.rc == 0, faults.failed_tasks(first)
    second = box.play('daily.yml', dict(faults.HEALTH_REPORTED_ONLY, db_snapshot_slot='always', db_snapshot_keep_last=2))
    assert second.rc == 0, faults.failed_tasks(second)
    older, latest = faults_snapshots.artifacts(backups, 'database')
    faults_fs.flip_byte(latest)
    files_before = faults_fs.file_tree(backups, os.path.join(box.root, 'uploads'))
    tables_before = faults_db.table_contents(cluster)
    databases_before = sorted(row[0] for row in cluster.execute('SELECT datname FROM pg_database'))

    # Daily: the day's slot is covered by the damaged snapshot, whose re-verification fails.
    daily = box.play('daily.yml', dict(faults.HEALTH_REPORTED_ONLY, db_snapshot_keep_last=2))
    assert daily.rc != 0
    verify = daily.result('Re-verify the snapshot against its manifest (snapshot)')
    assert verify['failed'] and [v['path'] for v in verify['verified']] == [latest]
    assert verify['verified'][0]['ok'] is False and 'sha256' in verify['msg']
    assert daily.result('Take the database snapshot of the slot, then apply retention, in %s'
                        % backups)['snapshot']['status'] == 'existing'

    # Monthly drill: refused, and the older snapshot named instead.
    # The sandbox's variables travel as extra vars, which would override monthly.yml's own
    # db_optimize_purge_rules: [] (its review purges nothing); say it again at that precedence.
    monthly = box.play('monthly.yml', dict(faults.HEALTH_REPORTED_ONLY, db_optimize_purge_rules=[]))
    assert monthly.rc != 0
    drill = monthly.result('Restore drill of the latest snapshot of tier database')
    assert drill['failed'] and drill['snapshot'] == latest, drill
    assert drill.get('alternative') == older, drill.get('msg')
    assert drill['msg'].startswith('refusing to restore: ') and 'sha256' in drill['msg']
    assert 'the newest older snapshot that verifies is %s' % older in drill['msg']
    assert faults.failed_tasks(monthly) == [('Restore drill of the latest snapshot of tier database', drill['msg'])], \
        faults.failed_tasks(monthly)
    # Nothing restored, nothing deleted, the good snapshot still verifies.
    assert sorted(row[0] for row in cluster.execute('SELECT datname FROM pg_database')) == databases_before
    assert faults_snapshots.artifacts(backups, 'database') == [older, latest] and faults_snapshots.leftovers(backups) == []
    assert faults_snapshots.verify(box, [older])[older][0]
    after = faults_db.table_contents(cluster)
    assert after == tables_before, sorted(t for t in after if after[t] != tables_before.get(t))
    logged = [e for e in faults.maintenance_log_entries(box) if e['event'] == 'task' and e['status'] == 'failed']
    assert [e['module'] for e in logged] == ['engineroom.maintenance.snapshot_archive',
                                             'engineroom.maintenance.snapshot_restore']

    lost = faults_fs.lost_bytes(files_before, faults_fs.file_tree(backups, os.path.join(box.root, 'uploads')))
    reliability.observed = (
        'daily: "%s"; monthly drill: "%s"; no scratch database left, both snapshots kept as they were'
        % (verify['msg'].replace(backups + '/', ''), drill['msg'].replace(backups + '/', '')))
    reliability.data_lost_bytes = lost
    assert lost == 0

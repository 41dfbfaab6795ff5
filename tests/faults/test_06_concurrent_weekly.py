"""Case 06: two weekly.yml runs started at the same moment on the same host."""

from __future__ import annotations

import json
import os

from tests.harness import faults, faults_db, faults_fs, faults_snapshots
from tests.harness.playbook import finish_playbook

ARCHIVE_TASK = 'Take the full archive of the slot, then apply retention, in %s'


def test_two_weekly_runs_at_once(sandbox, reliability):
    reliability.describe(
        '06-concurrent-weekly',
        'two ansible-playbook weekly.yml processes started together on one host, same owner (weekly), '
        'nothing locked before',
        'exactly one enters the window and writes the full archive; the other fails on the lock with the '
        "holder's record (owner, run_id) and neither releases nor touches the holder's lock; lock released and "
        'the application role writable at the end')
    box, cluster = sandbox, sandbox.cluster
    backups = os.path.join(box.root, 'backups')
    lock_file = os.path.join(box.root, 'state', 'maintenance.json')
    files_before = faults_fs.file_tree(os.path.join(box.root, 'uploads'))

    processes = [box.start_play('weekly.yml', faults.HEALTH_REPORTED_ONLY) for dummy in range(2)]
    runs = [finish_playbook(process, timeout=300) for process in processes]

    takes = [run.result('Take the maintenance lock') for run in runs]
    winners = [i for i, take in enumerate(takes) if take.get('acquired')]
    assert len(winners) == 1, [take.get('msg') or take.get('summary') for take in takes]
    winner, loser = runs[winners[0]], runs[1 - winners[0]]
    holder = takes[winners[0]]['holder']
    refused = takes[1 - winners[0]]

    assert winner.rc == 0, faults.failed_tasks(winner)
    assert loser.rc != 0
    # The loser was refused with the holder's record, and did nothing else in the window.
    assert refused['failed'] and refused['holder']['run_id'] == holder['run_id']
    assert 'held by weekly' in refused['msg'] and holder['run_id'] in refused['msg']
    assert not any(t['_task'].endswith(ARCHIVE_TASK % backups) for t in loser.tasks)
    release = loser.result('Release the maintenance lock')
    assert not release.get('changed') and not release.get('released')
    assert [name for name, dummy in faults.failed_tasks(loser)] in (
        [refused['_task'].split(' : ')[-1]],
        [refused['_task'].split(' : ')[-1], 'Release the maintenance lock'])
    # Exactly one full archive, written by the winner, verified.
    archives = faults_snapshots.artifacts(backups, 'full')
    assert len(archives) == 1 and faults_snapshots.leftovers(backups) == []
    assert winner.result(ARCHIVE_TASK % backups)['snapshot']['path'] == archives[0]
    assert faults_snapshots.verify(box, archives, tier='full')[archives[0]][0]
    with open(archives[0] + '.manifest.json') as handle:
        assert json.load(handle)['verified_at']
    # The window closed by its holder: no lock, no flag, the application role writable.
    assert not os.path.exists(lock_file)
    assert not os.path.exists(os.path.join(box.root, 'state', 'maintenance.flag'))
    assert faults_db.role_read_only(cluster) is None and faults_db.app_can_write(cluster)
    # The maintenance log has both runs: one ok, one failed on the lock.
    entries = faults.maintenance_log_entries(box)
    assert sorted(e['status'] for e in entries if e['event'] == 'run_end') == ['changed', 'failed']
    lock_tasks = [e for e in entries if e['event'] == 'task' and e['module'] == 'engineroom.maintenance.maintenance_lock']
    assert sorted(e['status'] for e in lock_tasks if 'Take' in e['task']) == ['changed', 'failed']

    lost = faults_fs.lost_bytes(files_before, faults_fs.file_tree(os.path.join(box.root, 'uploads')))
    reliability.observed = (
        'run %d took the lock (run_id %s) and wrote %s; run %d failed on the lock: "%s"; its exit released nothing; '
        '1 archive in the backup directory, lock released, app role writable'
        % (winners[0] + 1, holder['run_id'], os.path.basename(archives[0]), 2 - winners[0],
           refused['msg'].replace(lock_file, '<lock>')))
    reliability.data_lost_bytes = lost
    assert lost == 0

"""Case 02: PostgreSQL stopped while pg_vacuum runs inside the weekly maintenance window."""

from __future__ import annotations

import json
import os

from tests.harness import faults, faults_db, faults_fs, faults_process
from tests.harness.playbook import run_tasks


def vacuum_running(cluster):
    """A Watcher condition: the text of an active VACUUM statement in the app database, if any."""
    def ready():
        rows = cluster.execute("SELECT query FROM pg_stat_activity WHERE datname = 'app' AND state = 'active' "
                               "AND query ILIKE 'VACUUM%%' AND pid <> pg_backend_pid()")
        return rows[0][0] if rows else None
    return ready


def maintenance_probe(box):
    """health_probe's maintenance kind on the sandbox's lock file; its probe result."""
    lock_file = os.path.join(box.root, 'state', 'maintenance.json')
    run = run_tasks([dict(name='probe', **{'engineroom.maintenance.health_probe': dict(
        probes=[dict(name='maintenance', kind='maintenance', lock_file=lock_file)], fail_on='never')})],
        env=dict(ENGINEROOM_MAINTENANCE_LOG_DIR=os.path.join(box.root, 'probe-log')))
    return run.result('probe')['probes'][0]


def test_postgres_stopped_during_vacuum(sandbox, reliability):
    reliability.describe(
        '02-postgres-stopped-in-vacuum',
        'PostgreSQL stopped (pg_ctl stop -m fast) while weekly.yml runs VACUUM inside the window (a table with '
        '12,000 dead tuples, VACUUM throttled with vacuum_cost_delay so it is caught running)',
        "the run fails at pg_vacuum; the window's exit in `always` cannot restore the read-only role, so it keeps "
        'the lock and flag file and says how to retry; health_probe (maintenance) flags the window still on; '
        'after PostgreSQL is back, maintenance_off.yml releases the lock and the app role writes again')
    box, cluster = sandbox, sandbox.cluster
    lock_file = os.path.join(box.root, 'state', 'maintenance.json')
    flag_file = os.path.join(box.root, 'state', 'maintenance.flag')
    faults_db.add_ballast(cluster, 20000, dead_fraction=0.6)
    cluster.execute("ALTER DATABASE app SET vacuum_cost_delay = '20ms'")
    cluster.execute('ALTER DATABASE app SET vacuum_cost_limit = 20')
    files_before = faults_fs.file_tree(os.path.join(box.root, 'backups'), os.path.join(box.root, 'uploads'))
    tables_before = faults_db.table_contents(cluster)

    def stop_postgres(query):
        cluster.stop()
        return query

    stopper = faults_process.Watcher(vacuum_running(cluster), stop_postgres, interval_s=0.05)
    stopper.start()
    try:
        # No purge rules: the application's tables stay as they are, VACUUM has the ballast to work on.
        run = box.play('weekly.yml', dict(faults.HEALTH_REPORTED_ONLY, db_optimize_purge_rules=[]))
    finally:
        stopper.stop()
    assert stopper.error is None and stopper.fired, 'no VACUUM was seen running'
    assert not cluster.running

    # The run failed in the window, and the exit in `always` ran and failed honestly.
    assert run.rc != 0
    failed = dict(faults.failed_tasks(run))
    vacuum_task = [name for name in failed if name != 'Release the maintenance lock']
    assert len(vacuum_task) == 1, failed
    assert run.result(vacuum_task[0])['action'] == 'engineroom.maintenance.pg_vacuum'
    release = failed['Release the maintenance lock']
    assert 'cannot restore the settings of app' in release and 'the lock file %s is kept' % lock_file in release
    assert 'playbooks/maintenance_off.yml -e maintenance_owner=weekly' in release
    # What is left is consistent: lock and flag kept, the record still holds the role's previous setting.
    with open(lock_file) as handle:
        record = json.load(handle)
    assert record['owner'] == 'weekly' and [entry['role'] for entry in record['readonly_roles']] == ['app']
    assert os.path.exists(flag_file)
    probe = maintenance_probe(box)
    assert probe['status'] == 'degraded' and 'maintenance on: lock held by weekly' in probe['message']

    # PostgreSQL back: the role is still read-only (nobody released it behind the lock's back) ...
    cluster.start()
    cluster.wait_ready()
    assert faults_db.role_read_only(cluster) == 'on' and not faults_db.app_can_write(cluster)
    # ... until maintenance_off.yml releases the lock as the message says.
    off = box.play('maintenance_off.yml', dict(faults.HEALTH_REPORTED_ONLY, maintenance_owner='weekly'))
    assert off.rc == 0, faults.failed_tasks(off)
    assert off.result('Release the maintenance lock')['released'] is True
    assert not os.path.exists(lock_file) and not os.path.exists(flag_file)
    assert faults_db.role_read_only(cluster) is None and faults_db.app_can_write(cluster)
    assert maintenance_probe(box)['status'] == 'healthy'
    entries = faults.maintenance_log_entries(box)
    assert [e['status'] for e in entries if e['event'] == 'run_end'] == ['failed', 'changed']
    logged = [e['module'] for e in entries if e['event'] == 'task' and e['status'] == 'failed']
    assert logged == ['engineroom.maintenance.pg_vacuum', 'engineroom.maintenance.maintenance_lock']

    tables_after = faults_db.table_contents(cluster)
    assert tables_after == tables_before
    lost = faults_fs.lost_bytes(files_before, faults_fs.file_tree(os.path.join(box.root, 'backups'),
                                                                  os.path.join(box.root, 'uploads')))
    reliability.observed = (
        'stopped during "%s"; pg_vacuum failed: "%s"; exit failed: "%s"; lock and flag kept, probe: %s "%s"; after '
        'restart the app role was still read-only until maintenance_off.yml released it, then writable'
        % (stopper.fired, failed[vacuum_task[0]][:200], release.replace(lock_file, '<lock>'), probe['status'],
           probe['message'].split(' (')[0]))
    reliability.data_lost_bytes = lost
    assert lost == 0

"""The calendar playbooks against a whole sandbox: PostgreSQL with data, uploads, logs.

Asserts on the real state after each run: snapshots and their manifests, rows purged only
after a verified archive, the lock released and the application role writable again, and a
second run in the same slot changing nothing.
"""

from __future__ import annotations

import os

import pytest

from tests.harness.sandbox import Sandbox

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import iter_manifests


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp('calendar')
    os.chmod(root, 0o755)
    box = Sandbox(str(root / 'sandbox'))
    cluster = box.up()
    yield box, cluster
    box.down()


def play(box, name, **extra):
    return box.play(name, extra)


def failed_tasks(run):
    return [(t['_task'], t.get('msg', '')) for t in run.tasks if t.get('failed')]


def changed_tasks(run):
    return sorted(t['_task'] for t in run.tasks if t.get('changed'))


def test_daily_then_weekly_then_monthly_and_quarterly(sandbox):
    box, cluster = sandbox
    backups = os.path.join(box.root, 'backups')

    daily = play(box, 'daily.yml')
    assert daily.rc == 0, failed_tasks(daily) or daily.stderr
    manifests = [m for dummy, m in iter_manifests(backups)]
    assert [m['tier'] for m in manifests] == ['database'] and manifests[0]['verified_at']
    again = play(box, 'daily.yml')
    assert again.rc == 0 and changed_tasks(again) == []

    old_audit = cluster.execute("SELECT count(*) FROM audit_log WHERE created_at < now() - interval '365 days'",
                                dbname='app')[0][0]
    assert old_audit > 0
    weekly = play(box, 'weekly.yml')
    assert weekly.rc == 0, failed_tasks(weekly) or weekly.stderr
    assert sorted(m['tier'] for dummy, m in iter_manifests(backups)) == ['database', 'full']
    assert cluster.execute("SELECT count(*) FROM audit_log WHERE created_at < now() - interval '365 days'",
                           dbname='app')[0][0] == 0
    assert not os.path.exists(os.path.join(box.root, 'state', 'maintenance.json'))
    assert cluster.execute("SELECT rolconfig FROM pg_roles WHERE rolname = 'app'")[0][0] is None
    assert open(os.path.join(box.root, 'state', 'weekly-window.done')).read().startswith('20')
    second = play(box, 'weekly.yml')
    assert second.rc == 0
    # The week's window already completed: nothing is locked again, nothing changes.
    assert changed_tasks(second) == []
    assert 'already completed' in second.result('Say why the window is skipped')['msg']
    assert second.result('Take the maintenance lock').get('skipped') is True
    rerun = play(box, 'weekly.yml', engineroom_weekly_rerun=True)
    assert rerun.rc == 0
    assert [t.split(' : ')[-1] for t in changed_tasks(rerun)] == ['Release the maintenance lock',
                                                                  'Take the maintenance lock']

    monthly = play(box, 'monthly.yml')
    assert monthly.rc == 0, failed_tasks(monthly) or monthly.stderr
    assert monthly.result('Restore drill of the latest snapshot of tier database')['matches'] is True
    # report.yml (imported last) reads playbooks/maintenance-log unless told: in a clean clone there is none.
    quarterly = play(box, 'quarterly.yml', maintenance_report_log_dir=box.maintenance_log_dir)
    assert quarterly.rc == 0, failed_tasks(quarterly) or quarterly.stderr
    assert quarterly.result('Restore drill of the latest snapshot of tier full')['matches'] is True
    capacity = quarterly.result('Capacity review from the maintenance log history')
    month = capacity['months'][-1]  # the figures the day's runs logged: one month is no growth yet
    assert month['database_bytes_last'] > 0 and month['database_snapshot_bytes_last'] > 0
    assert month['full_snapshot_bytes_last'] > 0 and month['disks']
    assert capacity['growth']['database']['status'] == 'not_enough_history'
    assert capacity['projection']['status'] in ('not_enough_history', 'reached')  # reached: a disk already at 80 %
    assert capacity['changed'] is False
    assert os.path.exists(os.path.join(box.root, 'maintenance-log', 'capacity-localhost.md'))
    scratch = cluster.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'restore_drill_%'")[0][0]
    assert scratch == 0
    assert os.path.exists(os.path.join(box.root, 'maintenance-log', 'MAINTENANCE_LOG.md'))


@pytest.mark.parametrize('playbook', ['weekly.yml', 'quarterly.yml'])
def test_a_host_that_cannot_start_fails_at_the_preflight_with_the_reason(sandbox, tmp_path, playbook):
    """Run as root, the remedy is the path itself (here a file stands where the backup directory's parent should be)."""
    box, _cluster = sandbox
    blocker = tmp_path / 'not-a-directory'
    blocker.write_text('a file')
    run = play(box, playbook, engineroom_backup_dir=str(blocker / 'backups'))
    assert run.rc != 0
    failed = failed_tasks(run)
    assert [task for task, _msg in failed][-1] == 'Say why this host cannot start its maintenance', failed
    message = failed[-1][1]
    assert 'the backup directory %s cannot be created or used by root' % (blocker / 'backups') in message
    assert 'check the path' in message and 'become' not in message and 'nothing was locked or changed' in message
    assert not [t for t in run.tasks if t.get('changed')]

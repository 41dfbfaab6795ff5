"""Faults on real hosts: the daily playbook over SSH as deploy with become, on the engineroom-host images.

One fleet per module (Debian 11, 12 and 13 containers, sshd on 127.0.0.1 ports, Debian's packaged
PostgreSQL reached by peer authentication as the postgres OS user, exactly as the molecule scenario
``real_hosts`` configures them: tests/harness/real_hosts.py reads its molecule.yml). One daily run
carries three faults at once, each on its own host, plus a fourth inventory host whose SSH port is
closed; the healthy host must finish. Then, on the same containers: a pg_dump older or newer than the
server (Debian's pg_wrapper picks the newest installed client) and a run without become.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.harness import faults
from tests.harness.playbook import run_playbook
from tests.harness.real_hosts import Fleet, RELEASES, missing_images, transplant_client

pytestmark = pytest.mark.docker

REFUSED = 'pytest-rh-refused'
BACKUPS = '/var/backups/engineroom'


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    missing = missing_images(RELEASES)
    if missing:
        pytest.skip('%s missing: scripts/build-host-images.sh builds them' % ', '.join(missing))
    with Fleet(str(tmp_path_factory.mktemp('real-hosts')), sorted(RELEASES)) as running:
        yield running


def daily(fleet, inventory, log_dir, extra_vars=None, args=()):
    return run_playbook('daily.yml', inventory=inventory, env=fleet.env(log_dir), args=args,
                        extra_vars=dict(faults.HEALTH_REPORTED_ONLY, **(extra_vars or {})), timeout=600)


def log_entries(log_dir):
    with open(os.path.join(log_dir, 'maintenance.jsonl')) as handle:
        return [json.loads(line) for line in handle]


def snapshots(host):
    listing = host.sh('ls %s 2>/dev/null || true' % BACKUPS).stdout.split()
    return sorted(name for name in listing if name.endswith('.manifest.json'))


@pytest.fixture(scope='module')
def faulty_daily(fleet, tmp_path_factory):
    """daily.yml on four hosts: sudo wants a password on bullseye, PostgreSQL stopped on bookworm, trixie healthy,
    and a host whose SSH port is closed; the faults are undone afterwards."""
    bullseye, bookworm = fleet['bullseye'], fleet['bookworm']
    bullseye.sh("echo 'deploy ALL=(ALL) ALL' > /etc/sudoers.d/deploy && echo 'deploy:not-in-the-inventory' | chpasswd")
    bookworm.sh('pg_ctlcluster %d main stop' % bookworm.pg_major)
    log_dir = str(tmp_path_factory.mktemp('maintenance-log'))
    inventory = fleet.inventory('faulty.json', extra_hosts={REFUSED: fleet.refused_host()})
    try:
        run = daily(fleet, inventory, log_dir, dict(engineroom_max_fail_percentage=50))
    finally:
        bullseye.sh("echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy && passwd -q -l deploy")
        bookworm.sh('pg_ctlcluster %d main start' % bookworm.pg_major)
    return run, log_entries(log_dir)


def run_end(entries):
    return [e for e in entries if e.get('event') == 'run_end'][-1]


def test_ssh_refused_host_is_recorded_unreachable_and_the_others_go_on(fleet, faulty_daily):
    run, entries = faulty_daily
    assert run.report['stats'][REFUSED]['unreachable'] == 1
    end = run_end(entries)
    assert end['hosts'][REFUSED]['status'] == 'unreachable', end
    unreachable = [e for e in entries if e.get('event') == 'task' and e.get('status') == 'unreachable']
    assert REFUSED in [e['host'] for e in unreachable]
    assert any('Connection refused' in e['msg'] for e in unreachable if e['host'] == REFUSED), unreachable
    trixie = fleet['trixie']
    assert end['hosts'][trixie.name]['status'] == 'changed', end
    assert len(snapshots(trixie)) == 1


def test_sudo_asking_for_a_password_fails_that_host_at_the_first_task_naming_user_and_remedy(fleet, faulty_daily):
    run, entries = faulty_daily
    host = fleet['bullseye'].name
    failed = [(name, msg) for name, msg in faults.failed_tasks(run) if name == 'Say why this host cannot start its maintenance']
    mine = [t for t in run.tasks if t['_host'] == host and t['_task'] == 'Say why this host cannot start its maintenance']
    assert len(mine) == 1 and mine[0]['failed'], [(t['_task'], t.get('msg')) for t in run.tasks if t['_host'] == host]
    assert mine[0]['msg'] == (
        '%s: sudo asks deploy for a password (Task failed: Missing sudo password): the calendar runs unattended, so give '
        'deploy passwordless sudo ("deploy ALL=(ALL) NOPASSWD: ALL" in /etc/sudoers.d/) or set ansible_become_password '
        'from a vault; nothing was locked or changed' % host), failed
    assert run_end(entries)['hosts'][host]['status'] == 'failed'
    assert snapshots(fleet['bullseye']) == []


def test_stopped_cluster_fails_daily_on_that_host_only(fleet, faulty_daily):
    run, entries = faulty_daily
    host, trixie = fleet['bookworm'].name, fleet['trixie'].name
    mine = [(t['_task'], t.get('msg')) for t in run.tasks if t['_host'] == host and t.get('failed')]
    assert len(mine) == 1 and mine[0][0].startswith('engineroom.maintenance.db_snapshot : Take the database snapshot'), mine
    assert mine[0][1].startswith('cannot connect to PostgreSQL as postgres@/var/run/postgresql:5432/app: ') and \
        'is PostgreSQL running and listening there?' in mine[0][1], mine
    assert run_end(entries)['hosts'][host]['status'] == 'failed'
    assert snapshots(fleet['bookworm']) == []
    # The healthy host went through the whole day: snapshot verified, logs reviewed, nothing failed.
    done = [t['_task'] for t in run.tasks if t['_host'] == trixie]
    assert [t for t in run.tasks if t['_host'] == trixie and t.get('failed')] == []
    assert any('Re-verify the snapshot against its manifest' in name for name in done), done
    assert any(name.endswith('Audit the logs, find ghost handles, review errors') for name in done), done
    assert run.rc == 4  # some hosts unreachable (that code wins over the failed ones)


@pytest.fixture
def daily_with_only_the_client_of(fleet, tmp_path):
    """``run(source, target)``: ``target``'s own pg_dump moved aside and ``source``'s client installed instead (what
    pg_wrapper then runs for ``-h`` is checked), daily's snapshot on ``target``; its own client is put back afterwards."""
    moved = []

    def run(source, target):
        transplant_client(source, target)
        path = '/usr/lib/postgresql/%d/bin/pg_dump' % target.pg_major
        target.sh('mv %s %s.away' % (path, path))
        moved.append((target, path))
        picked = target.sh('pg_dump --version -h /var/run/postgresql').stdout
        assert picked.startswith('pg_dump (PostgreSQL) %d.' % source.pg_major), picked
        return daily(fleet, fleet.inventory('%s.json' % target.release), str(tmp_path),
                     args=('--limit', target.name, '--tags', 'snapshot'))

    yield run
    for host, path in moved:
        host.sh('mv %s.away %s' % (path, path))


def test_only_an_older_pg_dump_is_refused_naming_both_versions(fleet, daily_with_only_the_client_of):
    bookworm = fleet['bookworm']
    run = daily_with_only_the_client_of(fleet['bullseye'], bookworm)
    failed = faults.failed_tasks(run)
    assert run.rc == 2 and len(failed) == 1, failed
    assert re.match(r'pg_dump 13\.\d+ \(/usr/lib/postgresql/13/bin/pg_dump\) is older than server 15\.\d+ .*: '
                    r'install postgresql-client-15 or set pg_dump_path$', failed[0][1]), failed
    assert snapshots(bookworm) == []


def test_only_a_newer_pg_dump_takes_the_snapshot(fleet, daily_with_only_the_client_of):
    bullseye = fleet['bullseye']
    run = daily_with_only_the_client_of(fleet['bookworm'], bullseye)
    assert run.rc == 0, faults.failed_tasks(run)
    (manifest,) = snapshots(bullseye)
    database = json.loads(bullseye.sh('cat %s/%s' % (BACKUPS, manifest)).stdout)['database']
    assert database['server_version'].startswith('13.') and database['pg_dump_version'].startswith('15.'), database
    verified = [t for t in run.tasks if 'Re-verify the snapshot against its manifest' in t['_task']]
    assert verified and not verified[0].get('failed'), [t['_task'] for t in run.tasks]


def test_without_become_the_first_check_names_the_path_and_the_user(fleet, tmp_path):
    """deploy without become: on a new host the first task says it cannot create the backup directory; where the
    directory exists (root's, 0700, from a run with become), the snapshot's first check says it may not write it."""
    trixie = fleet['trixie']
    fresh = '/var/backups/engineroom-new'
    inventory = fleet.inventory('no-become.json', host_vars={trixie.name: dict(ansible_become=False)})

    run = daily(fleet, inventory, str(tmp_path), dict(engineroom_backup_dir=fresh), args=('--limit', trixie.name))
    failed = faults.failed_tasks(run)
    assert run.rc == 2 and failed[-1][0] == 'Say why this host cannot start its maintenance', failed
    assert failed[-1][1].startswith('%s: the backup directory %s cannot be created or used by deploy (' % (trixie.name, fresh))
    assert 'Permission denied' in failed[-1][1] and 'run with become (ansible_become: true)' in failed[-1][1], failed
    assert len(run.tasks) == 2, [t['_task'] for t in run.tasks]  # nothing else ran
    assert trixie.sh('test -e %s' % fresh, check=False).returncode == 1

    trixie.sh('mkdir -p -m 0700 %s' % BACKUPS)
    listing = 'ls -la --time-style=full-iso /var/lib/engineroom %s 2>&1; true' % BACKUPS
    before = trixie.sh(listing).stdout
    run = daily(fleet, inventory, str(tmp_path), args=('--limit', trixie.name, '--tags', 'snapshot'))
    failed = faults.failed_tasks(run)
    assert run.rc == 2 and len(failed) == 1 and failed[0][0].startswith('Take the database snapshot'), failed
    assert failed[0][1] == ('dest %s cannot hold snapshots: directory %s is not writable: Permission denied (the module runs '
                            'as user deploy: run the task with become: true, or give that user the directory)'
                            % (BACKUPS, BACKUPS)), failed
    assert trixie.sh(listing).stdout == before

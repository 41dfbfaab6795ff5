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

import pytest

from tests.harness import faults
from tests.harness.playbook import run_playbook
from tests.harness.real_hosts import Fleet, RELEASES, missing_images

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


def test_sudo_asking_for_a_password_fails_that_host_with_a_clear_message(fleet, faulty_daily):
    run, entries = faulty_daily
    host = fleet['bullseye'].name
    failed = [t for t in run.tasks if t['_host'] == host and (t.get('failed') or t.get('unreachable'))]
    assert failed, [(t['_task'], t.get('msg')) for t in run.tasks if t['_host'] == host]
    print(failed[0])
    assert 'sudo' in failed[0]['msg'] and 'password' in failed[0]['msg'], failed[0]
    assert run_end(entries)['hosts'][host]['status'] in ('failed', 'unreachable')
    assert snapshots(fleet['bullseye']) == []


def test_stopped_cluster_fails_daily_on_that_host_only(fleet, faulty_daily):
    run, entries = faulty_daily
    host = fleet['bookworm'].name
    failed = faults.failed_tasks(run)
    print(failed)
    mine = [(t['_task'], t.get('msg')) for t in run.tasks if t['_host'] == host and t.get('failed')]
    assert mine and 'Take the database snapshot' in mine[0][0], mine
    assert '/var/run/postgresql' in mine[0][1], mine
    assert run_end(entries)['hosts'][host]['status'] == 'failed'
    assert snapshots(fleet['bookworm']) == []
    assert [t for t in run.tasks if t['_host'] == fleet['trixie'].name and t.get('failed')] == []

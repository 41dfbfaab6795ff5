"""Concurrent acquisitions by separate processes, and a run killed while holding the lock.

Races run real processes (ansible-playbook runs, and the module file started
directly by Python as Ansible starts it) while an observer thread reads the
lock file in a loop: every read must find no file or a complete record.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from ansible_collections.engineroom.maintenance.plugins.module_utils.health.probes import run_probe
from ansible_collections.engineroom.maintenance.plugins.module_utils.lock.record import LockCorrupt, parse_record

from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env, run_tasks
from tests.integration.maintenance_lock.conftest import (
    APP2_ROLE,
    DATABASE,
    MODULE,
    db_params,
    lock_task,
    module_process,
    module_result,
    role_settings,
)


class Observer(threading.Thread):
    """Reads the lock file as fast as it can; records what it saw and anything unreadable."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.done = threading.Event()
        self.seen = Counter()
        self.bad = []

    def run(self):
        while not self.done.is_set():
            try:
                with open(self.path, 'rb') as handle:
                    data = handle.read()
            except FileNotFoundError:
                self.seen['absent'] += 1
            else:
                try:
                    parse_record(data, self.path)
                    self.seen['record'] += 1
                except LockCorrupt as exc:
                    self.bad.append('%s: %r' % (exc, data[:200]))
            time.sleep(0.001)  # thousands of reads a second, without starving the racers of CPU

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join(10)


def assert_one_winner(results, lock_file):
    winners = [r for r in results if not r.get('failed')]
    assert len(winners) == 1, [r.get('msg') for r in results]
    winner = winners[0]['holder']['owner']
    assert winners[0]['acquired'] is True and winners[0]['changed'] is True
    for loser in (r for r in results if r.get('failed')):
        assert loser['changed'] is False and loser['acquired'] is False
        assert loser['holder']['owner'] == winner
        assert 'is held by %s since' % winner in loser['msg']
    with open(lock_file) as handle:
        assert json.load(handle)['owner'] == winner
    return winner


def test_eight_ansible_playbook_runs_exactly_one_wins(lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    with Observer(lock_file) as observer, ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda i: run_tasks([lock_task('acquire', owner='run-%d' % i, lock_file=lock_file)]),
                             range(8)))
    results = [run.result('acquire') for run in runs]
    assert_one_winner(results, lock_file)
    assert observer.bad == [] and observer.seen['record'] > 0
    assert os.listdir(lock_dir) == ['maintenance.json']  # no temporary file left behind


def test_twelve_module_processes_race_then_take_turns(lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    with Observer(lock_file) as observer:
        procs = [module_process(dict(owner='proc-%02d' % i, lock_file=lock_file)) for i in range(12)]
        results = [module_result(proc) for proc in procs]
        winner = assert_one_winner(results, lock_file)
        release = module_result(module_process(dict(state='absent', owner=winner, lock_file=lock_file)))
        assert release['released'] is True

        # Four workers each wait for the lock, hold it, release it: never two holders at once.
        holders = []
        overlaps = []
        guard = threading.Lock()

        def take_turn(index):
            owner = 'turn-%d' % index
            acquired = module_result(module_process(dict(owner=owner, lock_file=lock_file, wait_s=120)))
            assert acquired.get('acquired') is True, acquired.get('msg')
            with guard:
                if holders:
                    overlaps.append((holders[:], owner))
                holders.append(owner)
            time.sleep(0.05)
            with guard:
                holders.remove(owner)
            released = module_result(module_process(dict(state='absent', owner=owner, lock_file=lock_file)))
            assert released['released'] is True, released.get('msg')
            return acquired

        with ThreadPoolExecutor(4) as pool:
            turns = list(pool.map(take_turn, range(4)))
    assert overlaps == []
    assert sorted(t['holder']['owner'] for t in turns) == ['turn-%d' % i for i in range(4)]
    assert observer.bad == [] and observer.seen['record'] > 0 and observer.seen['absent'] > 0
    assert os.listdir(lock_dir) == []


def wait_until_blocked_on_flock(pid, directory, timeout=60):
    """Wait until process ``pid`` waits for the flock of ``directory`` (a ``->`` line of /proc/locks)."""
    inode = ':%d' % os.stat(directory).st_ino
    deadline = time.monotonic() + timeout
    while True:
        with open('/proc/locks') as handle:
            for line in handle:
                fields = line.split()
                if '->' in fields and str(pid) in fields and any(f.endswith(inode) for f in fields):
                    return
        assert time.monotonic() < deadline, 'process %d never reached the lock' % pid
        time.sleep(0.05)


def test_wait_s_waits_for_the_release_or_gives_up_with_the_holder(lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    assert module_result(module_process(dict(owner='alice', lock_file=lock_file)))['acquired'] is True

    # Hold the directory's flock so that bob is known to have started before alice releases:
    # once the flock is free bob reads alice's lock, and then has to wait for the release.
    fd = os.open(lock_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        bob = module_process(dict(owner='bob', lock_file=lock_file, wait_s=60))
        wait_until_blocked_on_flock(bob.pid, lock_dir)
    finally:
        os.close(fd)
    released = module_result(module_process(dict(state='absent', owner='alice', lock_file=lock_file)))
    assert released['released'] is True
    waited = module_result(bob)
    assert waited['acquired'] is True and waited['holder']['owner'] == 'bob', waited.get('msg')
    assert waited['metrics']['wait_ms'] > 0

    result = module_result(module_process(dict(owner='carol', lock_file=lock_file, wait_s=1)))
    assert result['failed'] is True and 'is held by bob' in result['msg']
    assert 'after waiting 1 s' in result['msg'] and result['holder']['owner'] == 'bob'


def test_killed_run_keeps_lock_until_expiry_then_steal_restores_originals(roles, lock_dir):
    pg = roles
    original = role_settings(pg, APP2_ROLE)
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    flag_file = os.path.join(lock_dir, 'maintenance.flag')
    ttl_s = 6
    play = [dict(name='crashing run', hosts='localhost', gather_facts=False, tasks=[
        {'name': 'acquire', MODULE: dict(owner='crashed-run', lock_file=lock_file, flag_file=flag_file, ttl_s=ttl_s,
                                         readonly_roles=[APP2_ROLE], **db_params(pg))},
        {'name': 'long maintenance step', 'ansible.builtin.command': {'argv': ['sleep', '300']}},
    ])]
    with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as handle:
        json.dump(play, handle)
    try:
        proc = subprocess.Popen([os.path.join(BIN_DIR, 'ansible-playbook'), handle.name, '-i',
                                 os.path.join(REPO_ROOT, 'inventories', 'local')], cwd=REPO_ROOT, env=ansible_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(flag_file):  # the flag is the acquisition's last step
            assert proc.poll() is None and time.monotonic() < deadline, 'the crashing run never took the lock'
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        os.unlink(handle.name)

    with open(lock_file, 'rb') as handle:
        crashed = parse_record(handle.read(), lock_file)
    assert crashed['owner'] == 'crashed-run' and crashed['ttl_s'] == ttl_s
    assert crashed['readonly_roles'][0]['settings'] == [dict(database=None, value=None),
                                                        dict(database=DATABASE, value='off')]
    probe = dict(name='maintenance', kind='maintenance', lock_file=lock_file)
    while_valid = run_probe(probe, {}, 5)
    if while_valid['details']['expires_in_s'] > 0:
        assert while_valid['status'] == 'degraded' and 'maintenance on' in while_valid['message']

    expires_at = datetime.strptime(crashed['expires_at'], '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=timezone.utc)
    time.sleep(max(0.0, (expires_at - datetime.now(timezone.utc)).total_seconds() + 1.0))
    assert os.path.exists(lock_file) and os.path.exists(flag_file)  # the TTL does not remove anything

    health = {'engineroom.maintenance.health_probe': dict(probes=[probe], fail_on='never')}
    run = run_tasks([
        dict(health, name='probe expired'),
        lock_task('acquire without steal', owner='oncall', lock_file=lock_file),
        lock_task('steal', owner='oncall', lock_file=lock_file, steal_expired=True, flag_file=flag_file,
                  readonly_roles=[APP2_ROLE], **db_params(pg)),
        dict(health, name='probe stolen'),
        lock_task('release', state='absent', owner='oncall', lock_file=lock_file, **db_params(pg)),
        dict(health, name='probe released'),
    ])
    expired = run.result('probe expired')['probes'][0]
    assert expired['status'] == 'unhealthy' and expired['details']['expired'] is True
    assert 'crashed-run' in expired['message'] and 'steal_expired' in expired['message']
    refused = run.result('acquire without steal')
    assert refused['failed'] is True and refused['expired'] is True
    assert 'expired' in refused['msg'] and 'steal_expired: true' in refused['msg']
    stolen = run.result('steal')
    assert stolen['changed'] is True and stolen['stolen'] is True and stolen['expired'] is True
    assert stolen['previous_holder']['owner'] == 'crashed-run' and stolen['holder']['owner'] == 'oncall'
    assert stolen['holder']['readonly_roles'] == crashed['readonly_roles']  # the true originals are kept
    assert stolen['roles_changed'] == []  # already read-only since the crashed run
    assert 'expired lock of crashed-run taken over by oncall' in stolen['summary']
    assert run.result('probe stolen')['probes'][0]['status'] == 'degraded'
    released = run.result('release')
    assert released['released'] is True and released['roles_changed'] == [APP2_ROLE]
    assert run.result('probe released')['probes'][0]['status'] == 'healthy'
    assert role_settings(pg, APP2_ROLE) == original
    assert os.listdir(lock_dir) == []

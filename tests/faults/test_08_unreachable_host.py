"""Case 08: one host of three is unreachable during daily.yml.

Two hosts run with the local connection against one sandbox, each with its own
backup and state directories; the third is an SSH host on a loopback port
nobody listens on. What ansible-core 2.19 does, and this case holds the
playbooks to: an unreachable host is dropped from the play and the others go
on. ``max_fail_percentage`` counts FAILED hosts of the batch only (the linear
strategy compares ``len(failed_hosts) / batch_size``), so an unreachable host
alone never stops the play, even at 0; a failed host does, at 0, after the
task it failed, and does not when the percentage allows it (ansible/ansible#7686:
"expected behavior", #56265 still open; ``any_errors_fatal`` does count them).
"""

from __future__ import annotations

import os
import sys

from tests.harness import faults, faults_fs
from tests.harness.ports import free_port

PER_HOST = ('web1', 'web2')


def inventory(box, path, failing_host=None):
    """web1 and web2 local (own backups/state), web3 unreachable; ``failing_host`` snapshots a database that does not exist."""
    group_vars = box.variables()
    group_vars['health_check_probes'] = faults.steady_probes(box)
    hosts = {}
    for name in PER_HOST:
        state = os.path.join(box.root, 'state', name)
        os.makedirs(os.path.join(state, 'logrotate.d'), exist_ok=True)
        os.makedirs(os.path.join(box.root, 'backups', name), exist_ok=True)
        hosts[name] = dict(ansible_connection='local', ansible_python_interpreter=sys.executable,
                           engineroom_backup_dir=os.path.join(box.root, 'backups', name),
                           engineroom_state_dir=state,
                           log_oversight_logrotate_file=os.path.join(state, 'logrotate.d', 'engineroom-app'),
                           health_check_prometheus_textfile=os.path.join(box.root, 'results', '%s.prom' % name))
    if failing_host:
        hosts[failing_host]['db_snapshot_database'] = 'no_such_database'
    hosts['web3'] = dict(ansible_connection='ssh', ansible_host='127.0.0.1', ansible_port=free_port(),
                         ansible_user='nobody',
                         ansible_ssh_common_args='-o ConnectTimeout=5 -o BatchMode=yes -o StrictHostKeyChecking=no '
                                                 '-o UserKnownHostsFile=/dev/null')
    return faults.write_inventory(path, hosts, group_vars)


def daily(box, inventory_path, max_fail_percentage):
    return box.play('daily.yml', dict(engineroom_max_fail_percentage=max_fail_percentage),
                    with_box_vars=False, inventory=inventory_path)


def tasks_of(run, host):
    return [t['_task'] for t in run.tasks if t['_host'] == host]


def run_events(box, index):
    """(run_end, task events) of the ``index``-th run in the maintenance log."""
    run_id = faults.log_events(box, 'run_start')[index]['run_id']
    return faults.log_events(box, 'run_end', run_id=run_id)[0], faults.log_events(box, 'task', run_id=run_id)


def snapshots_of(box, host):
    folder = os.path.join(box.root, 'backups', host)
    return sorted(name for name in os.listdir(folder) if name.endswith('.manifest.json'))


def test_unreachable_host_others_complete_and_max_fail_percentage_counts_failures(sandbox, reliability, tmp_path):
    reliability.describe(
        '08-unreachable-host',
        'daily.yml on three hosts, web3 unreachable (SSH to a closed loopback port); then web2 also failing its '
        'snapshot (a database that does not exist), with engineroom_max_fail_percentage 0 and 50',
        'web1 and web2 complete; the callback records web3 as unreachable; max_fail_percentage honoured as ansible '
        'documents it: a failure stops the batch at 0 and not at 50')
    box = sandbox
    before = faults_fs.file_tree(os.path.join(box.root, 'uploads'), os.path.join(box.root, 'logs'))

    # 1. Only web3 unreachable, max_fail_percentage 0 (the playbooks' default).
    run = daily(box, inventory(box, str(tmp_path / 'hosts.json')), 0)
    # 4 is ansible-playbook's code for "some hosts were unreachable"; 2 would mean a task failed.
    assert run.rc == 4, [(t['_host'], t['_task'], t.get('msg')) for t in run.tasks if t.get('failed')]
    for host in PER_HOST:
        assert any(t.endswith('Audit the logs, find ghost handles, review errors') for t in tasks_of(run, host)), host
        assert len(snapshots_of(box, host)) == 1, host
    assert run.report['stats']['web3']['unreachable'] == 1
    end, events = run_events(box, 0)
    assert end['hosts']['web3']['status'] == 'unreachable' and end['status'] == 'unreachable'
    assert end['hosts']['web1']['status'] == end['hosts']['web2']['status'] == 'changed'
    unreachable = [e for e in events if e['status'] == 'unreachable']
    assert [e['host'] for e in unreachable] == ['web3'] and unreachable[0]['msg']
    with open(os.path.join(box.maintenance_log_dir, 'MAINTENANCE_LOG.md')) as handle:
        assert '### web3: unreachable' in handle.read()

    # 2. web2's snapshot fails too, max_fail_percentage 0: 1 failed of 3 > 0 %, the play stops for all after that task.
    failing = inventory(box, str(tmp_path / 'hosts-failing.json'), failing_host='web2')
    stopped = daily(box, failing, 0)
    assert stopped.rc == 2, stopped.stderr[-3000:]
    failed = [t for t in stopped.tasks if t.get('failed')]
    assert [t['_host'] for t in failed] == ['web2']
    assert 'Take the database snapshot of the slot' in failed[0]['_task'] and 'no_such_database' in failed[0]['msg']
    assert not any(t.endswith('Audit the logs, find ghost handles, review errors') for t in tasks_of(stopped, 'web1'))
    end, events = run_events(box, 1)
    assert not [e for e in events if e['host'] == 'web1' and e['task'].startswith('engineroom.maintenance.log_oversight')]
    assert end['hosts']['web2']['status'] == 'failed' and end['hosts']['web3']['status'] == 'unreachable'

    # 3. The same at 50 %: 1 of 3 failed is within it, web1 finishes the day.
    went_on = daily(box, failing, 50)
    assert went_on.rc == 4, went_on.stderr[-3000:]  # failed and unreachable hosts: unreachable wins the exit code
    web1 = tasks_of(went_on, 'web1')
    assert any(t.endswith('Take the database snapshot of the slot, then apply retention, in %s'
                          % os.path.join(box.root, 'backups', 'web1')) for t in web1)
    assert any(t.endswith('Audit the logs, find ghost handles, review errors') for t in web1)
    end, events = run_events(box, 2)
    assert end['hosts']['web1']['status'] in ('ok', 'changed') and end['hosts']['web2']['status'] == 'failed'
    assert end['hosts']['web3']['status'] == 'unreachable'
    for host in PER_HOST:
        assert len(snapshots_of(box, host)) == 1, 'the daily slot of %s was already taken' % host

    after = faults_fs.file_tree(os.path.join(box.root, 'uploads'), os.path.join(box.root, 'logs'))
    reliability.data_lost_bytes = faults_fs.lost_bytes(before, after)
    reliability.observed = (
        'web1 and web2 took and verified their snapshots and reviewed the logs while web3 was unreachable (exit 4); '
        'maintenance.jsonl has web3 "unreachable" with the SSH message and MAINTENANCE_LOG.md a "web3: unreachable" '
        'section; unreachable alone does not count towards max_fail_percentage (ansible counts failed hosts only); '
        'with web2 failing its snapshot: at 0 the play stopped after that task (web1 reviewed no logs), at 50 web1 finished')
    assert reliability.data_lost_bytes == 0

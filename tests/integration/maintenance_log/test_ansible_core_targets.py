"""ansible-core's own integration-test playbooks, with the maintenance_log callback off and on.

The material (21 targets of ansible-core's ``test/integration/targets``, see its README) lives
beside the project in ``../shared/ansible-core-targets/targets.tar.zst``; it is extracted into a
temporary directory here and nothing of it is copied into the project. Where it is absent the
test skips and says so (``ENGINEROOM_CORE_TARGETS`` may name the tarball elsewhere).

Each case runs its playbook twice - only a passive witness callback (``witness/witness.py``), then
the witness and maintenance_log - and checks that:

- the callback changed nothing: same return code, same events sent, same per-host recap;
- it recorded every task result ansible sent (witness events = task records, per host and task);
- its statuses add up to ansible's recap exactly (failed, rescued, ignored, unreachable), and its
  run_end counts are the recap's;
- every line it wrote is strict JSON, and every run that started has an end;
- no ``no_log`` value of the playbooks reaches any file it wrote.

Many of these playbooks fail on purpose or because the snapshot predates this ansible-core:
a run is compared with the same run without the callback, never with "exit 0".
Run time: the 22 cases run twice each, 8 playbooks at a time; measured 5 to 9 minutes on a 2-core machine
shared with other test runs (the slowest cases: until, async, callback_default), printed at the end.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest

from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env
from tests.integration.maintenance_log.conftest import CALLBACK, strict_events

TARBALL = os.environ.get('ENGINEROOM_CORE_TARGETS') or os.path.join(
    os.path.dirname(REPO_ROOT), 'shared', 'ansible-core-targets', 'targets.tar.zst')
WITNESS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'witness')
# loops and loop-until are left out: their hundreds of loop items take minutes on their own; loop_control,
# until and the loops of no_log and handlers cover loops.
ROLE_TARGETS = ('failed_when', 'until', 'ignore_errors', 'async')
# Outcomes that depend on timing: throttle's script fails when more hosts than allowed run at once, which a
# loaded machine can provoke either way, so its two runs are not compared with each other (the run with the
# callback is still checked against what ansible sent and counted).
TIMING_DEPENDENT = ('throttle',)
# (case id, target, playbook in the target or None for a role target, inventory in the target or None, extra arguments)
CASES = [
    ('no_log-local', 'no_log', 'no_log_local.yml', None, []),
    ('no_log-dynamic', 'no_log', 'dynamic.yml', None, ['-e', 'unsafe_show_logs=no']),
    ('no_log-suboptions', 'no_log', 'no_log_suboptions.yml', None, []),
    ('callback_default', 'callback_default', 'test.yml', 'inventory', []),
    ('handlers', 'handlers', 'test_handlers.yml', 'inventory.handlers', ['--tags', 'scenario1']),
    ('handlers-inexistent-notify', 'handlers', 'test_handlers_inexistent_notify.yml', 'inventory.handlers', []),
    ('include_tasks', 'include_import', 'tasks/test_include_tasks.yml', 'inventory', []),
    ('blocks', 'blocks', 'main.yml', None, []),
    ('blocks-fail', 'blocks', 'block_fail.yml', None, []),
    ('any_errors_fatal', 'any_errors_fatal', 'always_block.yml', 'inventory', []),
    ('strategy_free', 'strategy_free', 'test_last_include_in_always.yml', 'inventory', []),
    ('throttle', 'throttle', 'test_throttle.yml', 'inventory', ['--forks', '12']),
    ('check_mode', 'check_mode', 'check_mode.yml', None, ['--check']),
    ('ignore_unreachable', 'ignore_unreachable', 'test_cannot_connect.yml', 'inventory', []),
    ('set_stats', 'set_stats', 'test_aggregate.yml', None, []),
    ('meta-end_host', 'meta_tasks', 'test_end_host.yml', 'inventory.yml', ['-e', 'test_strategy=linear']),
    ('delegate_to-no_log', 'delegate_to', 'delegate_and_nolog.yml', 'inventory', []),
    ('loop_control', 'loop_control', 'extended.yml', None, []),
] + [('role-%s' % target, target, None, None, []) for target in ROLE_TARGETS]
# What the targets themselves treat as secret (no_log/runme.sh greps for them).
SECRET_MARKERS = ('DO_NOT_LOG', 'SECRET1', 'action result should be masked')
# Runs at once: most of a run's time is waiting (connection timeouts, sleeps, async polls), not CPU.
PARALLEL = int(os.environ.get('ENGINEROOM_CORE_TARGETS_PARALLEL', '8'))
RUN_TIMEOUT = 240


@pytest.fixture(scope='module')
def targets():
    if not os.path.isfile(TARBALL):
        pytest.skip('ansible-core\'s integration targets are not at %s: that test material lives beside the project '
                    '(../shared/ansible-core-targets/, see its README); nothing to compare against here' % TARBALL)
    import zstandard
    root = tempfile.mkdtemp(prefix='engineroom-core-targets-')
    with open(TARBALL, 'rb') as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream, \
            tarfile.open(fileobj=stream, mode='r|') as archive:
        archive.extractall(root, filter='data')
    base = os.path.join(root, 'test', 'integration', 'targets')
    with open(os.path.join(root, 'inventory'), 'w') as handle:  # ansible-test's ../../inventory
        handle.write('testhost ansible_connection=local ansible_python_interpreter=%s\n'
                     % os.path.join(BIN_DIR, 'python'))
    stub = os.path.join(root, 'stub-roles', 'prepare_tests', 'tasks')  # ansible-test's empty dependency role
    os.makedirs(stub)
    with open(os.path.join(stub, 'main.yml'), 'w') as handle:
        handle.write('[]\n')
    yield dict(root=root, base=base)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope='module')
def outcomes(targets):
    """Every case run off and on, several at once; {case id: (off, on)} and the wall time."""
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        jobs = {}
        for case in CASES:
            work = os.path.join(targets['root'], 'work', case[0])
            os.makedirs(work)
            jobs[case[0]] = (pool.submit(run, case, targets, work, False), pool.submit(run, case, targets, work, True))
        done = dict((name, (off.result(), on.result())) for name, (off, on) in jobs.items())
    return dict(cases=done, seconds=time.monotonic() - started)


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding='utf-8') as handle:
        return [json.loads(line) for line in handle]


def playbook_for(case, targets, output_dir):
    """The playbook to run and its directory (a copy of the target's, since several write files there);
    a role target gets ansible-test's generated play."""
    _case_id, target, playbook, _inventory, _args = case
    directory = os.path.join(output_dir, 'targets', target)
    shutil.copytree(os.path.join(targets['base'], target), directory, symlinks=True)
    shutil.copy(os.path.join(targets['root'], 'inventory'), os.path.join(output_dir, 'inventory'))  # ../../inventory
    if playbook:
        return os.path.join(directory, playbook), directory
    path = os.path.join(output_dir, 'role-%s.yml' % target)
    with open(path, 'w') as handle:
        json.dump([dict(hosts='testhost', gather_facts=True, vars=dict(output_dir=output_dir), roles=[target])], handle)
    return path, directory


def run(case, targets, work, callback_on):
    name = 'on' if callback_on else 'off'
    witness, log_dir = os.path.join(work, 'witness-%s.jsonl' % name), os.path.join(work, 'log-%s' % name)
    output_dir = os.path.join(work, 'output-%s' % name)  # each run its own (until writes a counter there)
    os.makedirs(output_dir)
    playbook, directory = playbook_for(case, targets, output_dir)
    inventory = os.path.join(directory, case[3]) if case[3] else os.path.join(targets['root'], 'inventory')
    env = ansible_env(dict(
        ANSIBLE_CALLBACK_PLUGINS=WITNESS_DIR,
        ANSIBLE_CALLBACKS_ENABLED='witness,' + CALLBACK if callback_on else 'witness',
        ANSIBLE_STDOUT_CALLBACK='ansible.builtin.minimal', ENGINEROOM_MAINTENANCE_LOG_DIR=log_dir, WITNESS_LOG=witness,
        ANSIBLE_ROLES_PATH=os.pathsep.join([os.path.join(targets['root'], 'stub-roles'), targets['base']]),
        ANSIBLE_PYTHON_INTERPRETER=os.path.join(BIN_DIR, 'python'), ANSIBLE_TIMEOUT='5',
        ANSIBLE_HOST_KEY_CHECKING='False', SELECTED_STRATEGY='linear', OUTPUT_DIR=output_dir,
        ANSIBLE_TRANSPORT='local' if case[1] == 'handlers' else 'smart'))
    started = time.monotonic()
    try:
        completed = subprocess.run([os.path.join(BIN_DIR, 'ansible-playbook'), playbook, '-i', inventory] + case[4],
                                   cwd=directory, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return dict(rc='timed out after %d s' % RUN_TIMEOUT, output='', witness=[], log_dir=log_dir, seconds=RUN_TIMEOUT)
    return dict(rc=completed.returncode, output=completed.stdout[-3000:] + completed.stderr[-3000:],
                witness=read_lines(witness), log_dir=log_dir, seconds=time.monotonic() - started)


def results_of(witness):
    return collections.Counter((e['host'], e['task'], 'failure' if e['event'] in ('failed', 'unreachable') else e['event'])
                               for e in witness if e['event'] != 'stats')


def recap_of(witness):
    stats = [e['hosts'] for e in witness if e['event'] == 'stats']
    return stats[-1] if stats else None  # ansible's stats add up over the call: the last recap is the total


def secret_values(targets):
    """The no_log values of the no_log playbooks: the DO_NOT_LOG_* and SECRET* literals of their tasks,
    and the secret vars (secretvars.yml) the suboption playbooks pass to no_log options."""
    import yaml
    values = set(SECRET_MARKERS)
    directory = os.path.join(targets['base'], 'no_log')
    with open(os.path.join(directory, 'secretvars.yml')) as handle:
        values.update(str(v) for k, v in yaml.safe_load(handle).items() if re.match(r's[0-9]+$', k))
    for name in os.listdir(directory):
        if name.endswith('.yml'):
            with open(os.path.join(directory, name)) as handle:
                values.update(re.findall(r'DO_NOT_LOG[A-Z_0-9]*|SECRET[0-9]+', handle.read()))
    return sorted(values)


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_callback_changes_nothing_and_records_every_result(case, targets, outcomes):
    off, on = outcomes['cases'][case[0]]
    assert isinstance(off['rc'], int) and isinstance(on['rc'], int), (off['rc'], on['rc'])
    if case[0] not in TIMING_DEPENDENT:
        assert on['rc'] == off['rc'], 'return code changed by the callback:\n%s\n---\n%s' % (off['output'], on['output'])
        assert results_of(on['witness']) == results_of(off['witness']), 'ansible sent other results with the callback on'
        assert recap_of(on['witness']) == recap_of(off['witness'])
    events = strict_events(on['log_dir']) if os.path.isdir(on['log_dir']) else []
    tasks = [e for e in events if e['event'] == 'task']
    failures = ('failed', 'rescued', 'ignored', 'unreachable')

    def outcome(status):
        if status in failures:
            return 'failure'
        return 'ok' if status == 'changed' else status

    recorded = collections.Counter((e['host'], e['task'], outcome(e['status'])) for e in tasks)
    sent = results_of(on['witness'])
    assert recorded == sent, 'recorded %d, sent %d: missing %s, extra %s' % (
        sum(recorded.values()), sum(sent.values()), sent - recorded, recorded - sent)
    # every run that started has an end; the ends' counts are ansible's recap
    starts = [e['run_id'] for e in events if e['event'] == 'run_start']
    ends = dict((e['run_id'], e) for e in events if e['event'] == 'run_end')
    assert sorted(starts) == sorted(ends)
    recap = recap_of(on['witness'])
    if recap is not None and all(e['status'] != 'ended_without_summary' for e in ends.values()):
        for host, stats in recap.items():
            mine = [e for e in tasks if e['host'] == host]
            summed = collections.Counter()
            for end in ends.values():
                summed.update(end['hosts'].get(host, {}))
            for key, status in (('failures', 'failed'), ('rescued', 'rescued'), ('ignored', 'ignored')):
                assert sum(1 for e in mine if e['status'] == status) == stats[key] == summed[key], (host, key)
            for key in ('ok', 'changed', 'unreachable', 'skipped'):
                assert summed[key] == stats[key], (host, key)
    # no no_log value in any file the callback wrote
    for name in os.listdir(on['log_dir']) if os.path.isdir(on['log_dir']) else ():
        with open(os.path.join(on['log_dir'], name), 'rb') as handle:
            content = handle.read()
        for secret in secret_values(targets):
            assert secret.encode() not in content, '%s in %s' % (secret, name)


def test_every_result_of_every_case_recorded_in_reasonable_time(outcomes):
    """The figures of the whole comparison: results sent and recorded over all cases, and the wall time."""
    sent = recorded = 0
    for _off, on in outcomes['cases'].values():
        sent += sum(results_of(on['witness']).values())
        recorded += sum(1 for e in strict_events(on['log_dir']) if e['event'] == 'task') if os.path.isdir(on['log_dir']) else 0
    print('ansible-core targets: %d cases, %d task results sent, %d recorded, %.0f s (slowest: %s)' % (
        len(outcomes['cases']), sent, recorded, outcomes['seconds'], ', '.join(
            '%s %.0f s' % (name, seconds) for seconds, name in sorted(
                ((max(off['seconds'], on['seconds']), name) for name, (off, on) in outcomes['cases'].items()),
                reverse=True)[:5])))
    assert sent == recorded and sent > 250
    assert outcomes['seconds'] < 600

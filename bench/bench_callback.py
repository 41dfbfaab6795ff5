"""Overhead of the maintenance_log callback on a run of many small tasks.

The issue's case: a playbook of 200 tasks on 20 hosts (local connection), run
with and without the callback, alternating, median of a few repeats. The tasks
are the cheapest there are (debug, set_fact, assert run on the controller), so
the callback's share of the run is the largest it can be; a real maintenance
task (a VACUUM, a dump) takes seconds and makes it negligible.

Size knobs: BENCH_CALLBACK_TASKS (200), BENCH_CALLBACK_HOSTS (20),
BENCH_CALLBACK_REPEATS (3).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
CALLBACK = 'engineroom.maintenance.maintenance_log'


def write_workload(directory, tasks, hosts):
    inventory = os.path.join(directory, 'hosts.ini')
    with open(inventory, 'w') as handle:
        for number in range(hosts):
            handle.write('bench%02d ansible_connection=local ansible_python_interpreter=%s\n'
                         % (number, sys.executable))
    kinds = [
        lambda n: {'name': 'Debug %d' % n, 'ansible.builtin.debug': {'msg': 'step {{ inventory_hostname }} %d' % n}},
        lambda n: {'name': 'Fact %d' % n, 'ansible.builtin.set_fact': {'bench_value_%d' % n: n}},
        lambda n: {'name': 'Assert %d' % n, 'ansible.builtin.assert': {'that': ['%d >= 0' % n], 'quiet': True}},
        lambda n: {'name': 'Skip %d' % n, 'ansible.builtin.debug': {'msg': 'never'}, 'when': False},
    ]
    play = [dict(name='Bench', hosts='all', gather_facts=False,
                 tasks=[kinds[n % len(kinds)](n) for n in range(tasks)])]
    playbook = os.path.join(directory, 'bench.yml')
    with open(playbook, 'w') as handle:
        json.dump(play, handle)
    empty = os.path.join(directory, 'empty.yml')
    with open(empty, 'w') as handle:
        json.dump([dict(name='Empty', hosts='all', gather_facts=False, tasks=[])], handle)
    return inventory, playbook, empty


def timed_run(playbook, inventory, log_dir=None):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_STDOUT_CALLBACK='ansible.builtin.default',
               ANSIBLE_DISPLAY_OK_HOSTS='false', ANSIBLE_DISPLAY_SKIPPED_HOSTS='false',
               PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    # Only the stdout callback (already loaded as such): maintenance_log stays off even when ansible.cfg enables it.
    env['ANSIBLE_CALLBACKS_ENABLED'] = 'ansible.builtin.default'
    if log_dir:
        env.update(ANSIBLE_CALLBACKS_ENABLED=CALLBACK, ENGINEROOM_MAINTENANCE_LOG_DIR=log_dir)
    started = time.monotonic()
    subprocess.run([os.path.join(BIN, 'ansible-playbook'), playbook, '-i', inventory], cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return time.monotonic() - started


def per_event_cost(directory, events=4000):
    """The callback's own cost per task result, in-process: fields kept, one locked JSON line appended."""
    from ansible.plugins.loader import callback_loader, init_plugin_loader
    init_plugin_loader([os.path.join(ROOT, 'collections')])
    callback = callback_loader.get(CALLBACK)
    from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.record import record_fields
    callback.set_options(direct=dict(log_dir=os.path.join(directory, 'micro')))
    callback.open_log_dir(os.path.join(directory, 'bench.yml'))
    callback.run_id = callback.invocation_id = 'bench'
    result = dict(changed=False, status='degraded', summary='health degraded: 3 healthy, 1 degraded, 0 unhealthy',
                  metrics=dict(duration_ms=35.2, probes_total=4, probes_healthy=3, probes_degraded=1),
                  probes=[dict(name='p%d' % n, kind='disk', status='healthy', message='/srv 41.0 % used',
                               response_ms=0.3, details=dict(paths=[dict(path='/srv', used_pct=41.0)]))
                          for n in range(4)], executed_commands=['statvfs /srv'])
    started = time.process_time()
    for number in range(events):
        fields = dict(host='bench%02d' % (number % 20), play='Bench', task='Probe', module='x.y.health_probe',
                      status='ok', duration_ms=12.5)
        fields.update(record_fields(result))
        callback.emit('task', **fields)
    return (time.process_time() - started) / events


def run():
    tasks = int(os.environ.get('BENCH_CALLBACK_TASKS', '200'))
    hosts = int(os.environ.get('BENCH_CALLBACK_HOSTS', '20'))
    repeats = int(os.environ.get('BENCH_CALLBACK_REPEATS', '3'))
    directory = tempfile.mkdtemp(prefix='engineroom-bench-callback-')
    try:
        inventory, playbook, empty = write_workload(directory, tasks, hosts)
        log_dir = os.path.join(directory, 'log')
        startup = statistics.median(timed_run(empty, inventory) for _repeat in range(repeats))
        without, with_log = [], []
        for _repeat in range(repeats):  # alternate, so machine noise hits both alike
            without.append(timed_run(playbook, inventory))
            with_log.append(timed_run(playbook, inventory, log_dir))
        event_cost = per_event_cost(directory)
        jsonl = os.path.join(log_dir, 'maintenance.jsonl')
        with open(jsonl, 'rb') as handle:
            lines = handle.read().count(b'\n')
        log_bytes = os.path.getsize(jsonl)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    base, logged = statistics.median(without), statistics.median(with_log)
    results = tasks * hosts
    play_base = base - startup
    overhead = logged - base
    rows = [
        '| ansible-playbook without the callback | %.2f s | %s |' % (base, ', '.join('%.2f' % v for v in without)),
        '| ansible-playbook with maintenance_log | %.2f s | %s |' % (logged, ', '.join('%.2f' % v for v in with_log)),
        '| start-up (same inventory, empty play) | %.2f s | |' % startup,
    ]
    scale = ('' if (tasks, hosts) == (200, 20) else
             '_Reduced scale (%d tasks x %d hosts; BENCH_CALLBACK_TASKS / BENCH_CALLBACK_HOSTS): the issue\'s size is '
             '200 x 20, which takes ~2 min per run on a quiet machine._' % (tasks, hosts))
    return '\n'.join([
        '## maintenance_log callback',
        '',
        scale,
        '',
        'Setup: one playbook of %d tasks (debug, set_fact, assert, skipped debug in turn: the cheapest tasks there'
        % tasks,
        'are, so the callback\'s share is the largest it gets) on %d hosts with the local connection, default forks;'
        % hosts,
        '%d task results per run. Runs with and without the callback alternate; medians of %d repeats (wall time of'
        % (results, repeats),
        '`ansible-playbook`, the stdout callback showing only changes and failures in both).',
        '',
        '| run | median | runs (s) |',
        '| --- | ---: | --- |',
    ] + rows + [
        '',
        'Overhead: **%+.2f s = %+.1f %% of the run** (%+.1f %% of the run without its %.2f s start-up),'
        % (overhead, 100.0 * overhead / base, 100.0 * overhead / play_base if play_base > 0 else 0.0, startup),
        '%.2f ms per task result; the log got %d lines, %.1f KiB (%d bytes per line) for each run.'
        % (1000.0 * overhead / results, lines // repeats, log_bytes / repeats / 1024.0, log_bytes // max(lines, 1)),
        'In-process, the callback costs %.3f ms of CPU per task result (a health_probe-sized result: fields kept,'
        % (event_cost * 1000.0),
        'one locked append): %.2f s for this run\'s %d results, %.1f %% of the run without the callback.'
        % (event_cost * results, results, 100.0 * event_cost * results / base),
        ('The spread between repeats without the callback (%.2f s) is larger than the difference: on this machine'
         ' wall time cannot resolve the overhead, and the in-process figure is the one to read.'
         % (max(without) - min(without))) if max(without) - min(without) > abs(overhead) else
        'The difference is larger than the spread between repeats (%.2f s).' % (max(without) - min(without)),
        'Target: under 5 % of the run time.',
    ])


if __name__ == '__main__':
    print(run())

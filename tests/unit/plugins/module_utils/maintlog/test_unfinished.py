"""Runs that started and never ended are closed in both files, and only when they cannot still be going."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog import unfinished
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.files import JSONL_NAME, MARKDOWN_NAME
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.history import build_runs, read_history
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.record import json_line


def stamp(delta_hours=0.0):
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=delta_hours)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (moment.microsecond // 1000)


def dead_pid():
    child = subprocess.Popen(['true'])
    child.wait()
    return child.pid


def write(log_dir, events):
    with open(os.path.join(log_dir, JSONL_NAME), 'a', encoding='utf-8') as handle:
        handle.writelines(json_line(e) for e in events)


def run_events(run_id, pid, controller, hours_ago=1.0, ended=False):
    events = [dict(schema_version=2, event='run_start', run_id=run_id, time=stamp(hours_ago), playbook='/p/daily.yml',
                   user='ops', controller=controller, pid=pid, invocation_id=run_id),
              dict(schema_version=2, event='task', run_id=run_id, time=stamp(hours_ago - 0.01), host='db1', play='P',
                   task='Vacuum', module='engineroom.maintenance.pg_vacuum', status='changed', summary='vacuumed 3 tables'),
              dict(schema_version=2, event='task', run_id=run_id, time=stamp(hours_ago - 0.02), host='db1', play='P',
                   task='Snapshot', module='engineroom.maintenance.snapshot_archive', status='rescued', msg='disk full')]
    if ended:
        events.append(dict(schema_version=2, event='run_end', run_id=run_id, time=stamp(hours_ago - 0.03), status='ok',
                           hosts={}))
    return events


def test_dead_runs_are_closed_in_both_files_and_live_ones_left_alone(tmp_path):
    here = socket.gethostname()
    write(str(tmp_path), run_events('killed', dead_pid(), here)
          + run_events('alive', os.getpid(), here)
          + run_events('elsewhere-recent', 1, 'other-controller', hours_ago=2)
          + run_events('elsewhere-stale', 1, 'other-controller', hours_ago=30)
          + run_events('done', dead_pid(), here, ended=True))
    closed = unfinished.close_unfinished(str(tmp_path), 'test')
    assert [end['run_id'] for end in closed] == ['elsewhere-stale', 'killed']
    end = dict((e['run_id'], e) for e in closed)['killed']
    assert end['status'] == 'ended_without_summary' and end['closed_by'] == 'test'
    assert end['last_task']['task'] == 'Snapshot' and end['last_task']['status'] == 'rescued'
    assert end['hosts'] == dict(db1=dict(ok=1, changed=1, unreachable=0, failures=0, skipped=0, rescued=1, ignored=0,
                                         status='changed'))
    runs = dict((r.run_id, r) for r in build_runs(read_history(str(tmp_path)).events))
    assert runs['killed'].ended_without_summary and runs['killed'].status_of('db1') == 'ended_without_summary'
    assert runs['alive'].status is None and runs['elsewhere-recent'].status is None
    with open(os.path.join(str(tmp_path), MARKDOWN_NAME), encoding='utf-8') as handle:
        text = handle.read()
    assert text.count('\n## ') == 2 and 'daily.yml: ended without a summary (killed or fatal error)' in text
    assert '- last task: Snapshot on db1: rescued at ' in text and '- **RESCUED** Snapshot' in text
    assert '- vacuumed 3 tables' in text
    # closed once: a second pass finds nothing
    assert unfinished.close_unfinished(str(tmp_path), 'test') == []


def test_check_mode_closes_nothing(tmp_path):
    write(str(tmp_path), run_events('killed', dead_pid(), socket.gethostname()))
    before = os.path.getsize(os.path.join(str(tmp_path), JSONL_NAME))
    assert [e['run_id'] for e in unfinished.close_unfinished(str(tmp_path), 'test', check_mode=True)] == ['killed']
    assert os.path.getsize(os.path.join(str(tmp_path), JSONL_NAME)) == before
    assert not os.path.exists(os.path.join(str(tmp_path), MARKDOWN_NAME))


def test_a_reused_pid_is_not_the_run(tmp_path):
    start = unfinished.process_start(os.getpid())
    assert start is not None and unfinished.process_alive(os.getpid(), start)
    assert not unfinished.process_alive(os.getpid(), start + 1)
    assert not unfinished.process_alive(dead_pid())

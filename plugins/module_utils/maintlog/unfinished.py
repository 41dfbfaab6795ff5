# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs that started and never ended: found, and closed in both files of the log.

Ansible calls no callback when a playbook stops on a fatal error (a handler that
does not exist, a syntax error in an included file), and nothing runs when the
process is killed. Such a run has a ``run_start`` and no ``run_end``. It is closed
at the next opportunity - the callback at the same process's exit, the next run,
or ``maintenance_report`` - with a ``run_end`` of status ``ended_without_summary``
(per-host counts from the recorded tasks, the last task and its time) and a
section in ``MAINTENANCE_LOG.md``.

A run is only closed when it cannot still be going: its process (``pid`` on the
same ``controller``) is gone, or, for a run of another controller (or a log
written before runs recorded their pid), nothing was recorded for ``STALE_HOURS``.
"""

from __future__ import annotations

import datetime
import json
import os
import socket

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.files import (
    JSONL_NAME,
    MARKDOWN_NAME,
    append_record,
    history_paths,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.history import build_runs
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.markdown import MARKDOWN_HEADER, unfinished_section
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.record import (
    ENDED_WITHOUT_SUMMARY,
    SCHEMA_VERSION,
    counts_of,
    host_status,
    json_line,
)

STALE_HOURS = 24
REASON_KILLED = 'the run stopped without ansible\'s summary (killed, or a fatal error) and was closed later'
REASON_AT_EXIT = 'ansible stopped before its summary (a fatal error or an interrupt)'
# A line is one of these events when it holds this text (json_line writes ``"event": "run_start"``):
# the first pass reads only them, the second only the tasks of unfinished runs.
RUN_MARKERS = (b'"event": "run_start"', b'"event": "run_end"')


def process_start(pid):
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid; None elsewhere."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            return int(handle.read().rsplit(b')', 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid, started=None):
    """Whether process ``pid`` (started at ``started`` ticks, when known) still runs on this machine."""
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        pass
    except (OSError, ValueError, TypeError, OverflowError):
        return False
    return started is None or process_start(int(pid)) in (None, started)


def may_still_run(run, now, controller):
    """Whether an unfinished ``run`` could still be writing: its process lives, or it is recent and elsewhere."""
    start = run.start or {}
    if start.get('pid') is not None and start.get('controller') == controller:
        return process_alive(start['pid'], start.get('pid_start'))
    last = run.last_time or run.time
    return last is not None and now - last < datetime.timedelta(hours=STALE_HOURS)


def read_events(log_dir, wanted=None):
    """Events of the log; only run_start/run_end lines, plus the tasks of the ``wanted`` run ids when given."""
    events = []
    for path in history_paths(os.path.join(log_dir, JSONL_NAME)):
        with open(path, 'rb') as handle:
            for raw in handle:
                if wanted is None and not any(marker in raw for marker in RUN_MARKERS):
                    continue
                try:
                    event = json.loads(raw.decode('utf-8'))
                except (ValueError, UnicodeDecodeError):
                    continue
                if not isinstance(event, dict) or not event.get('run_id') or not event.get('event'):
                    continue
                if wanted is None or event['run_id'] in wanted:
                    events.append(event)
    return events


def unfinished_runs(log_dir, now=None, controller=None, exclude=()):
    """The runs of the log without a run_end that cannot still be going, oldest first, with their tasks."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    controller = controller or socket.gethostname()
    candidates = [run.run_id for run in build_runs(read_events(log_dir))
                  if run.start is not None and run.end is None and run.run_id not in exclude]
    if not candidates:
        return []
    runs = build_runs(read_events(log_dir, set(candidates)))
    return [run for run in runs if run.end is None and not may_still_run(run, now, controller)]


def end_record(run, reason, closed_by, stats=None, started_task=None):
    """The run_end written for ``run``: counts from ansible's ``stats`` (per host) when known, else from its tasks.

    ``started_task`` (``{task, time}``) is the task ansible had started last, when the run itself closes at its exit:
    the task it stopped in, which has no result.
    """
    if stats is None:
        stats = dict((host, counts_of(t['status'] for t in run.tasks if t['host'] == host))
                     for host in sorted(set(t['host'] for t in run.tasks)))
    hosts = dict((host, dict(counts, status=host_status(counts))) for host, counts in stats.items())
    last = run.last_task
    last_task = dict(host=last['host'], task=last.get('task'), status=last['status'],
                     time=iso_utc_ms(last['_time']) if last.get('_time') else None) if last else None
    if started_task and (last_task is None or (last_task['time'] or '') <= started_task['time']):
        last_task = dict(host='all hosts of the play', task=started_task['task'], status='started, no result',
                         time=started_task['time'])
    start = run.start or {}
    return dict(schema_version=SCHEMA_VERSION, event='run_end', run_id=run.run_id,
                time=iso_utc_ms(datetime.datetime.now(datetime.timezone.utc)),
                invocation_id=start.get('invocation_id'), playbook=run.playbook, status=ENDED_WITHOUT_SUMMARY,
                hosts=hosts, duration_ms=None, reason=reason, closed_by=closed_by,
                last_time=iso_utc_ms(run.last_time) if run.last_time else None, last_task=last_task)


def close_run(log_dir, run, reason, closed_by, stats=None, max_bytes=0, keep=0, started_task=None):
    """Write ``run``'s run_end and Markdown section; the caller holds the directory lock. Returns the run_end."""
    end = end_record(run, reason, closed_by, stats, started_task)
    append_record(os.path.join(log_dir, JSONL_NAME), json_line(end).encode('utf-8'), max_bytes, keep)
    append_record(os.path.join(log_dir, MARKDOWN_NAME), unfinished_section(run, end).encode('utf-8'),
                  max_bytes, keep, MARKDOWN_HEADER)
    return end


def close_unfinished(log_dir, closed_by, exclude=(), max_bytes=0, keep=0, check_mode=False):
    """Close every run of ``log_dir`` that ended without a summary; the caller holds the directory lock.

    Returns the run_end records written (or, in check mode, that would be).
    """
    closed = []
    for run in unfinished_runs(log_dir, exclude=exclude):
        if check_mode:
            closed.append(end_record(run, REASON_KILLED, closed_by))
        else:
            closed.append(close_run(log_dir, run, REASON_KILLED, closed_by, max_bytes=max_bytes, keep=keep))
    return closed

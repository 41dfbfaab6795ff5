# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the maintenance log back: events, runs and hosts.

The one reader of ``maintenance.jsonl`` (and its rotated copies) for the report,
the capacity review and the closing of runs that ended without a summary. A line
that is not a valid event (a torn write, a hand edit) is skipped and noted with
why, never fatal.
"""

from __future__ import annotations

import datetime
import json
import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import check_writable_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import parse_time
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.files import JSONL_NAME, LogError, history_paths
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.record import (
    ENDED_WITHOUT_SUMMARY,
    EVENTS,
    is_number,
    task_status,
)


class History:
    """The parsed log: events in file order, and the lines that could not be used, with why."""

    def __init__(self):
        self.events = []
        self.skipped = []
        self.files = []


def check_log_dir(log_dir, dest=None):
    """Raise LogError unless ``log_dir`` holds a maintenance log (and ``dest``'s directory is writable)."""
    if not os.path.isdir(log_dir):
        raise LogError('log_dir %s %s: point it at the maintenance_log callback\'s log_dir '
                       '(ENGINEROOM_MAINTENANCE_LOG_DIR or [callback_maintenance_log] log_dir in ansible.cfg); '
                       'nothing was written' % (log_dir, 'is not a directory' if os.path.exists(log_dir) else 'does not exist'))
    try:
        found = history_paths(os.path.join(log_dir, JSONL_NAME))
    except OSError as exc:
        raise LogError('log_dir %s cannot be read: %s: check its permissions for the user running Ansible '
                       'on the controller' % (log_dir, exc.strerror or exc)) from None
    if not found:
        raise LogError('no maintenance log in %s (%s missing): enable the engineroom.maintenance.maintenance_log '
                       'callback for the runs to report on, or point log_dir at its log_dir' % (log_dir, JSONL_NAME))
    if dest:
        problem = check_writable_dir(os.path.dirname(os.path.abspath(dest)))
        if problem:
            raise LogError('dest %s cannot be written: %s' % (dest, problem))


def load_history(log_dir, dest=None):
    """The history of ``log_dir`` for a module: LogError (with what to do) when the log cannot be read
    or ``dest``'s directory cannot be written."""
    check_log_dir(log_dir, dest)
    try:
        return read_history(log_dir)
    except OSError as exc:
        raise LogError('cannot read the maintenance log in %s: %s: check that its files are readable by the user '
                       'running Ansible on the controller' % (log_dir, exc.strerror or exc)) from None


def read_history(log_dir):
    """Read every file of the log (rotated ones first); skip, and note, what is not a valid event."""
    history = History()
    for path in history_paths(os.path.join(log_dir, JSONL_NAME)):
        history.files.append(path)
        with open(path, 'rb') as handle:
            for number, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                where = '%s line %d' % (os.path.basename(path), number)
                try:
                    record = json.loads(raw.decode('utf-8'))
                except (ValueError, UnicodeDecodeError) as exc:
                    history.skipped.append(dict(where=where, reason='not valid JSON (%s)' % exc))
                    continue
                if not isinstance(record, dict) or record.get('event') not in EVENTS or not record.get('run_id'):
                    history.skipped.append(dict(where=where, reason='not a maintenance log event '
                                                                    '(no known "event" and "run_id")'))
                    continue
                history.events.append(record)
    return history


class Run:
    """One playbook run as the log tells it."""

    def __init__(self, run_id):
        self.run_id = run_id
        self.start = None
        self.time = None
        self.last_time = None
        self.playbook = ''
        self.user = None
        self.controller = None
        self.pid = None
        self.check_mode = False
        self.awx_job_id = None
        self.status = None
        self.duration_ms = None
        self.host_status = {}
        self.host_stats = {}
        self.end = None
        self.tasks = []
        self._hosts = None

    @property
    def complete(self):
        return self.status is not None

    @property
    def ended_without_summary(self):
        return self.status == ENDED_WITHOUT_SUMMARY

    @property
    def last_task(self):
        return self.tasks[-1] if self.tasks else None

    def touches(self, host):
        """Whether ``host`` is in this run (its end's statistics or any of its tasks)."""
        if self._hosts is None or self._hosts[0] != len(self.tasks):
            self._hosts = (len(self.tasks), set(self.host_status) | set(t['host'] for t in self.tasks))
        return host in self._hosts[1]

    def status_of(self, host):
        """The host's status in this run: its end's; for a run without a summary (or still ``running``),
        ``failed``/``unreachable`` when a task said so, else ``ended_without_summary`` (or ``running``)."""
        if host in self.host_status and not self.ended_without_summary:
            return self.host_status[host]
        statuses = set(t.get('status') for t in self.tasks if t.get('host') == host)
        for status in ('unreachable', 'failed'):
            if status in statuses:
                return status
        return ENDED_WITHOUT_SUMMARY if self.ended_without_summary else 'running'

    def add(self, event, when):
        """Take one event of this run into account."""
        if when is not None:
            if self.time is None or when < self.time:
                self.time = when
            if self.last_time is None or when > self.last_time:
                self.last_time = when
        kind = event['event']
        if kind == 'run_start':
            self.start = event
            self.playbook = str(event.get('playbook', ''))
            self.user, self.controller, self.pid = event.get('user'), event.get('controller'), event.get('pid')
            self.check_mode, self.awx_job_id = bool(event.get('check_mode')), event.get('awx_job_id')
        elif kind == 'task' and isinstance(event.get('host'), str):
            self.tasks.append(dict(event, status=task_status(event), _time=when))
        elif kind == 'run_end':
            self.end = event
            self.status = str(event.get('status'))
            self.duration_ms = event.get('duration_ms') if is_number(event.get('duration_ms')) else None
            hosts = event.get('hosts') if isinstance(event.get('hosts'), dict) else {}
            self.host_stats = dict((h, s) for h, s in hosts.items() if isinstance(s, dict))
            self.host_status = dict((h, str(s.get('status'))) for h, s in self.host_stats.items())
            self._hosts = None


def event_time(text):
    """``parse_time`` with a fast path for the callback's own ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (a year of a fleet
    is 100 000 stamps; strptime would be most of the report's time)."""
    if isinstance(text, str) and len(text) == 24 and text[10] == 'T' and text[19] == '.' and text[23] == 'Z':
        try:
            return datetime.datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                                     int(text[17:19]), int(text[20:23]) * 1000, tzinfo=datetime.timezone.utc)
        except ValueError:
            pass
    return parse_time(text)


def build_runs(events):
    """Group events by run, oldest run first."""
    runs = {}
    for event in events:
        run = runs.get(event['run_id'])
        if run is None:
            run = runs[event['run_id']] = Run(event['run_id'])
        run.add(event, event_time(event.get('time')))
    ordered = [r for r in runs.values() if r.time is not None]
    ordered.sort(key=lambda r: r.time)
    return ordered


def hosts_of(runs):
    names = set()
    for run in runs:
        names.update(run.host_status)
        names.update(t['host'] for t in run.tasks)
    return sorted(names)

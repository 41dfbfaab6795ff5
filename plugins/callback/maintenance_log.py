# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: maintenance_log
type: notification
short_description: Keep the maintenance log of every playbook run (JSON Lines and Markdown)
version_added: 0.1.0
description:
  - Records what each C(ansible-playbook) run did, in two append-only files in O(log_dir).
  - Each playbook is one run; the playbooks of one C(ansible-playbook) call share an invocation id.
  - C(maintenance.jsonl) holds one JSON object per event - the run's start (run id, playbook,
    inventory, user, controller, ansible-core version, the B(names) of the extra vars, the AWX job id
    when there is one), one per task result per host (status, module, duration, and the module's
    C(summary), C(metrics) and C(msg)), and the run's end (per-host statistics, overall status,
    duration). The report (C(playbooks/report.yml)) reads it.
  - C(MAINTENANCE_LOG.md) gets one section per run in operator language - date, playbook, who,
    hosts and, per host, failures first, then the one-line summaries of what was done.
  - The collection's modules return C(summary) and C(metrics); the callback writes them as they are,
    with no per-module code. Other modules' tasks are recorded with their module, status and C(msg).
  - C(no_log) is absolute - a task with C(no_log) is recorded with its name, module, status and
    duration only, and values of extra vars are never recorded.
  - Concurrent runs writing into one O(log_dir) hold a file lock while appending, so records never
    interleave; both files rotate by size (O(max_bytes), O(keep)).
  - The callback never changes a run's outcome. When O(log_dir) cannot be written it prints one
    warning and the run goes on unrecorded.
  - Enable it with C(callbacks_enabled = engineroom.maintenance.maintenance_log) in C(ansible.cfg)
    or E(ANSIBLE_CALLBACKS_ENABLED). It is not a stdout callback, so it works next to AWX's own.
author:
  - engineroom maintainers (@engineroom)
requirements:
  - enabled in C(callbacks_enabled)
options:
  log_dir:
    description:
      - Directory of C(maintenance.jsonl) and C(MAINTENANCE_LOG.md); created (mode 0755) when missing.
      - Defaults to C(maintenance-log/) in the directory of the first playbook of the run.
      - Under AWX set it to a mounted persistent path, since the execution environment's files
        vanish with the job.
    type: path
    env:
      - name: ENGINEROOM_MAINTENANCE_LOG_DIR
    ini:
      - section: callback_maintenance_log
        key: log_dir
  max_bytes:
    description:
      - Rotate a log file before it would grow beyond this many bytes; V(0) never rotates.
    type: int
    default: 10485760
    env:
      - name: ENGINEROOM_MAINTENANCE_LOG_MAX_BYTES
    ini:
      - section: callback_maintenance_log
        key: max_bytes
  keep:
    description:
      - How many rotated copies (C(maintenance.jsonl.1) ... C(maintenance.jsonl.N)) to keep of each file.
    type: int
    default: 5
    env:
      - name: ENGINEROOM_MAINTENANCE_LOG_KEEP
    ini:
      - section: callback_maintenance_log
        key: keep
'''

import atexit
import datetime
import functools
import getpass
import os
import socket
import sys
import time
import uuid

from ansible import context
from ansible.module_utils.ansible_release import __version__ as ANSIBLE_VERSION
from ansible.plugins.callback import CallbackBase
from ansible.utils.vars import load_extra_vars

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import check_writable_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.files import (
    JSONL_NAME,
    MARKDOWN_NAME,
    DirectoryLock,
    append_record,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.history import build_runs
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.markdown import MARKDOWN_HEADER, HostLines, run_section
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.record import (
    FAILURE_STATUSES,
    SCHEMA_VERSION,
    host_status,
    json_line,
    overall_status,
    record_fields,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.unfinished import (
    REASON_AT_EXIT,
    close_run,
    close_unfinished,
    process_start,
    read_events,
)

AWX_JOB_ID_VARS = ('awx_job_id', 'tower_job_id')
AWX_USER_VARS = ('awx_user_name', 'tower_user_name')


def guarded(method):
    """Never let the log break a run: the first error disables the callback with one warning."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.disabled:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            self.disable('%s: %s' % (type(exc).__name__, exc))
            return None
    return wrapper


def dispatching_stats():
    """Ansible's AggregateStats, from the TaskQueueManager whose ``send_callback`` is calling us.

    Ansible counts a failure as ``rescued``, ``ignored`` or ``failures`` just before it sends
    ``v2_runner_on_failed``; reading its counters is the only way to match the recap exactly.
    None when the caller is not a TaskQueueManager (then ``ignore_errors`` decides alone).
    """
    frame = sys._getframe(1)  # pylint: disable=protected-access
    for _depth in range(12):
        if frame is None:
            return None
        stats = getattr(frame.f_locals.get('self'), '_stats', None)
        if frame.f_code.co_name == 'send_callback' and hasattr(stats, 'summarize'):
            return stats
        frame = frame.f_back
    return None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'engineroom.maintenance.maintenance_log'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.disabled = False
        self.log_dir = None
        self.lock = None
        self.invocation_id = None
        self.run_id = None
        self.run_ended = False
        self.playbook = None
        self.user = None
        self.run_started = None
        self.play = None
        self.stats = None
        self.started_task = None
        self.pid = os.getpid()
        self.task_starts = {}
        self.host_lines = HostLines()
        self.counted = {}
        self.failure_counts = {}

    # --- plumbing --------------------------------------------------------------------
    def disable(self, reason):
        self.disabled = True
        self._display.warning('engineroom.maintenance.maintenance_log: this run is not recorded in %s: %s. '
                              'The playbook itself is not affected; set log_dir ([callback_maintenance_log] in '
                              'ansible.cfg or ENGINEROOM_MAINTENANCE_LOG_DIR) to a writable directory.'
                              % (self.log_dir or 'the maintenance log', reason))

    def open_log_dir(self, playbook_path):
        configured = self.get_option('log_dir')
        self.log_dir = os.path.abspath(configured or os.path.join(os.path.dirname(os.path.abspath(playbook_path)),
                                                                  'maintenance-log'))
        for name in ('max_bytes', 'keep'):
            if self.get_option(name) < 0:
                raise ValueError('%s must not be negative (got %s)' % (name, self.get_option(name)))
        try:
            os.makedirs(self.log_dir, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise OSError('cannot create the directory: %s' % (exc.strerror or exc)) from None
        problem = check_writable_dir(self.log_dir)
        if problem:
            raise OSError(problem)
        self.lock = DirectoryLock(self.log_dir)

    def append(self, name, text, header=b''):
        with self.lock:
            append_record(os.path.join(self.log_dir, name), text.encode('utf-8'),
                          self.get_option('max_bytes'), self.get_option('keep'), header)

    def emit(self, event, **fields):
        record = dict(schema_version=SCHEMA_VERSION, event=event, run_id=self.run_id,
                      time=iso_utc_ms(datetime.datetime.now(datetime.timezone.utc)))
        record.update(fields)
        self.append(JSONL_NAME, json_line(record))

    # --- run ------------------------------------------------------------------------
    @guarded
    def v2_playbook_on_start(self, playbook):
        """Each playbook of an ansible-playbook call is one run; the call's ``invocation_id`` links them."""
        path = getattr(playbook, '_file_name', None) or 'playbook'
        now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
        self.stats = self.stats or dispatching_stats()
        first = self.invocation_id is None
        if first:
            self.invocation_id = '%s-%s' % (now, uuid.uuid4().hex[:8])
            self.open_log_dir(path)
        self.run_id = '%s-%s' % (now, uuid.uuid4().hex[:8])
        self.run_ended = False
        if first:
            # Earlier runs that never ended (killed, fatal error) get their end and Markdown section now.
            with self.lock:
                close_unfinished(self.log_dir, 'run %s at its start' % self.run_id,
                                 max_bytes=self.get_option('max_bytes'), keep=self.get_option('keep'))
            atexit.register(self.at_exit)
        self.playbook, self.run_started, self.host_lines = path, time.monotonic(), HostLines()
        try:
            extra_vars = load_extra_vars(playbook._loader)
        except Exception:  # pylint: disable=broad-except
            extra_vars = {}  # ansible-playbook itself reports unreadable extra vars
        awx_job_id = next((extra_vars[k] for k in AWX_JOB_ID_VARS if extra_vars.get(k) is not None),
                          os.environ.get('JOB_ID') or None)
        awx_user = next((extra_vars[k] for k in AWX_USER_VARS if extra_vars.get(k)), None)
        self.user = str(awx_user) if awx_user else self.os_user()
        cli = context.CLIARGS
        self.emit('run_start', invocation_id=self.invocation_id, playbook=path,
                  inventory=[str(source) for source in (cli.get('inventory') or ())],
                  user=self.user, controller=socket.gethostname(),
                  ansible_version=ANSIBLE_VERSION, check_mode=bool(cli.get('check')),
                  limit=cli.get('subset') or None, tags=[t for t in (cli.get('tags') or ()) if t != 'all'],
                  extra_vars=sorted(str(name) for name in extra_vars),
                  awx_job_id=str(awx_job_id) if awx_job_id is not None else None,
                  log_dir=self.log_dir, pid=self.pid, pid_start=process_start(self.pid))

    @staticmethod
    def os_user():
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return str(os.getuid())

    @guarded
    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name()

    @guarded
    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started_task = dict(task=task.get_name(), time=iso_utc_ms(datetime.datetime.now(datetime.timezone.utc)))

    @guarded
    def v2_playbook_on_handler_task_start(self, task):
        self.started_task = dict(task=task.get_name(), time=iso_utc_ms(datetime.datetime.now(datetime.timezone.utc)))

    @guarded
    def v2_runner_on_start(self, host, task):
        self.task_starts[(host.name, task._uuid)] = time.monotonic()

    @guarded
    def v2_runner_on_ok(self, result):
        self.record(result, 'changed' if result.result.get('changed') else 'ok')

    @guarded
    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.record(result, self.failure_status(result.host.name, 'failed', bool(ignore_errors)))

    @guarded
    def v2_runner_on_skipped(self, result):
        self.record(result, 'skipped')

    @guarded
    def v2_runner_on_unreachable(self, result):
        self.record(result, self.failure_status(result.host.name, 'unreachable',
                                                bool(getattr(result.task, 'ignore_unreachable', False))))

    def failure_status(self, host, status, ignored):
        """``rescued``, ``ignored`` or ``status``: what ansible's own counters made of this failure."""
        stats = self.stats or dispatching_stats()
        if stats is None:
            return 'ignored' if ignored else status
        counts = stats.summarize(host)
        before = self.failure_counts.get(host, {})
        self.failure_counts[host] = counts
        for key in ('rescued', 'ignored'):
            if counts.get(key, 0) > before.get(key, 0):
                return key
        return status

    def record(self, result, status):
        if self.run_id is None:
            return  # not a playbook run (an ad-hoc command)
        task, host = result.task, result.host.name
        started = self.task_starts.pop((host, task._uuid), None)
        hidden = bool(task.no_log) or 'censored' in result.result or bool(result.result.get('_ansible_no_log'))
        module = task.resolved_action or task.action
        fields = dict(host=host, play=self.play, task=task.get_name(), module=module, status=status,
                      duration_ms=round((time.monotonic() - started) * 1000.0, 1) if started else None)
        if hidden:
            fields['no_log'] = True
        elif status != 'skipped':
            fields.update(record_fields(result.result, failed=status in FAILURE_STATUSES))
        self.emit('task', **fields)
        self.host_lines.add(host, status, fields)

    def run_counts(self, stats):
        """Per-host counts of this run alone: ansible's stats add up over the call, so the difference."""
        hosts = {}
        for host in sorted(stats.processed):
            total = stats.summarize(host)
            before = self.counted.get(host, {})
            delta = dict((key, value - before.get(key, 0)) for key, value in total.items())
            self.counted[host] = total
            if any(delta.values()):
                hosts[host] = delta
        return hosts

    @guarded
    def v2_playbook_on_stats(self, stats):
        """End of one playbook."""
        if self.run_id is None:
            return
        hosts = dict((host, dict(counts, status=host_status(counts))) for host, counts in self.run_counts(stats).items())
        overall = overall_status([h['status'] for h in hosts.values()])
        duration_ms = round((time.monotonic() - self.run_started) * 1000.0, 1)
        self.emit('run_end', invocation_id=self.invocation_id, playbook=self.playbook, status=overall, hosts=hosts,
                  duration_ms=duration_ms)
        self.run_ended = True
        self.append(MARKDOWN_NAME, self.markdown(hosts, overall, duration_ms), header=MARKDOWN_HEADER)

    def markdown(self, hosts, overall, duration_ms):
        started = datetime.datetime.strptime(self.run_id[:16], '%Y%m%dT%H%M%SZ')
        run = dict(run_id=self.run_id, playbook=self.playbook, user=self.user, controller=socket.gethostname(),
                   check_mode=bool(context.CLIARGS.get('check')))
        return run_section(started, run, hosts, self.host_lines, overall, duration_ms)

    @guarded
    def at_exit(self):
        """ansible-playbook is exiting: a run without its summary (a fatal error, an interrupt) is closed now."""
        if self.run_id is None or self.run_ended or os.getpid() != self.pid:
            return
        runs = build_runs(read_events(self.log_dir, {self.run_id}))
        if not runs:
            return
        stats = self.run_counts(self.stats) if self.stats is not None else None
        with self.lock:
            close_run(self.log_dir, runs[0], REASON_AT_EXIT, 'the run itself at its exit', stats,
                      self.get_option('max_bytes'), self.get_option('keep'), self.started_task)
        self.run_ended = True

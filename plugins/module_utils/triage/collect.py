# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an emergency triage gathers on one host, each part within what is left of one time bound.

Every section is collected into memory (nothing is written while gathering,
so a full disk does not stop it), redacted, and recorded with its status:
``ok``, ``failed`` with the reason (database down, program missing), or
``skipped`` (not configured, or the time bound ran out first).
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import subprocess
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms, format_argv

TAIL_BYTES = 4 * 1024 * 1024


class CollectError(Exception):
    """One section could not be collected; the message says why."""


class Deadline:
    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())


def _jsonable(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return str(value)


class Collector:
    """Runs the sections one after the other and keeps their files, statuses and commands."""

    def __init__(self, redactor, deadline, step_timeout_s=15):
        self.redactor = redactor
        self.deadline = deadline
        self.step_timeout_s = step_timeout_s
        self.files = []
        self.sections = []
        self.commands = []

    def timeout(self):
        return max(0.5, min(self.step_timeout_s, self.deadline.left()))

    def add(self, name, content):
        """Store ``content`` (text, or data stored as JSON) as member ``name``, redacted."""
        if isinstance(content, str):
            data = self.redactor.text(content)
        else:
            data = json.dumps(self.redactor.data(content), indent=2, sort_keys=True, default=_jsonable)
        self.files.append((name, data.encode('utf-8')))
        return len(self.files[-1][1])

    def section(self, name, func, *args):
        """Run one collector: ``func(self, *args)`` adds its files; failures become the section's reason."""
        started = time.monotonic()
        entry = dict(name=name, status='ok', reason=None, files=[])
        if self.deadline.left() <= 0:
            entry.update(status='skipped', reason='the time bound of %s s ran out first' % self.deadline.seconds)
        else:
            before = len(self.files)
            try:
                note = func(self, *args)
                if note:
                    entry.update(status='skipped', reason=note)
            except CollectError as exc:
                entry.update(status='failed', reason=self.redactor.text(str(exc)))
            except Exception as exc:  # pylint: disable=broad-except
                entry.update(status='failed', reason=self.redactor.text('%s: %s' % (type(exc).__name__, exc)))
            entry['files'] = [file_name for file_name, dummy in self.files[before:]]
        entry['duration_ms'] = elapsed_ms(started)
        self.sections.append(entry)
        return entry

    def run(self, argv, ok_codes=(0,)):
        """Run a program (no shell) within the time left; its stdout as text."""
        self.commands.append(format_argv(argv))
        try:
            completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=self.timeout(),
                                       check=False)
        except OSError as exc:
            raise CollectError('cannot run %s: %s' % (argv[0], exc.strerror or exc)) from exc
        except subprocess.TimeoutExpired as exc:
            raise CollectError('%s did not finish within %.1f s' % (argv[0], exc.timeout)) from exc
        if completed.returncode not in ok_codes:
            error = completed.stderr.decode('utf-8', 'replace').strip()
            raise CollectError('%s failed (exit code %d): %s' % (argv[0], completed.returncode, error[-500:]))
        return completed.stdout.decode('utf-8', 'replace')


def read_tail(path, limit=TAIL_BYTES):
    """The last ``limit`` bytes of a file as text, from a line start."""
    with open(path, 'rb') as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - limit))
        data = handle.read()
    if size > limit and b'\n' in data:
        data = data.split(b'\n', 1)[1]
    return data.decode('utf-8', 'replace')


def collect_system(collector):
    """Processes, load, memory, disk and inodes, listening sockets."""
    collector.add('system/processes.txt', collector.run(
        ['ps', '-eo', 'pid,ppid,user,stat,pcpu,pmem,rss,etime,args', '--sort=-pcpu']))
    with open('/proc/loadavg') as handle:
        load = handle.read()
    with open('/proc/uptime') as handle:
        uptime = handle.read()
    collector.add('system/load.txt', 'loadavg: %suptime_s: %s' % (load, uptime))
    with open('/proc/meminfo') as handle:
        collector.add('system/memory.txt', handle.read())
    collector.add('system/disk.txt', collector.run(['df', '-P', '-T'], ok_codes=(0, 1)) + '\n'
                  + collector.run(['df', '-P', '-i'], ok_codes=(0, 1)))
    collector.add('system/sockets.txt', collector.run(['ss', '-l', '-t', '-u', '-n', '-p']))


def matching_lines(path, patterns, count):
    lowered = [p.lower() for p in patterns]
    lines = [line for line in read_tail(path).splitlines() if any(p in line.lower() for p in lowered)]
    return lines[-count:]


def collect_logs(collector, paths, patterns, count):
    """The last ``count`` lines matching ``patterns`` of every configured log."""
    found = sorted(set(path for pattern in paths for path in glob.glob(pattern) if os.path.isfile(path)))
    if not found:
        return 'no log file matches %s' % ', '.join(paths) if paths else 'no logs configured'
    report = {}
    for path in found:
        try:
            report[path] = matching_lines(path, patterns, count)
        except OSError as exc:
            report[path] = ['(cannot read: %s)' % (exc.strerror or exc)]
    collector.add('logs/errors.json', report)
    return None


def collect_maintenance_log(collector, path, count):
    if not path or not os.path.exists(path):
        return 'no maintenance log at %s' % (path or '(not configured)')
    lines = read_tail(path, 1024 * 1024).splitlines()[-count:]
    collector.add('maintenance/maintenance.jsonl', '\n'.join(lines) + '\n')
    return None


def collect_lock(collector, path):
    if not path:
        return 'no lock file configured'
    if not os.path.exists(path):
        collector.add('maintenance/lock.json', dict(path=path, present=False))
        return None
    with open(path, 'rb') as handle:
        text = handle.read(1024 * 1024).decode('utf-8', 'replace')
    try:
        record = json.loads(text)
    except ValueError:
        record = dict(unparsed=text)
    collector.add('maintenance/lock.json', dict(path=path, present=True, record=record))
    return None


def collect_journal(collector, units, count):
    from ansible_collections.engineroom.maintenance.plugins.module_utils.logs import journald
    reader = journald.JournalReader(units=units, timeout=collector.timeout())
    try:
        entries = journald.recent_errors(reader, lines=count)
    except journald.JournalError as exc:
        raise CollectError(str(exc)) from exc
    finally:
        collector.commands.extend(reader.commands)
    keep = ('__REALTIME_TIMESTAMP', 'PRIORITY', '_SYSTEMD_UNIT', 'SYSLOG_IDENTIFIER', 'MESSAGE')
    collector.add('logs/journal.json', [dict((k, e.get(k)) for k in keep) for e in entries])
    return None

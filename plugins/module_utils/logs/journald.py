# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""journald as a log source: the entries written since the last review, counted by PRIORITY.

``journalctl -o json --after-cursor C`` hands back every entry after the one
the last review stopped at. The cursor is kept in the caller's state (a dict,
stored in the error review's state file) together with the journal's
sequence-number id (the ``s=`` part of every cursor, one per journal file
stream), because journalctl does not refuse a cursor it does not know: given
a cursor from another machine's journal it silently seeks by the cursor's
timestamp and reads on from there. A cursor whose ``s=`` id none of the
journal's files carry is therefore from another machine (or a journal since
deleted); the review then starts again from ``rebuild_window_s`` ago and says
so (``cursor_rebuilt``, ``cursor_note``).
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess

PRIORITY_NAMES = ('emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug')
DEFAULT_REBUILD_WINDOW_S = 86400
_NUMBERS = re.compile(r'0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+')
_SEQNUM_ID = re.compile(r'^Sequential number ID:\s*([0-9a-f]+)\s*$', re.M)


class JournalError(Exception):
    """journalctl is missing or refused the request, phrased for an operator."""


def cursor_seqnum_id(cursor):
    """The ``s=`` part of a journal cursor, or None when ``cursor`` is not a cursor."""
    for part in (cursor or '').split(';'):
        if part.startswith('s='):
            return part[2:]
    return None


def priority_name(value):
    """``'3'`` -> ``'err'``; anything else (missing, out of range) -> ``'none'``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 'none'
    return PRIORITY_NAMES[number] if 0 <= number < len(PRIORITY_NAMES) else 'none'


def normalise(message):
    """A message with its numbers and ids replaced, so repeats of one event group together."""
    return _NUMBERS.sub('N', message if isinstance(message, str) else repr(message)).strip()[:300]


class JournalReader:
    """Runs journalctl on the local journal, on journal files, or on a journal directory."""

    def __init__(self, journalctl='journalctl', files=None, directory=None, units=None, timeout=60):
        self.journalctl = journalctl
        self.files = list(files or [])
        self.directory = directory
        self.units = list(units or [])
        self.timeout = timeout
        self.commands = []

    def _source(self):
        argv = [self.journalctl, '--no-pager', '-q']
        for path in self.files:
            argv.append('--file=%s' % path)
        if self.directory:
            argv.append('--directory=%s' % self.directory)
        return argv

    def _run(self, argv):
        self.commands.append(' '.join(argv))
        try:
            completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=self.timeout,
                                       check=False)
        except OSError as exc:
            raise JournalError('cannot run %s: %s (install systemd, or set journalctl_path)'
                               % (self.journalctl, exc.strerror or exc)) from exc
        except subprocess.TimeoutExpired as exc:
            raise JournalError('journalctl did not finish within %s s' % self.timeout) from exc
        if completed.returncode != 0:
            error = completed.stderr.decode('utf-8', 'replace').strip() or 'exit code %d' % completed.returncode
            raise JournalError('journalctl failed: %s' % error.splitlines()[-1])
        return completed.stdout

    def seqnum_ids(self):
        """The sequence-number ids of every file of the journal (one per file stream)."""
        header = self._run(self._source() + ['--header']).decode('utf-8', 'replace')
        return set(_SEQNUM_ID.findall(header))

    def entries(self, after_cursor=None, since=None, max_priority=None, lines=None):
        """The entries after ``after_cursor`` (or since ``since``, a UTC datetime), oldest first."""
        argv = self._source() + ['-o', 'json', '--output-fields=MESSAGE,PRIORITY,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,'
                                 '_HOSTNAME,_MACHINE_ID']
        for unit in self.units:
            argv.append('--unit=%s' % unit)
        if max_priority is not None:
            argv.append('--priority=%d' % max_priority)
        if after_cursor:
            argv.append('--after-cursor=%s' % after_cursor)
        elif since is not None:
            argv.append('--since=%s' % since.astimezone(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC'))
        if lines:
            argv.append('--lines=%d' % lines)
        entries = []
        for line in self._run(argv).splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries


def _check_cursor(reader, cursor):
    """Return (usable cursor or None, note or None)."""
    if not cursor:
        return None, None
    wanted = cursor_seqnum_id(cursor)
    if wanted is None:
        return None, 'the stored journal cursor %r is not a cursor; read again from the rebuild window' % cursor[:80]
    if wanted not in reader.seqnum_ids():
        return None, ('the stored journal cursor belongs to another journal (sequence id %s, from another machine or '
                      'a deleted journal); read again from the rebuild window' % wanted)
    return cursor, None


def _count(entries, max_priority, top_n):
    by_priority = dict((name, 0) for name in PRIORITY_NAMES + ('none',))
    groups = {}
    for entry in entries:
        name = priority_name(entry.get('PRIORITY'))
        by_priority[name] += 1
        if name == 'none' or PRIORITY_NAMES.index(name) > max_priority:
            continue
        unit = entry.get('_SYSTEMD_UNIT') or entry.get('SYSLOG_IDENTIFIER') or ''
        key = (unit, normalise(entry.get('MESSAGE', '')))
        group = groups.setdefault(key, dict(unit=unit, message=key[1], priority=name, count=0))
        group['count'] += 1
    top = sorted(groups.values(), key=lambda g: (-g['count'], g['unit'], g['message']))[:top_n]
    return by_priority, top


def review(reader, state, max_priority=3, top_n=10, rebuild_window_s=DEFAULT_REBUILD_WINDOW_S, now=None):
    """Read the entries since ``state['cursor']``, count them, and return (result, new state).

    ``state`` is the dict a previous review returned (empty the first time);
    the new state is to be saved only once the caller's run has succeeded.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cursor, note = _check_cursor(reader, (state or {}).get('cursor'))
    since = None if cursor else now - datetime.timedelta(seconds=rebuild_window_s)
    entries = reader.entries(after_cursor=cursor, since=since)
    by_priority, top = _count(entries, max_priority, top_n)
    last_cursor = entries[-1]['__CURSOR'] if entries and '__CURSOR' in entries[-1] else (cursor or None)
    new_state = dict(cursor=last_cursor, seqnum_id=cursor_seqnum_id(last_cursor))
    errors = sum(by_priority[name] for name in PRIORITY_NAMES[:max_priority + 1])
    result = dict(entries_read=len(entries), errors=errors, by_priority=by_priority, top=top,
                  cursor_rebuilt=bool(note), cursor_note=note, started_from='cursor' if cursor else 'window',
                  units=list(reader.units))
    return result, new_state


def review_units(units, state, directory=None, max_priority=3, top_n=10):
    """The error review of ``units`` in the local journal (or the journal ``directory``): (result, new state, commands)."""
    reader = JournalReader(directory=directory, units=units)
    result, new_state = review(reader, state, max_priority=max_priority, top_n=top_n)
    return result, new_state, reader.commands


def recent_errors(reader, lines=50, max_priority=3):
    """The last ``lines`` entries at ``max_priority`` or worse, oldest first (for triage)."""
    return reader.entries(max_priority=max_priority, lines=lines)

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""logrotate's own reading of its configuration: ask the installed logrotate, never guess.

``logrotate -d`` (debug: nothing is rotated, no script runs) with a private,
empty state file prints, for every log set it accepted, the pattern, the
rotation criterion (interval, or size in bytes: the built-in default is
1 MiB), the rotate count, olddir, minsize/maxsize and every log the pattern
matched; and for every stanza or file it rejected, the reason with file and
line. A second run with ``-f`` (still debug) prints what a rotation would do
to each log: the name of the new version (olddir, dateext/dateformat,
extension), copy+truncate or rename, and whether/when it compresses. That is
the truth the audit compares with the policy: include (nested), global scope,
taboo extensions, size forms and interval-vs-size precedence all come from
logrotate itself, in the version installed on the host.

What the debug output does not say (maxage; compress for a log that would
not be rotated, e.g. empty with notifempty) comes from the collection's own
parser (:mod:`logrotate_config`) for the stanza logrotate accepted.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shutil
import subprocess
import tempfile

LOGROTATE_PATHS = ('/usr/sbin/logrotate', '/sbin/logrotate', '/usr/bin/logrotate')
LOGROTATE_TIMEOUT_S = 60

_SET_RE = re.compile(r'^rotating pattern: (?P<pattern>.*?) ?(?P<criterion>after (?P<days>\d+) days|hourly|weekly|monthly|yearly'
                     r'|(?P<bytes>\d+) bytes|forced from command line) \((?:(?P<rotate>-?\d+) rotations|no old logs will be kept)\)$')
_ERROR_RE = re.compile(r'^error: (?P<source>[^:]+):(?P<line>\d+) (?P<reason>.*)$')
_REJECTED_STANZA_RE = re.compile(r'^error: found error in (?P<pattern>.*?) ?, skipping$')
_REJECTED_FILE_RE = re.compile(r'^error: found error in file (?P<source>.*), skipping$')
_MINSIZE_RE = re.compile(r'only log files >= (\d+) bytes are rotated')
_MAXSIZE_RE = re.compile(r'log files >= (\d+) are rotated earlier')
_EXISTS_RE = re.compile(r'^error: destination (.*) already exists, skipping rotation$')
_OLDDIR_RE = re.compile(r'^olddir is (.*?), (?:empty log files|only log|log files|old logs)')


class LogrotateMissing(Exception):
    """No logrotate program on this host."""


def find_logrotate(explicit=None):
    """Path of the installed logrotate (``explicit`` when given and executable), or None."""
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    found = shutil.which('logrotate')
    if found:
        return found
    for candidate in LOGROTATE_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def config_arguments(conf_path, conf_dir):
    """The configuration arguments logrotate should read: the main file, plus the directory when it does not include it."""
    arguments = [conf_path] if conf_path and os.path.isfile(conf_path) else []
    if conf_dir and os.path.isdir(conf_dir) and not _includes(conf_path, conf_dir):
        arguments.append(conf_dir)
    return arguments


def _includes(conf_path, conf_dir):
    if not conf_path or not os.path.isfile(conf_path):
        return False
    target = os.path.realpath(conf_dir)
    try:
        with open(conf_path, encoding='utf-8', errors='replace') as handle:
            for line in handle:
                words = line.split()
                if len(words) == 2 and words[0] == 'include' and os.path.realpath(words[1]) == target:
                    return True
    except OSError:
        return False
    return False


def run_debug(logrotate, arguments, force=False):
    """logrotate's debug output (stdout and stderr together) for ``arguments``, with a private empty state file."""
    with tempfile.TemporaryDirectory(prefix='logrotate-reading-') as private:
        argv = [logrotate, '-d'] + (['-f'] if force else []) + ['-s', os.path.join(private, 'status')] + list(arguments)
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=LOGROTATE_TIMEOUT_S, check=False, cwd=private)
    return completed.stdout.decode('utf-8', 'replace')


def parse_debug(text):
    """(log sets, rejected, messages) from ``logrotate -d`` output.

    A log set: pattern, criterion, size_bytes (size criterion), rotate, olddir,
    ifempty, minsize, maxsize, logs (paths it considered) and plans (path ->
    what ``-f`` would do). Rejected: dict(kind='stanza'|'file', pattern or
    source, reasons). Messages: every error line, in order.
    """
    sets, rejected, messages, pending = [], [], [], []
    current, log = None, None
    for line in _logical_lines(text):
        match = _SET_RE.match(line)
        if match:
            current, log = _new_set(match), None
            sets.append(current)
            continue
        exists = _EXISTS_RE.match(line)
        if exists and log is not None:
            current['plans'][log]['steps'].append('renaming %s to %s' % (log, exists.group(1)))  # its name, had it room
            continue
        if line.startswith('error: '):
            log = None
            _read_error(line, pending, rejected, messages)
            continue
        if line.startswith('removing last ') and pending:
            # a stanza dropped after an error that names no pattern (e.g. a missing olddir)
            rejected.append(dict(kind='file', source=pending[0][0], reasons=[text for dummy, text in pending]))
            del pending[:]
            continue
        if current is None:
            continue
        if current.get('_flags_pending'):
            _read_flags(current, line)
            continue
        if line.startswith('considering log '):
            log = line[len('considering log '):]
            current['logs'].append(log)
            current['plans'][log] = dict(steps=[])
        elif line.startswith('log ') and line.endswith('does not exist -- skipping'):
            missing = line[len('log '):-len(' does not exist -- skipping')]
            if missing in current['logs']:
                current['logs'].remove(missing)
        elif line.startswith('rotating log ') and line[len('rotating log '):].split(', ', 1)[0] in current['plans']:
            log = line[len('rotating log '):].split(', ', 1)[0]  # what follows is this log's rotation
        elif log is not None:
            current['plans'][log]['steps'].append(line)
    for log_set in sets:
        log_set.pop('_flags_pending', None)
        for path, plan in log_set['plans'].items():
            log_set['plans'][path] = _plan(path, plan['steps'])
    return sets, rejected, messages


def _logical_lines(text):
    """The stripped lines of ``text``, a "rotating pattern:" header written over several lines joined into one."""
    partial = None  # a pattern written over several lines is printed over several lines
    for raw in text.splitlines():
        line = raw.strip()
        if partial is not None:
            line = partial = partial + ' ' + line
            if not _SET_RE.match(line):
                continue
        elif line.startswith('rotating pattern: ') and not _SET_RE.match(line):
            partial = line
            continue
        partial = None
        yield line
    if partial is not None:
        yield partial


def _new_set(match):
    rotate = match.group('rotate')
    criterion = match.group('criterion')
    if match.group('bytes'):
        criterion = 'size'
    elif match.group('days'):
        criterion = 'daily' if match.group('days') == '1' else 'every %s days' % match.group('days')
    elif criterion.startswith('forced'):
        criterion = 'forced'
    return dict(pattern=match.group('pattern'), criterion=criterion,
                size_bytes=int(match.group('bytes')) if match.group('bytes') else None,
                rotate=int(rotate) if rotate is not None else 0, olddir=None, ifempty=True, minsize=None, maxsize=None,
                logs=[], plans={}, _flags_pending=True)


def _read_flags(current, line):
    current['_flags_pending'] = False
    olddir = _OLDDIR_RE.match(line)
    if olddir:
        current['olddir'] = olddir.group(1)
    current['ifempty'] = 'empty log files are not rotated' not in line
    for key, regex in (('minsize', _MINSIZE_RE), ('maxsize', _MAXSIZE_RE)):
        found = regex.search(line)
        if found:
            current[key] = int(found.group(1))


def _read_error(line, pending, rejected, messages):
    messages.append(line[len('error: '):])
    stanza = _REJECTED_STANZA_RE.match(line)
    whole = _REJECTED_FILE_RE.match(line)
    if stanza and not whole:
        rejected.append(dict(kind='stanza', pattern=stanza.group('pattern'), reasons=[text for dummy, text in pending]))
        del pending[:]
    elif whole:
        rejected.append(dict(kind='file', source=whole.group('source'), reasons=[text for dummy, text in pending]))
        del pending[:]
    else:
        detail = _ERROR_RE.match(line)
        if detail:
            where = '%s:%s' % (detail.group('source'), detail.group('line'))
            pending.append((detail.group('source'), '%s: %s' % (where, detail.group('reason'))))
        else:
            pending.append(('', line[len('error: '):]))


def _plan(path, steps):
    """What ``-f`` would do to ``path``: target, copytruncate, compress, delaycompress (None when not shown)."""
    target, main_index, compress_index = None, None, None
    copytruncate = False
    quoted = dict((key, step.split("'")[1]) for step in steps for key in ('dateext suffix', 'glob pattern')
                  if step.startswith(key + " '") and step.count("'") >= 2)
    for index, step in enumerate(steps):
        for verb in ('renaming ', 'copying '):
            prefix = '%s%s to ' % (verb, path)
            if step.startswith(prefix) and main_index is None:
                target = step[len(prefix):].split(' (', 1)[0].rstrip(', ')
                main_index = index
                copytruncate = verb == 'copying '
        if compress_index is None and step.startswith(('compressing log with', 'previous log ', 'glob finding logs to compress')):
            compress_index = index
    if main_index is None:
        return dict(target=None, copytruncate=None, compress=None, delaycompress=None, suffix=None, glob=None)
    compress = compress_index is not None
    return dict(target=target, copytruncate=copytruncate, compress=compress,
                delaycompress=compress and compress_index < main_index,
                suffix=quoted.get('dateext suffix'), glob=quoted.get('glob pattern'))


class LogrotateReading:
    """What logrotate makes of a configuration, asked once, queried per log."""

    def __init__(self, sets, rejected, messages, stanzas):
        self.sets = sets
        self.rejected = rejected
        self.messages = messages
        self.stanzas = stanzas  # the collection's own parse, for maxage and the file name

    def covering(self, log_path):
        """(log set, plan) of the set logrotate would rotate ``log_path`` with, or (None, None)."""
        real = os.path.realpath(log_path)
        for log_set in self.sets:
            for path in log_set['logs']:
                if os.path.realpath(path) == real:
                    return log_set, log_set['plans'].get(path) or {}
        return None, None

    def rejection(self, log_path):
        """logrotate's reasons for skipping the stanza (or file) that names ``log_path``, or None."""
        real = os.path.realpath(log_path)
        sources = [source for patterns, dummy, source in self.stanzas
                   if any(pattern_matches(p, real) for p in patterns)]
        for item in self.rejected:
            if item['kind'] == 'stanza' and pattern_matches(item['pattern'], real):
                return '; '.join(item['reasons']) or 'logrotate skipped the stanza'
            if item['kind'] == 'file' and any(os.path.basename(s) == os.path.basename(item['source'])
                                              for s in sources):
                return 'logrotate skipped %s: %s' % (item['source'], '; '.join(item['reasons']))
        return None


def pattern_matches(pattern_text, real):
    for word in re.findall(r'"[^"]*"|\'[^\']*\'|\S+', pattern_text):
        word = word.strip('"\'')
        if fnmatch.fnmatch(real, word) or real in (os.path.realpath(p) for p in glob.glob(word)):
            return True
    return False


def read_logrotate(conf_path, conf_dir, stanzas, logrotate=None):
    """A :class:`LogrotateReading` of the configuration (with ``logrotate``, else the installed one), or LogrotateMissing."""
    logrotate = find_logrotate(logrotate)
    if not logrotate:
        raise LogrotateMissing('logrotate is not installed on this host (or logrotate_path is not an executable file; '
                               'the log_oversight role installs it)')
    arguments = config_arguments(conf_path, conf_dir)
    if not arguments:
        return LogrotateReading([], [], [], stanzas)
    sets, rejected, messages = parse_debug(run_debug(logrotate, arguments))
    forced, dummy, dummy = parse_debug(run_debug(logrotate, arguments, force=True))
    plans = {}
    for log_set in forced:
        plans.update(log_set['plans'])
    for log_set in sets:
        log_set['plans'] = dict((path, plans.get(path) or {}) for path in log_set['logs'])
    return LogrotateReading(sets, rejected, messages, stanzas)


def directives_for(reading, log_path):
    """(directives, source, plan, rejection) of ``log_path`` as logrotate reads it.

    ``directives`` uses the audit's keys (size, maxsize, minsize, rotate,
    compress, delaycompress, maxage, criterion); None when no accepted stanza
    covers the log, and then ``rejection`` is logrotate's reason when a
    stanza naming it was skipped.
    """
    log_set, plan = reading.covering(log_path)
    parsed, source = _parsed_stanza(reading.stanzas, log_path)
    if log_set is None:
        return None, source, None, reading.rejection(log_path)
    directives = dict(criterion=log_set['criterion'], rotate=log_set['rotate'], olddir=log_set['olddir'])
    if log_set['criterion'] == 'size':
        directives['size'] = log_set['size_bytes']
    for key in ('maxsize', 'minsize'):
        if log_set[key] is not None:
            directives[key] = log_set[key]
    for key in ('compress', 'delaycompress'):
        value = plan.get(key)
        directives[key] = value if value is not None else bool((parsed or {}).get(key))
    if parsed and parsed.get('maxage') is not None:
        directives['maxage'] = parsed['maxage']
    return directives, source, plan, None


def _parsed_stanza(stanzas, log_path):
    real = os.path.realpath(log_path)
    for patterns, directives, source in stanzas or []:
        if any(pattern_matches(p, real) for p in patterns):
            return directives, source
    return None, None


def directives_source(reading, log_path):
    """The configuration file holding the stanza that names ``log_path`` (the collection's parse), or None."""
    return _parsed_stanza(reading.stanzas, log_path)[1]

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which files are logs, and which are their rotated versions (``name.N[.gz]``, ``name-YYYYMMDD[.gz]``)."""

from __future__ import annotations

import errno
import glob
import os
import re
import stat
import time

COMPRESSED = ('.gz', '.zst', '.xz', '.bz2')
DAY_SECONDS = 86400.0


class LogPathError(Exception):
    """A configured path cannot be a log file (a directory, a symlink loop)."""


def expand_paths(paths):
    """(logs, unmatched, skipped): regular files named by ``paths``, globs that matched nothing,
    and glob matches that are not regular files. A literal path that is a directory or a
    symlink loop raises LogPathError: that is a configuration mistake, not a finding."""
    logs, unmatched, skipped = [], [], []
    for pattern in paths:
        literal = not glob.has_magic(pattern)
        matches = [pattern] if literal and os.path.lexists(pattern) else sorted(glob.glob(pattern))
        if not matches:
            unmatched.append(pattern)
            continue
        for path in matches:
            problem = _not_a_file(path)
            if problem and literal:
                raise LogPathError('paths: %s %s: give log files (for example %s/*.log)'
                                   % (path, problem, path.rstrip('/') if problem == 'is a directory' else os.path.dirname(path)))
            if problem:
                skipped.append(dict(path=path, reason=problem))
            elif path not in logs:
                logs.append(path)
    # a glob like /var/log/app/* also matches the rotated versions: they are versions, not logs
    names = set(logs)
    logs = [p for p in logs if not any(version_of(p, other) for other in names if other != p)]
    return logs, unmatched, skipped


def _not_a_file(path):
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return 'is a symlink loop'
        if exc.errno == errno.ENOENT:
            return 'is a dangling symlink'
        return None  # unreadable is reported by the audit as a violation, not here
    if stat.S_ISDIR(st.st_mode):
        return 'is a directory'
    if not stat.S_ISREG(st.st_mode):
        return 'is not a regular file'
    return None


_NUMBERED = r'\.(\d+)'
_DATEEXT = r'-(\d{8}(?:\d{2}){0,3})'
_COMPRESS_SUFFIX = r'(\.gz|\.zst|\.xz|\.bz2)?'


def version_regex(log_path, rotated_pattern):
    name = re.escape(os.path.basename(log_path))
    kinds = dict(numbered=_NUMBERED, dateext=_DATEEXT, auto='(?:%s|%s)' % (_NUMBERED, _DATEEXT))
    return re.compile('^%s%s%s$' % (name, kinds[rotated_pattern], _COMPRESS_SUFFIX))


def version_of(candidate, log_path, rotated_pattern='auto'):
    """True when ``candidate`` is a rotated version of ``log_path``."""
    return (os.path.dirname(candidate) == os.path.dirname(log_path)
            and bool(version_regex(log_path, rotated_pattern).match(os.path.basename(candidate))))


def version_rule(log_path, plan):
    """(directory, regex) of the versions logrotate writes for ``log_path``, from its plan (see logrotate_reading).

    The regex has two groups like :func:`version_regex` in auto mode (number,
    date) and the compression suffix last. None when the plan names no target.
    """
    target = (plan or {}).get('target')
    if not target:
        return None
    directory, name = os.path.split(target)
    suffix = plan.get('suffix')
    if suffix and suffix in name:
        head, tail = name.split(suffix, 1)
        middle = '()(%s)' % _glob_to_regex(plan.get('glob') or re.escape(suffix))
    else:
        base = os.path.basename(log_path)
        splits = [(name[:p], name[p + 2:]) for p in range(len(name)) if name.startswith('.1', p)]
        splits = [(head, tail) for head, tail in splits if head == base or head + tail == base]
        if not splits:
            return None
        head, tail = splits[0]
        middle = r'\.(\d+)()'
    return directory, re.compile('^%s%s%s%s$' % (re.escape(head), middle, re.escape(tail), _COMPRESS_SUFFIX))


def _glob_to_regex(pattern):
    parts = re.split(r'(\[[^\]]*\])', pattern)
    return ''.join(p if p.startswith('[') else re.escape(p).replace(r'\*', '.*').replace(r'\?', '.') for p in parts)


def list_versions(log_path, rotated_pattern, now=None, rule=None):
    """Rotated versions of a log, newest first: numbered by N, then dated ones by date descending.

    ``rule`` (see :func:`version_rule`) is where logrotate puts them; without
    it, beside the log as ``rotated_pattern`` says.
    """
    now = time.time() if now is None else now
    if rule is not None:
        directory, regex = rule
        rotated_pattern = 'auto'
    else:
        regex = version_regex(log_path, rotated_pattern)
        directory = os.path.dirname(log_path) or '.'
    versions = []
    for name in os.listdir(directory):
        match = regex.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        groups = match.groups()
        number = groups[0] if rotated_pattern != 'dateext' else None
        date = groups[1] if rotated_pattern == 'auto' else (groups[0] if rotated_pattern == 'dateext' else None)
        date = re.sub(r'\D', '', date) if date else date
        versions.append(dict(path=path, name=name, number=int(number) if number else None, date=date,
                             compressed=groups[-1], size_bytes=st.st_size, mtime=st.st_mtime,
                             age_days=round(max(0.0, now - st.st_mtime) / DAY_SECONDS, 2)))
    versions.sort(key=lambda v: (0, v['number'], '') if v['number'] is not None else (1, 0, _descending(v['date'])))
    return versions


def _descending(digits):
    return ''.join(chr(ord('9') - ord(c) + ord('0')) for c in digits.ljust(14, '0'))

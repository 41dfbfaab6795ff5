# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of the security audit: file modes, hard-coded secrets, Docker exposure, access review.

Private to the collection. Every check returns *findings*: dicts with ``code``,
``severity``, ``path`` (filesystem) or ``object`` (anything else) and an
operator-language ``message``. A secret found in a file is never copied into a
finding: only its file, line, pattern name and a masked excerpt are.

The tree walk never follows a symbolic link and the only fixes are ``fchmod``
calls on a file descriptor opened with ``O_NOFOLLOW`` and checked to be the
inode the walk saw, so a fix cannot reach outside the application root, not
even through a link planted between the audit and the fix.
"""

from __future__ import annotations

import collections
import datetime
import fnmatch
import grp
import math
import os
import re
import stat

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import MASK

SEVERITIES = ('critical', 'high', 'medium', 'low', 'info')
FILE_CHECKS = ('secret_files', 'world_writable_dirs', 'secret_scan')
DOCKER_CHECKS = ('docker_socket', 'docker_ports')
DB_CHECKS = ('superusers', 'stale_logins')
CHECKS = FILE_CHECKS + DOCKER_CHECKS + DB_CHECKS

DEFAULT_SECRET_FILE_PATTERNS = ['.env', '.env.*', '*.env', '*.pem', '*.key', 'id_rsa', 'id_dsa', 'id_ecdsa',
                                'id_ed25519', '*.p12', '*.pfx', '.pgpass', '.netrc', '.htpasswd']
DEFAULT_SECRET_FILE_EXCLUDE = ['*.example', '*.sample', '*.dist', '*.template']
DEFAULT_SCAN_EXCLUDE_DIRS = ['.git', '.hg', '.svn', 'node_modules', '__pycache__', '.venv', 'venv', '.tox']
DEFAULT_SCAN_EXCLUDE_FILES = ['*.lock', 'package-lock.json', '*.min.js', '*.map', '*.svg']
SECRET_FILE_MODES = (0o600, 0o400)
BINARY_PROBE_BYTES = 8192
EXCERPT_CHARS = 120
PUBLIC_ADDRESSES = ('', '0.0.0.0', '::')

# Built-in scan patterns, most specific first: when several match one line the
# first one names the finding. ``secret`` is the group masked in the excerpt;
# a pattern without it (a key header) holds nothing secret in its match.
BUILTIN_PATTERNS = collections.OrderedDict([
    ('aws_access_key_id', r'\b(?:AKIA|ASIA)(?P<secret>[0-9A-Z]{16})\b'),
    ('aws_secret_access_key',
     r'(?i)aws_?secret_?(?:access_?)?key[\'"]?[ \t]*[:=][ \t]*[\'"]?(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])'),
    ('private_key', r'-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----'),
    ('password_assignment',
     r'(?i)(?:password|passwd|pwd|secret)[\w.-]*[\'"]?[ \t]*(?::=|=>|[:=])[ \t]*([\'"])'
     r'(?!\$\{|\{\{|%\()(?P<secret>[^\'"\s]{4,})\1'),
    ('high_entropy_token', r'[\'"](?P<secret>[A-Za-z0-9+/=_-]{32,})[\'"]'),
])
ENTROPY_PATTERN = 'high_entropy_token'
# Lower-case words every match of a built-in starts with. Python's ``re`` is slow on
# case-insensitive alternations (~20 MB/s here); ``str.find`` on the lowered text
# (C speed) finds the few candidate positions and the regex only runs there.
ANCHORS = dict(aws_access_key_id=('akia', 'asia'), aws_secret_access_key=('aws',),
               password_assignment=('pass', 'pwd', 'secret'))


class AuditConfigError(Exception):
    """A bad option, phrased for the operator (what, why, next step)."""


def finding(code, severity, message, **fields):
    """One finding; ``fields`` carry ``path`` or ``object`` and the check's details."""
    entry = dict(code=code, severity=severity, message=message, status='open', fix=None)
    entry.update(fields)
    return entry


def octal(mode):
    return '%04o' % stat.S_IMODE(mode)


# --- scan patterns ---------------------------------------------------------------------------

def compile_patterns(builtin_names, custom):
    """Compile the built-ins asked for and the operator's patterns into (name, regex, mask group) triples.

    Custom patterns go after the specific built-ins and before the generic
    entropy one, so a precise operator pattern names a line first.
    """
    seen = set()
    compiled = []
    for entry in custom:
        name = entry['name']
        if name in BUILTIN_PATTERNS or name in seen:
            raise AuditConfigError('scan pattern name %r is used twice (built-in names: %s): give each pattern its own name'
                                   % (name, ', '.join(BUILTIN_PATTERNS)))
        seen.add(name)
        try:
            regex = re.compile(entry['regex'])
        except re.error as exc:
            raise AuditConfigError('scan pattern %r: regex %r does not compile (%s): fix scan_patterns'
                                   % (name, entry['regex'], exc)) from None
        compiled.append((name, regex, 'secret' if 'secret' in regex.groupindex else 0))
    builtins = [(name, re.compile(BUILTIN_PATTERNS[name]), 'secret' if 'secret' in BUILTIN_PATTERNS[name] else None)
                for name in BUILTIN_PATTERNS if name in builtin_names and name != ENTROPY_PATTERN]
    ordered = builtins + compiled
    if ENTROPY_PATTERN in builtin_names:
        ordered.append((ENTROPY_PATTERN, re.compile(BUILTIN_PATTERNS[ENTROPY_PATTERN]), 'secret'))
    return ordered


def find_matches(name, regex, text, lowered):
    """Every match of ``regex`` in ``text``; built-ins with anchors are only tried where an anchor word starts."""
    anchors = ANCHORS.get(name)
    if not anchors or lowered is None:
        yield from regex.finditer(text)
        return
    positions = set()
    for word in anchors:
        start = lowered.find(word)
        while start != -1:
            positions.add(start)
            start = lowered.find(word, start + 1)
    end = -1
    for start in sorted(positions):
        if start < end:
            continue
        match = regex.match(text, start)
        if match:
            end = match.end()
            yield match


def shannon_entropy(text):
    """Bits per character of ``text``: ~4.5 for random base64, at most 4 for hex, lower for words."""
    if not text:
        return 0.0
    counts = collections.Counter(text)
    length = float(len(text))
    return -sum(n / length * math.log(n / length, 2) for n in counts.values())


def looks_random(token, threshold):
    """A generic token counts when it mixes letters and digits and its entropy reaches ``threshold``."""
    return (any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
            and shannon_entropy(token) >= threshold)


def masked_excerpt(line, spans, first_start):
    """The line with every secret span replaced by the mask, cut to a window around the first hit."""
    merged = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces = []
    cursor = 0
    anchor = first_start
    for start, end in merged:
        pieces.append(line[cursor:start])
        if start <= first_start < end:
            anchor = len(''.join(pieces))
        elif end <= first_start:
            anchor -= (end - start) - len(MASK)
        pieces.append(MASK)
        cursor = end
    pieces.append(line[cursor:])
    text = ''.join(pieces)
    begin = max(0, min(anchor - EXCERPT_CHARS // 3, len(text) - EXCERPT_CHARS))
    excerpt = text[begin:begin + EXCERPT_CHARS].strip()
    return ('...' if begin > 0 else '') + excerpt + ('...' if begin + EXCERPT_CHARS < len(text) else '')


class LineCounter:
    """Line numbers of increasing offsets by counting newlines from the previous offset (C speed).

    A file usually has a handful of hits, so this beats indexing every newline;
    an offset before the previous one (the next pattern) counts from the start again.
    """

    def __init__(self, text):
        self.text = text
        self.offset = 0
        self.line = 0

    def line_of(self, offset):
        """0-based line number and start offset of the line holding ``offset``."""
        if offset < self.offset:
            self.offset = self.line = 0
        self.line += self.text.count('\n', self.offset, offset)
        self.offset = offset
        return self.line, self.text.rfind('\n', 0, offset) + 1


def scan_text(text, patterns, entropy_threshold):
    """Hits in ``text`` as (line number, pattern name, masked excerpt), one per line, in line order.

    Each pattern runs over the whole text (anchored built-ins only where their
    anchor words are), hits are mapped to lines, and every secret on a line is
    masked, not only the one that names the finding.
    """
    lines = LineCounter(text)
    by_line = {}
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters lower-case to two: offsets would shift
        lowered = None
    for rank, (name, regex, group) in enumerate(patterns):
        for match in find_matches(name, regex, text, lowered):
            if name == ENTROPY_PATTERN and not looks_random(match.group('secret'), entropy_threshold):
                continue
            number, line_start = lines.line_of(match.start())
            span = match.span(group) if group is not None and match.span(group) != (-1, -1) else None
            entry = by_line.setdefault(number, dict(start=line_start, hits=[]))
            entry['hits'].append((rank, name, match.start() - line_start,
                                  None if span is None else (span[0] - line_start, span[1] - line_start)))
    hits = []
    for number in sorted(by_line):
        entries = sorted(by_line[number]['hits'])
        line_start = by_line[number]['start']
        line_end = text.find('\n', line_start)
        line = text[line_start:line_end if line_end != -1 else len(text)]
        spans = [entry[3] for entry in entries if entry[3] is not None]
        hits.append((number + 1, entries[0][1], masked_excerpt(line, spans, entries[0][2])))
    return hits


def read_for_scan(path, max_bytes):
    """Return (text, bytes read, reason skipped): reason is ``binary`` or ``large`` and text None then."""
    with open(path, 'rb') as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        return None, len(data), 'large'
    if b'\0' in data[:BINARY_PROBE_BYTES]:
        return None, len(data), 'binary'
    return data.decode('utf-8', 'replace'), len(data), None


# --- the application tree --------------------------------------------------------------------

def walk(root, errors):
    """Yield (path, lstat) of every directory (root included) and regular file under ``root``.

    Symbolic links are neither followed nor reported; unreadable directories
    are recorded in ``errors`` and the walk goes on.
    """
    try:
        yield root, os.lstat(root)
    except OSError as exc:
        errors.append(dict(path=root, error=exc.strerror or str(exc)))
        return
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            errors.append(dict(path=directory, error=exc.strerror or str(exc)))
            continue
        subdirs = []
        for entry in listed:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                errors.append(dict(path=entry.path, error=exc.strerror or str(exc)))
                continue
            if stat.S_ISDIR(info.st_mode):
                subdirs.append(entry.path)
                yield entry.path, info
            elif stat.S_ISREG(info.st_mode):
                yield entry.path, info
        pending.extend(reversed(subdirs))


def matches_any(name, globs):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in globs)


def secret_file_finding(path, info):
    """A secret file whose mode is not 0600/0400, with the chmod that fixes it."""
    mode = stat.S_IMODE(info.st_mode)
    target = 0o600 if mode & 0o200 else 0o400
    if mode & 0o004:
        code, severity, what = 'secret_file_world_readable', 'high', 'is readable by every user'
    else:
        code, severity, what = 'secret_file_mode', 'medium', 'is open to its group or others'
    return finding(code, severity, 'secret file %s has mode %s and %s: it must be 0600 or 0400 (fix: chmod %s)'
                   % (path, octal(mode), what, octal(target)),
                   path=path, mode=octal(mode), fix='chmod %s' % octal(target),
                   _fix=dict(path=path, dev=info.st_dev, ino=info.st_ino, mode=mode, target=target, directory=False))


def world_writable_finding(path, info):
    mode = stat.S_IMODE(info.st_mode)
    target = mode & ~0o002
    sticky = bool(mode & stat.S_ISVTX)
    return finding('world_writable_dir', 'medium' if sticky else 'high',
                   'directory %s has mode %s: every user can %s files in it (fix: chmod %s)'
                   % (path, octal(mode), 'create' if sticky else 'create, replace and delete', octal(target)),
                   path=path, mode=octal(mode), fix='chmod %s' % octal(target),
                   _fix=dict(path=path, dev=info.st_dev, ino=info.st_ino, mode=mode, target=target, directory=True))


def audit_tree(root, checks, options, patterns):
    """Run the file checks under ``root``; return (findings, stats, errors)."""
    findings = []
    errors = []
    stats = dict(dirs_checked=0, files_checked=0, files_scanned=0, bytes_scanned=0,
                 files_skipped_binary=0, files_skipped_large=0)
    scan = 'secret_scan' in checks and patterns
    excluded_dirs = set()
    for path, info in walk(root, errors):
        if stat.S_ISDIR(info.st_mode):
            stats['dirs_checked'] += 1
            if path != root and (os.path.basename(path) in options['scan_exclude_dirs']
                                 or os.path.dirname(path) in excluded_dirs):
                excluded_dirs.add(path)
            if 'world_writable_dirs' in checks and info.st_mode & 0o002:
                findings.append(world_writable_finding(path, info))
            continue
        stats['files_checked'] += 1
        name = os.path.basename(path)
        if matches_any(name, options['secret_file_patterns']) and not matches_any(name, options['secret_file_exclude']):
            # Secret files are meant to hold secrets: their mode matters, not their content.
            if 'secret_files' in checks and stat.S_IMODE(info.st_mode) not in SECRET_FILE_MODES:
                findings.append(secret_file_finding(path, info))
            continue
        if not scan or os.path.dirname(path) in excluded_dirs or matches_any(name, options['scan_exclude_files']):
            continue
        if info.st_size > options['scan_max_file_bytes']:
            stats['files_skipped_large'] += 1
            continue
        try:
            text, size, skipped = read_for_scan(path, options['scan_max_file_bytes'])
        except OSError as exc:
            errors.append(dict(path=path, error=exc.strerror or str(exc)))
            continue
        if skipped:
            stats['files_skipped_' + skipped] += 1
            continue
        stats['files_scanned'] += 1
        stats['bytes_scanned'] += size
        readable = bool(info.st_mode & 0o004)
        for number, pattern, excerpt in scan_text(text, patterns, options['entropy_threshold']):
            findings.append(finding(
                'hardcoded_secret', 'high',
                '%s:%d: %s found in the file%s: move it to a secret file (0600) or a vault and rotate it'
                % (path, number, pattern, ', which every user can read' if readable else ''),
                path=path, line=number, pattern=pattern, excerpt=excerpt, world_readable=readable))
    return findings, stats, errors


def apply_fix(fix):
    """chmod one file or directory the audit saw, through a descriptor, never following a link.

    Returns None when done, else why not (the inode changed since the audit, a
    hard link would carry the change outside the tree, or the system refused).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
    if fix['directory']:
        flags |= os.O_DIRECTORY
    try:
        fd = os.open(fix['path'], flags)
    except OSError as exc:
        return 'cannot open %s: %s' % (fix['path'], exc.strerror or exc)
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (fix['dev'], fix['ino']) or stat.S_IMODE(info.st_mode) != fix['mode']:
            return '%s changed since the audit: run the audit again' % fix['path']
        if not fix['directory'] and info.st_nlink > 1:
            return ('%s has %d hard links: a chmod would change every one of them, possibly outside the application root; '
                    'fix it by hand' % (fix['path'], info.st_nlink))
        os.fchmod(fd, fix['target'])
    except OSError as exc:
        return 'cannot chmod %s: %s' % (fix['path'], exc.strerror or exc)
    finally:
        os.close(fd)
    return None


# --- docker ----------------------------------------------------------------------------------

def docker_socket_findings(path, expected_group):
    """Findings on the engine's socket, or (no findings, note) when there is none to check."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return [], 'docker socket %s absent: socket check skipped' % path
    except OSError as exc:
        return [], 'docker socket %s cannot be examined (%s): socket check skipped' % (path, exc.strerror or exc)
    if not stat.S_ISSOCK(info.st_mode):
        return [], '%s is not a socket: socket check skipped' % path
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    mode = stat.S_IMODE(info.st_mode)
    found = []
    if mode & 0o002:
        found.append(finding('docker_socket_world_writable', 'critical',
                             'docker socket %s has mode %s: every local user can run containers as root; '
                             'make it 0660 in the docker.socket unit (SocketMode=0660)' % (path, octal(mode)),
                             path=path, mode=octal(mode), group=group))
    if group != expected_group:
        found.append(finding('docker_socket_group', 'medium',
                             'docker socket %s belongs to group %s, expected %s: members of %s control the engine '
                             '(SocketGroup= in the docker.socket unit)' % (path, group, expected_group, group),
                             path=path, mode=octal(mode), group=group))
    return found, None


def container_port_findings(containers, allowed_ports):
    """Ports published on every interface, from the engine's /containers/json entries.

    One finding per container and published port, whatever the number of
    wildcard addresses (IPv4 and IPv6) it is bound to.
    """
    found = []
    for container in containers:
        name = (container.get('Names') or [container.get('Id', '?')[:12]])[0].lstrip('/')
        published = collections.OrderedDict()
        for port in container.get('Ports') or []:
            public = port.get('PublicPort')
            if public is None or port.get('IP', '') not in PUBLIC_ADDRESSES or public in allowed_ports:
                continue
            key = (port.get('PrivatePort'), port.get('Type', 'tcp'), public)
            published.setdefault(key, []).append(port.get('IP') or '0.0.0.0')
        for (private, proto, public), addresses in published.items():
            found.append(finding(
                'container_port_public', 'high',
                'container %s publishes %s/%s on %s port %d (every interface): bind it to 127.0.0.1 '
                '(-p 127.0.0.1:%d:%s) or add %d to allowed_public_ports' % (
                    name, private, proto, ' and '.join(sorted(set(addresses))), public, public, private, public),
                object='container:%s' % name, container=name, port=public, container_port='%s/%s' % (private, proto),
                addresses=sorted(set(addresses))))
    return found


# --- access review ---------------------------------------------------------------------------

def superuser_findings(rows, expected):
    """(superusers list, findings) from (name, can_login) rows."""
    superusers = [dict(name=name, can_login=bool(can_login), expected=name in expected) for name, can_login in rows]
    found = [finding('pg_superuser', 'medium' if entry['can_login'] else 'low',
                     'role %s is a superuser%s and not in expected_superusers: revoke SUPERUSER or add it there'
                     % (entry['name'], '' if entry['can_login'] else ' (NOLOGIN)'),
                     object='role:%s' % entry['name'])
             for entry in superusers if not entry['expected']]
    return superusers, found


def as_utc(value, name):
    """A timestamp from the last-login source in UTC; naive values are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = datetime.datetime.combine(value, datetime.time())
    if not isinstance(value, datetime.datetime):
        raise AuditConfigError('the last-login source gave %r for %s, not a timestamp: its second column must be a '
                               'timestamp or date' % (value, name))
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def stale_login_findings(rows, stale_days, now):
    """(checked entries, findings) for (name, last login) rows: never logged in or not for ``stale_days``."""
    entries = []
    found = []
    for row in rows:
        if len(row) < 2:
            raise AuditConfigError('the last-login source must return two columns (login name, last login time), got %d'
                                   % len(row))
        name, last = str(row[0]), as_utc(row[1], row[0])
        days = None if last is None else (now - last).days
        stale = last is None or days >= stale_days
        entries.append(dict(name=name, last_login=None if last is None else last.strftime('%Y-%m-%dT%H:%M:%SZ'),
                            days_since=days, stale=stale))
        if stale:
            found.append(finding('stale_login', 'low',
                                 'user %s %s: disable the account if it is no longer needed' % (
                                     name, 'has never logged in' if last is None
                                     else 'last logged in %s, %d days ago (limit %d)' % (
                                         last.strftime('%Y-%m-%d'), days, stale_days)),
                                 object='user:%s' % name, last_login=entries[-1]['last_login'], days_since=days))
    return entries, found


def table_identifier(name):
    """Split ``schema.table`` (or ``table``) into the parts sql.Identifier takes."""
    parts = name.split('.')
    if len(parts) > 2 or not all(parts):
        raise AuditConfigError('last_login_table %r is not "table" or "schema.table"' % name)
    return parts

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Structured and known log formats: which records are errors, read from the record's level, not a substring.

In a JSON-lines log every line may contain ``error`` (``"error": null``), so a
substring search counts every line. Here each format has

- a grep ERE that finds the lines that *may* be error records (``"level": "error"``,
  a syslog priority whose severity is 0-3, ``ERROR:``/``FATAL:``/``PANIC:`` of
  PostgreSQL, ``[error]`` of nginx), so grep still does the reading;
- a parser that reads the candidate's level exactly (JSON is decoded) and says
  which level it is, or None when the line is not an error record after all.

Counts are by level (``error``, ``fatal``, ``critical``, ...). Plain text keeps
the pattern search.
"""

from __future__ import annotations

import json
import re

FORMATS = ('auto', 'text', 'json', 'syslog', 'postgresql', 'nginx_error')
DETECT_BYTES = 65536
DETECT_LINES = 20
JSON_DECODE_LIMIT = 1024 * 1024  # larger records are not decoded whole

JSON_LEVEL_KEYS = ('level', 'severity', 'levelname', 'lvl', 'log.level', 'loglevel')
# names of the error levels and their canonical names
_ERROR_NAMES = {'error': 'error', 'err': 'error', 'fatal': 'fatal', 'critical': 'critical', 'crit': 'critical',
                'alert': 'alert', 'emerg': 'emergency', 'emergency': 'emergency', 'panic': 'panic'}
_PINO_LEVELS = {50: 'error', 60: 'fatal'}  # pino and bunyan numeric levels
_SYSLOG_SEVERITIES = {0: 'emergency', 1: 'alert', 2: 'critical', 3: 'error'}
_SYSLOG_PRIORITIES = sorted(facility * 8 + severity for facility in range(24) for severity in _SYSLOG_SEVERITIES)

GREP_PATTERNS = {
    # -i: "ERROR", "Error" and "error" are all error levels
    'json': (True, r'"(level|severity|levelname|lvl|log\.level|loglevel)" *: *("(error|err|fatal|critical|crit|alert|emerg'
                   r'|emergency|panic)"|(50|60)[,} ])'),
    'syslog': (False, r'^<(%s)>' % '|'.join(str(p) for p in _SYSLOG_PRIORITIES)),
    'postgresql': (False, r' (ERROR|FATAL|PANIC): '),
    'nginx_error': (False, r'^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9:]{8} \[(error|crit|alert|emerg)\] '),
}

_JSON_LEVEL_RE = re.compile(r'"(level|severity|levelname|lvl|log\.level|loglevel)" *: *("[^"]*"|\d+)', re.IGNORECASE)
_SYSLOG_RE = re.compile(r'^<(\d{1,3})>')
_POSTGRES_RE = re.compile(r' (ERROR|FATAL|PANIC|LOG|WARNING|NOTICE|INFO|DEBUG\d?|STATEMENT|DETAIL|HINT|CONTEXT): ')
_POSTGRES_LINE_RE = re.compile(r'^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \S+ ')
_NGINX_RE = re.compile(r'^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \[(\w+)\] \d+#\d+: ')


def detect(head):
    """The format of a log from its first bytes: json, syslog, postgresql, nginx_error or text."""
    lines = [line for line in head.split(b'\n')[:DETECT_LINES] if line.strip()]
    if len(head) >= DETECT_BYTES and lines and b'\n' not in head:
        lines = [head]  # one very long first record
    if not lines:
        return 'text'
    text = [line.decode('utf-8', 'replace').rstrip('\r') for line in lines]
    votes = dict(json=0, syslog=0, postgresql=0, nginx_error=0)
    for line in text:
        if line.lstrip().startswith('{'):
            votes['json'] += 1
        elif _SYSLOG_RE.match(line):
            votes['syslog'] += 1
        elif _NGINX_RE.match(line):
            votes['nginx_error'] += 1
        elif _POSTGRES_LINE_RE.match(line) and _POSTGRES_RE.search(line):
            votes['postgresql'] += 1
    best = max(votes, key=votes.get)
    return best if votes[best] * 2 > len(text) else 'text'


def level_of(fmt, line):
    """(canonical error level or None, message) of one candidate line of a structured log."""
    text = line.decode('utf-8', 'replace').rstrip('\r')
    if fmt == 'json':
        return _json_level(text)
    if fmt == 'syslog':
        match = _SYSLOG_RE.match(text)
        severity = int(match.group(1)) % 8 if match else None
        return _SYSLOG_SEVERITIES.get(severity), text[match.end():] if match else text
    if fmt == 'postgresql':
        match = _POSTGRES_RE.search(text)
        level = match.group(1).lower() if match else None
        return (level if level in ('error', 'fatal', 'panic') else None), text[match.end():] if match else text
    if fmt == 'nginx_error':
        match = _NGINX_RE.match(text)
        name = match.group(1).lower() if match else None
        return _ERROR_NAMES.get(name) if name in ('error', 'crit', 'alert', 'emerg') else None, \
            text[match.end():] if match else text
    return None, text


def _json_level_by_pattern(text):
    match = _JSON_LEVEL_RE.search(text[:DETECT_BYTES])
    if not match:
        return None
    value = match.group(2)
    return _PINO_LEVELS.get(int(value)) if value.isdigit() else _ERROR_NAMES.get(value.strip('"').lower())


def _json_level(text):
    if len(text) > JSON_DECODE_LIMIT:
        return _json_level_by_pattern(text), text[:2048]  # a huge record: its level is read, not the whole record
    try:
        record = json.loads(text)
    except ValueError:
        return None, text  # a line that is no JSON: not a record
    if not isinstance(record, dict):
        return None, text  # a JSON line that is not an object has no level
    value = None
    for key in JSON_LEVEL_KEYS:
        if key in record:
            value = record[key]
            break
    else:
        nested = record.get('log')
        if isinstance(nested, dict):
            value = nested.get('level')
    if isinstance(value, bool):
        level = None
    elif isinstance(value, (int, float)):
        level = _PINO_LEVELS.get(int(value))
    elif isinstance(value, str):
        level = _ERROR_NAMES.get(value.strip().lower())
    else:
        level = None
    message = record.get('msg', record.get('message', record.get('event', text)))
    return level, message if isinstance(message, str) else json.dumps(message)[:2048]

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hard-coded secrets in file contents: scan patterns, entropy, masked excerpts.

A secret found in a file is never copied into a finding: only its file, line,
pattern name and a masked excerpt are.
"""

from __future__ import annotations

import collections
import math
import re

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import MASK
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import AuditConfigError

BINARY_PROBE_BYTES = 8192
EXCERPT_CHARS = 120

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

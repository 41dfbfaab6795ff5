# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Walk the keyspace with SCAN (never KEYS), bounded in keys and time, and describe key families by pattern.

SCAN hands back a few keys per call and never blocks the server the way KEYS
does; ``COUNT`` sets how much work each call does. Every walk stops at
``max_keys`` keys returned or at the deadline, whichever comes first, and says
so (``truncated`` with the reason), so a review on a busy server with millions
of keys costs a known, small amount. Follow-up commands on the keys found
(TTL, MEMORY USAGE, OBJECT IDLETIME) go in pipelined batches, one round trip
per SCAN page; none of them refreshes a key's idle time.

Patterns are Redis glob patterns (``*``, ``?``, ``[abc]``, ``[^a]``, ``\\``
escapes), matched here exactly as the server's ``MATCH`` would.
"""

from __future__ import annotations

import re
import time


class ScanError(ValueError):
    """A pattern or bound that cannot be used."""


def glob_regex(pattern):
    """A compiled bytes regex equal to Redis's ``stringmatch`` for ``pattern``."""
    data = pattern.encode('utf-8') if isinstance(pattern, str) else pattern
    out, i = [], 0
    while i < len(data):
        char = data[i:i + 1]
        if char == b'*':
            out.append(b'.*')
        elif char == b'?':
            out.append(b'.')
        elif char == b'\\' and i + 1 < len(data):
            i += 1
            out.append(re.escape(data[i:i + 1]))
        elif char == b'[' and b']' in data[i + 1:]:
            end = data.index(b']', i + 2 if data[i + 1:i + 2] in (b'^', b']') else i + 1)
            body = data[i + 1:end]
            negate = body.startswith(b'^')
            body = body[1:] if negate else body
            out.append(b'[' + (b'^' if negate else b'') + body.replace(b'\\', b'\\\\') + b']')
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile(b''.join(out) + b'\\Z', re.DOTALL)


def matches_everything(pattern):
    """True for patterns like ``*`` that select every key (guarded by ``allow_all``)."""
    return bool(pattern) and set(pattern) <= {'*'}


class Walk:
    """One bounded SCAN pass: iterate :meth:`pages`, then read ``scanned``, ``calls``, ``truncated``, ``stop_reason``."""

    def __init__(self, client, match=None, count=1000, max_keys=100000, deadline=None):
        if count < 1:
            raise ScanError('scan_count must be at least 1 (got %s)' % count)
        self.client = client
        self.match = match
        self.count = count
        self.max_keys = max_keys
        self.deadline = deadline
        self.scanned = 0
        self.calls = 0
        self.truncated = False
        self.stop_reason = None

    def pages(self):
        """Yield each SCAN page (a list of keys as bytes) until the cursor is 0 or a bound is reached."""
        cursor = b'0'
        args = (['MATCH', self.match] if self.match else []) + ['COUNT', self.count]
        while True:
            cursor, keys = self.client.command('SCAN', cursor, *args, record=self.calls == 0)
            self.calls += 1
            if self.max_keys and self.scanned + len(keys) > self.max_keys:
                keys = keys[:self.max_keys - self.scanned]
            self.scanned += len(keys)
            yield keys
            if cursor == b'0':
                break
            if self.max_keys and self.scanned >= self.max_keys:
                self.truncated, self.stop_reason = True, 'max_scan_keys (%d) reached' % self.max_keys
                break
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.truncated, self.stop_reason = True, 'max_duration_s reached'
                break
        self.client.commands.append('(SCAN: %d calls, %d keys%s)' % (
            self.calls, self.scanned, ', stopped: %s' % self.stop_reason if self.truncated else ''))


def each_reply(client, command, keys):
    """Pipeline ``command key`` for every key; yield (key, reply) with error replies as None."""
    replies = client.each(list(command), keys)
    for key, reply in zip(keys, replies):
        yield key, (None if isinstance(reply, Exception) else reply)


def key_text(key):
    return key.decode('utf-8', 'backslashreplace')


class Family:
    """The figures of one pattern: keys, keys without TTL, sampled memory, biggest keys."""

    def __init__(self, pattern, sample_keys, top_keys):
        self.pattern = pattern
        self.regex = glob_regex(pattern)
        self.sample_keys = sample_keys
        self.top_keys = top_keys
        self.keys = 0
        self.without_ttl = 0
        self.sampled = 0
        self.sampled_bytes = 0
        self.biggest = []

    def add_sizes(self, sized):
        for key, size in sized:
            if size is None:
                continue
            self.sampled += 1
            self.sampled_bytes += size
            self.biggest.append((size, key))
        self.biggest = sorted(self.biggest, reverse=True)[:self.top_keys]

    def public(self):
        average = self.sampled_bytes / self.sampled if self.sampled else 0
        return dict(pattern=self.pattern, keys=self.keys, keys_without_ttl=self.without_ttl, sampled_keys=self.sampled,
                    sampled_bytes=self.sampled_bytes, estimated_bytes=int(round(average * self.keys)),
                    biggest=[dict(key=key_text(k), bytes=s) for s, k in self.biggest])


def scan_patterns(client, patterns, count, max_keys, deadline, sample_keys=100, top_keys=5):
    """Walk once (``MATCH`` on the server when there is one pattern) and describe each pattern's keys."""
    families = [Family(p, sample_keys, top_keys) for p in patterns]
    walk = Walk(client, match=patterns[0] if len(patterns) == 1 else None, count=count, max_keys=max_keys,
                deadline=deadline)
    for keys in walk.pages():
        for family in families:
            mine = keys if walk.match else [k for k in keys if family.regex.match(k)]
            if not mine:
                continue
            ttls = dict(each_reply(client, ('TTL',), mine))
            alive = [k for k in mine if ttls[k] is not None and ttls[k] != -2]
            family.keys += len(alive)
            family.without_ttl += sum(1 for k in alive if ttls[k] == -1)
            room = family.sample_keys - family.sampled
            if room > 0:
                family.add_sizes(each_reply(client, ('MEMORY', 'USAGE'), alive[:room]))
    return dict(patterns=[f.public() for f in families], keys_scanned=walk.scanned, scan_calls=walk.calls,
                truncated=walk.truncated, stop_reason=walk.stop_reason)

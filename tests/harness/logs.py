"""Deterministic application logs for the log oversight tests and benchmark.

Lines look like the sandbox's logs (ISO UTC timestamp, level, message with
numbers, ids and addresses that differ per occurrence), about 0.5 % of them
ERROR/CRITICAL/FATAL, with multi-line Python tracebacks among them.
"""

from __future__ import annotations

import datetime
import os
import random
import subprocess
import uuid

START = datetime.datetime(2026, 11, 20, tzinfo=datetime.timezone.utc)

INFO = (
    'INFO request completed path=/api/orders/{n} status=200 duration_ms={m} user=user{k}',
    'INFO user user{k} logged in from 10.1.{a}.{b}',
    'DEBUG cache hit key=order:{n} ttl={m}',
    'WARNING slow query took {m} ms on orders (request {uuid})',
    'INFO export finished rows={n} file=/srv/app/data/exports/{uuid}.csv',
)
ERRORS = (
    'ERROR payment gateway timeout after {m} ms for order {n}',
    'ERROR could not send notification {n} to 10.2.{a}.{b}: SMTP connection refused',
    'ERROR request {uuid} failed: upstream returned 502',
    'CRITICAL disk usage {a} % on /srv/app/data',
    'FATAL worker {k} lost its database connection (session 0x{hex})',
)
TRACEBACK = (
    'ERROR unhandled exception in job {n}\n'
    'Traceback (most recent call last):\n'
    '  File "/srv/app/jobs.py", line {a}, in run\n'
    '    result = handler(payload)\n'
    '  File "/srv/app/handlers.py", line {b}, in handler\n'
    '    raise ValueError("bad payload %d" % payload_id)\n'
    'ValueError: bad payload {n}'
)


def _fill(template, rng):
    return template.format(n=rng.randint(1, 999999), m=rng.randint(1, 30000), k=rng.randint(1, 500),
                           a=rng.randint(0, 255), b=rng.randint(1, 254), hex='%08x' % rng.getrandbits(32),
                           uuid=uuid.UUID(int=rng.getrandbits(128), version=4))


def app_log_lines(count, seed=0, first_second=0, error_every=200, traceback_every=4000):
    """``count`` log records as bytes (a traceback record is several lines)."""
    rng = random.Random(seed)
    for index in range(count):
        stamp = (START + datetime.timedelta(seconds=first_second + index)).strftime('%Y-%m-%dT%H:%M:%SZ')
        if traceback_every and index % traceback_every == traceback_every - 1:
            template = TRACEBACK
        elif error_every and index % error_every == error_every // 2:
            template = rng.choice(ERRORS)
        else:
            template = rng.choice(INFO)
        yield ('%s %s\n' % (stamp, _fill(template, rng))).encode('utf-8')


def write_app_log(path, count, seed=0, first_second=0, mode='wb', **rates):
    """Write (or with mode='ab' append) ``count`` records; return the bytes written."""
    data = b''.join(app_log_lines(count, seed, first_second, **rates))
    with open(path, mode) as handle:
        handle.write(data)
    return len(data)


def write_sized_log(path, size_bytes, seed=0):
    """A log of about ``size_bytes``: a 4 MiB block of records written repeatedly (fast for GBs)."""
    block = b''.join(app_log_lines(30000, seed))
    written = 0
    with open(path, 'wb') as handle:
        while written < size_bytes:
            handle.write(block)
            written += len(block)
    return written


def grep_count(pattern, *paths):
    """What ``grep -ci PATTERN`` counts, summed over ``paths`` (the reference for the scanner)."""
    total = 0
    for path in paths:
        completed = subprocess.run(['grep', '-a', '-c', '-i', '-F', '-e', pattern, path], stdout=subprocess.PIPE,
                                   check=False)
        total += int(completed.stdout or 0)
    return total


def file_state(directory):
    """{name: (size, mtime_ns)} of every file in ``directory``: proves that nothing changed."""
    result = {}
    for name in sorted(os.listdir(directory)):
        st = os.lstat(os.path.join(directory, name))
        result[name] = (st.st_size, st.st_mtime_ns)
    return result

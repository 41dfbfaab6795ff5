# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Human sizes and durations, parsed one way for every module.

Operators write ``5M`` in a policy and ``24h`` in a window; the modules need
bytes and seconds. Sizes are binary (``1K`` = 1024 bytes), as logrotate and
``du`` read them, so a policy copied from a logrotate stanza means the same
number of bytes here. Every bad value raises ``ValueError`` with a message
that names the value and shows what would have been accepted.
"""

from __future__ import annotations

import re

SIZE_UNITS = {'': 1, 'B': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}
DURATION_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}

_SIZE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([BKMGT]?)(?:I?B)?\s*$', re.IGNORECASE)
_DURATION_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$')


def parse_size(value):
    """Bytes in ``value``: an int, or text like ``5M``, ``512K``, ``1G``, ``1.5GiB``, ``100``."""
    if isinstance(value, bool):
        raise ValueError('size %r is not a size: use a number of bytes or a number with K, M, G or T (5M, 512K, 1G)' % value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError('size %d is negative: use a number of bytes >= 0' % value)
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError('size %r is not a size: use a number of bytes or a number with K, M, G or T (5M, 512K, 1G)' % value)
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def parse_duration(value):
    """Seconds in ``value``: an int, or text like ``90s``, ``15m``, ``24h``, ``7d``, ``2w``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError('duration %s is negative: use seconds >= 0' % value)
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError('duration %r is not a duration: use a number with s, m, h, d or w (90s, 15m, 24h, 7d)' % value)
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def format_size(count):
    """``count`` bytes as a short human figure for summaries (``4.8 MiB``)."""
    if abs(count) < 1024:
        return '%d B' % count
    size = count / 1024.0
    for unit in ('KiB', 'MiB', 'GiB'):
        if abs(size) < 1024:
            break
        size /= 1024.0
    else:
        unit = 'TiB'
    return '%.1f %s' % (size, unit)

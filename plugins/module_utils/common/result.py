# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pieces of the result shape every module returns (see docs/DESIGN.md).

``summary`` is one operator-language line the maintenance log prints as is;
``metrics`` is a flat dict of numbers whose keys carry their unit;
``executed_commands`` lists every statement or argv run, secrets masked.
"""

from __future__ import annotations

import resource
import shlex
import time

MASK = '********'


def elapsed_ms(started):
    """Milliseconds since ``started`` (a ``time.monotonic()`` value), 0.1 ms precision."""
    return round((time.monotonic() - started) * 1000.0, 1)


def cpu_ms():
    """CPU milliseconds used so far by this process (all threads) and its finished children (grep, pg_dump)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime) * 1000.0


def mask_secrets(text, secrets):
    """Replace every non-empty secret in ``text`` by a fixed mask."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def format_argv(argv, secrets=()):
    """Render an argv list as one readable line for ``executed_commands``."""
    return mask_secrets(' '.join(shlex.quote(str(arg)) for arg in argv), secrets)

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one timestamp format of the collection: UTC, ISO 8601, ``Z``.

Lock records, manifests, the maintenance log, the report and the capacity
review all write and read ``2026-11-23T02:00:00Z`` (the maintenance log adds
milliseconds: ``2026-11-23T02:00:00.123Z``). Keeping the format, the parser and
"now" in one place is what lets a record written by one part be read by another.
"""

from __future__ import annotations

import datetime

ISO_FORMAT = '%Y-%m-%dT%H:%M:%SZ'
ISO_FORMAT_MS = '%Y-%m-%dT%H:%M:%S.%fZ'


def utc_now():
    """The current time, UTC, whole seconds (records and artifact names carry second precision)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def iso_utc(moment):
    """``moment`` as ``2026-11-23T02:00:00Z``; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).strftime(ISO_FORMAT)


def iso_utc_ms(moment):
    """``moment`` as ``2026-11-23T02:00:00.123Z``, the maintenance log's event time."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S') + '.%03dZ' % (moment.microsecond // 1000)


def parse_iso_utc(text):
    """An aware UTC datetime from ``iso_utc`` output; ValueError for anything else."""
    return datetime.datetime.strptime(text, ISO_FORMAT).replace(tzinfo=datetime.timezone.utc)


def parse_time(text):
    """An aware UTC datetime from either record format, or None when ``text`` is neither."""
    for layout in (ISO_FORMAT_MS, ISO_FORMAT):
        try:
            return datetime.datetime.strptime(str(text), layout).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            pass
    return None

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance probe: degraded while the maintenance lock is held, unhealthy once it expired."""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.lock.record import (
    DEFAULT_LOCK_FILE,
    LockCorrupt,
    describe_holder,
    read_record,
    seconds_left,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import utc_now


def probe_maintenance(probe, finding, thresholds, timeout):
    """Maintenance mode is a planned degradation; a lock past its expiry is a forgotten one."""
    path = probe.get('lock_file') or DEFAULT_LOCK_FILE
    finding.details['lock_file'] = path
    try:
        record = read_record(path)
    except LockCorrupt as exc:
        finding.flag('unhealthy', '%s: inspect it; maintenance_lock with state=absent and force=true removes it' % exc)
        return
    if record is None:
        finding.details['locked'] = False
        finding.summary = 'maintenance off (no lock at %s)' % path
        return
    now = utc_now()
    left = seconds_left(record, now)
    finding.details.update(locked=True, expired=left <= 0, expires_in_s=left)
    for key in ('owner', 'reason', 'run_id', 'started_at', 'expires_at'):
        finding.details[key] = record.get(key)
    if left <= 0:
        finding.flag('unhealthy', 'maintenance lock %s held by %s: forgotten? release it (maintenance_lock '
                                  'state=absent) or take it over (steal_expired=true)'
                     % (path, describe_holder(record, now)))
    else:
        finding.flag('degraded', 'maintenance on: lock held by %s' % describe_holder(record, now))

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three statuses every probe and review grades into, and how thresholds decide them.

health_probe and redis_maintenance (and the report reading them) share one scale, so a
``degraded`` means the same thing wherever it appears.
"""

from __future__ import annotations

STATUSES = ('healthy', 'degraded', 'unhealthy')


def worst(statuses):
    """The worst of a list of statuses (``healthy`` for an empty list)."""
    return max(statuses, key=STATUSES.index) if statuses else 'healthy'


def grade(value, degraded_at, unhealthy_at):
    """Status of ``value`` against a pair of thresholds (``None`` disables one; no value is healthy)."""
    if value is None:
        return 'healthy'
    if unhealthy_at is not None and value >= unhealthy_at:
        return 'unhealthy'
    if degraded_at is not None and value >= degraded_at:
        return 'degraded'
    return 'healthy'

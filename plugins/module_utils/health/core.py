# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health grading shared by every probe: statuses, thresholds, the Finding a probe fills, Prometheus text.

A probe never raises to the module: whatever goes wrong while probing (a
refused port, a missing library, a timeout) is itself the finding, reported
as ``unhealthy`` with the reason. Bad *configuration* (unknown kind, missing
keys, thresholds out of order) is caught before any probe runs, by
:func:`resolve_thresholds` and the module's argument spec.
"""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.status import STATUSES, grade, worst

KINDS = ('postgres', 'redis', 'http', 'disk', 'memory', 'load', 'process', 'systemd', 'docker', 'command',
         'maintenance')

# Default thresholds per kind. A value at or above ``*_degraded*`` is degraded,
# at or above ``*_unhealthy*`` unhealthy. Latency defaults follow the seeds'
# health checks (PostgreSQL < 1 s healthy, < 3 s degraded; Redis < 100 ms / 500 ms).
DEFAULT_THRESHOLDS = {
    'postgres': dict(latency_degraded_ms=1000, latency_unhealthy_ms=3000, degraded_pct=80, unhealthy_pct=95),
    'redis': dict(latency_degraded_ms=100, latency_unhealthy_ms=500, degraded_pct=80, unhealthy_pct=95),
    'http': dict(latency_degraded_ms=500, latency_unhealthy_ms=2000),
    'disk': dict(degraded_pct=70, unhealthy_pct=90),
    'memory': dict(degraded_pct=85, unhealthy_pct=95),
    'load': dict(degraded_load=1.5, unhealthy_load=3.0),
    'process': {},
    'systemd': {},
    'docker': {},
    'command': {},
    'maintenance': {},
}
THRESHOLD_PAIRS = (
    ('latency_degraded_ms', 'latency_unhealthy_ms'),
    ('degraded_pct', 'unhealthy_pct'),
    ('degraded_load', 'unhealthy_load'),
)
PERCENT_KEYS = ('degraded_pct', 'unhealthy_pct')


class ProbeConfigError(ValueError):
    """A probe definition that cannot be run as given (caught before probing)."""


def resolve_thresholds(probe):
    """Merge a probe's threshold options over its kind's defaults and check them.

    Raises :class:`ProbeConfigError` for a negative threshold, a percentage
    over 100, or a degraded threshold above the unhealthy one.
    """
    thresholds = dict(DEFAULT_THRESHOLDS[probe['kind']])
    for pair in THRESHOLD_PAIRS:
        for key in pair:
            if probe.get(key) is not None:
                thresholds[key] = probe[key]
    for key, value in thresholds.items():
        if value is not None and value < 0:
            raise ProbeConfigError('probe %r: %s must not be negative (got %s)' % (probe['name'], key, value))
        if key in PERCENT_KEYS and value is not None and value > 100:
            raise ProbeConfigError('probe %r: %s is a percentage, at most 100 (got %s)' % (probe['name'], key, value))
    for degraded_key, unhealthy_key in THRESHOLD_PAIRS:
        low, high = thresholds.get(degraded_key), thresholds.get(unhealthy_key)
        if low is not None and high is not None and low > high:
            raise ProbeConfigError(
                'probe %r: thresholds out of order: %s (%s) must not be above %s (%s)'
                % (probe['name'], degraded_key, low, unhealthy_key, high))
    return thresholds


class Finding:
    """What one probe found: the worst status seen, its reasons, details, commands."""

    def __init__(self):
        self.status = 'healthy'
        self.reasons = []
        self.details = {}
        self.commands = []
        self.response_ms = None
        self.summary = ''

    def flag(self, status, reason):
        """Record a reason; the probe's status becomes the worse of the two."""
        self.status = worst([self.status, status])
        if status != 'healthy':
            self.reasons.append(reason)

    def check(self, value, degraded_at, unhealthy_at, reason):
        """Grade ``value`` and record ``reason`` when it is not healthy."""
        self.flag(grade(value, degraded_at, unhealthy_at), reason)

    def check_latency(self, thresholds, what):
        self.check(self.response_ms, thresholds.get('latency_degraded_ms'), thresholds.get('latency_unhealthy_ms'),
                   '%s took %s ms (degraded at %s ms, unhealthy at %s ms)'
                   % (what, self.response_ms, thresholds.get('latency_degraded_ms'),
                      thresholds.get('latency_unhealthy_ms')))


def escape_label(value):
    return str(value).replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def prometheus_text(results, overall, timestamp):
    """Render results in the Prometheus text exposition format (node_exporter textfile collector)."""
    lines = [
        '# HELP engineroom_health_probe_status Probe status: 0 healthy, 1 degraded, 2 unhealthy.',
        '# TYPE engineroom_health_probe_status gauge',
    ]
    labels = ['name="%s",kind="%s"' % (escape_label(r['name']), escape_label(r['kind'])) for r in results]
    for label, result in zip(labels, results):
        lines.append('engineroom_health_probe_status{%s} %d' % (label, STATUSES.index(result['status'])))
    lines += [
        '# HELP engineroom_health_probe_response_seconds Time the probe took to answer.',
        '# TYPE engineroom_health_probe_response_seconds gauge',
    ]
    for label, result in zip(labels, results):
        lines.append('engineroom_health_probe_response_seconds{%s} %.4f' % (label, result['response_ms'] / 1000.0))
    lines += [
        '# HELP engineroom_health_status Worst status of all probes: 0 healthy, 1 degraded, 2 unhealthy.',
        '# TYPE engineroom_health_status gauge',
        'engineroom_health_status %d' % STATUSES.index(overall),
        '# HELP engineroom_health_last_run_timestamp_seconds When the probes last ran (Unix time).',
        '# TYPE engineroom_health_last_run_timestamp_seconds gauge',
        'engineroom_health_last_run_timestamp_seconds %.3f' % timestamp,
    ]
    return '\n'.join(lines) + '\n'

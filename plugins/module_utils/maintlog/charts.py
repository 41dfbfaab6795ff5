# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's charts: grouped by concern, titled for people, flat series as one line, small.

Every numeric series of a host (``(module, key) -> [(time, value)]``) goes under one concern
(database, backups, disks, logs, health, other). A series that moves gets a line chart; a flat
one (or a timing) a one-line sparkline with its current value. Titles name the probe or entry and
the last components of a path (the full key is the hover ``<title>``); capacity figures carry their
growth per month (the least-squares fit of capacity_review). Lines are downsampled to at most
``CHART_POINTS`` points, so a year of daily runs costs no more than a quarter.
"""

from __future__ import annotations

import html

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.capacity import DAYS_PER_MONTH, history_gap, linear_fit

CONCERNS = ('backups', 'database', 'disks', 'logs', 'health', 'other')
CHART_POINTS = 60
SPARK_POINTS = 24
FLAT_SHARE = 0.01           # a series whose range is within 1 % of its size is flat
DISK_FIGURES = ('used_pct', 'used_bytes', 'free_bytes', 'size_bytes', 'inodes_used_pct')
TREND_KEYS = ('database_bytes_total', 'used_pct', 'used_bytes', 'snapshot_bytes')


def esc(value):
    return html.escape(str(value), quote=True)


def figure_of(key):
    """The last word of a key: ``/srv used_pct`` -> ``used_pct``."""
    return key.rsplit(' ', 1)[-1].rsplit(': ', 1)[-1]


def concern_of(module, key):
    name = str(module).rsplit('.', 1)[-1]
    if '/' in key and figure_of(key) in DISK_FIGURES:
        return 'disks'
    if name.startswith('snapshot') or 'snapshot' in key:
        return 'backups'
    if name.startswith(('pg_', 'db_')):
        return 'database'
    if name.startswith('log'):
        return 'logs'
    if name in ('health_probe', 'redis_health', 'container_recovery', 'docker_health'):
        return 'health'
    return 'other'


def short_path(path, parts=2):
    pieces = [p for p in path.split('/') if p]
    if len(pieces) <= parts:
        return path
    return '…/' + '/'.join(pieces[-parts:])


def title_of(module, key):
    """``probe data: /var/lib/postgresql used_pct`` -> ``data …/lib/postgresql used %``; plain keys stay."""
    name, rest = '', key
    if ': ' in key:
        head, rest = key.split(': ', 1)
        name = head.split(' ', 1)[-1]
    words = [short_path(w) if w.startswith('/') else w for w in rest.split(' ')]
    words[-1] = words[-1].replace('_pct', ' %').replace('_', ' ')
    title = ' '.join([name] + words if name else words)
    return title if title else str(module).rsplit('.', 1)[-1]


def downsample(points, limit):
    """At most ``limit`` points: evenly spaced ones, always the first and the last."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / float(limit - 1)
    return [points[int(round(i * step))] for i in range(limit)]


def is_flat(values):
    low, high = min(values), max(values)
    return high - low <= FLAT_SHARE * max(abs(high), abs(low), 1e-9)


def trend_of(key, points):
    """Growth per month of a capacity figure, capacity_review's least-squares fit over every point;
    None when the key is no capacity figure or the history too short (capacity's own rule)."""
    figure = figure_of(key)
    if not any(figure.endswith(k) for k in TREND_KEYS) or len(points) < 3:
        return None
    if history_gap([points[0][0], points[-1][0]]):  # months and span depend only on the first and the last time
        return None
    origin = points[0][0]
    fit = linear_fit([((when - origin).total_seconds() / 86400.0, value) for when, value in points])
    return None if fit is None else fit[0] * DAYS_PER_MONTH


def scaled(points, width, height, pad, key):
    stamps = [t.timestamp() for t, _v in points]
    values = [v for _t, v in points]
    x_low, x_high = min(stamps), max(stamps)
    y_low, y_high = min([0.0] + values), max(values)
    if key.endswith('_pct'):
        y_high = max(y_high, 100.0)
    x_span = (x_high - x_low) or 1.0
    y_span = (y_high - y_low) or 1.0
    coords = ['%.0f,%.0f' % (pad + (s - x_low) / x_span * (width - 2 * pad), pad + (height - 2 * pad) * (1 - (v - y_low) / y_span))
              for s, v in zip(stamps, values)]
    return coords, y_low, y_high


def trend_text(key, per_month, fmt):
    if per_month is None:
        return ''
    sign = '+' if per_month >= 0 else '−'
    unit = '%.2f %%' % abs(per_month) if figure_of(key).endswith('_pct') else fmt(key, abs(per_month))
    return '%s%s/month' % (sign, unit)


def line_chart(module, key, points, fmt):
    """A line chart of a series that moves: title, current value, range, growth per month."""
    width = 300
    shown = downsample(points, CHART_POINTS)
    coords, y_low, y_high = scaled(shown, width, 60, 4, key)
    trend = trend_text(key, trend_of(key, points), fmt)
    return ('<figure class="chart" data-metric="%s" data-module="%s"><figcaption><b title="%s">%s</b>'
            '<span class="now">%s</span></figcaption><svg viewBox="0 0 %d 60" width="100%%" height="60" preserveAspectRatio="none" role="img" '
            'aria-label="%s"><title>%s</title><polyline points="%s"/></svg><div class="range">%s … %s · %s to %s%s</div>'
            '</figure>' % (esc(key), esc(module), esc('%s %s' % (module, key)), esc(title_of(module, key)), esc(fmt(key, points[-1][1])),
                           width, esc('%s over time' % title_of(module, key)), esc('%s %s' % (module, key)),
                           ' '.join(coords), esc(fmt(key, y_low)), esc(fmt(key, y_high)),
                           esc(points[0][0].strftime('%Y-%m-%d')), esc(points[-1][0].strftime('%Y-%m-%d')),
                           esc(' · ' + trend) if trend else ''))


def sparkline_row(module, key, points, fmt):
    """One table row: title (full key on hover), a small line, the current value, and whether it is flat."""
    values = [v for _t, v in points]
    flat = is_flat(values)
    coords, _low, _high = scaled(downsample(points, 2 if flat else SPARK_POINTS), 90, 16, 2, key)
    trend = trend_text(key, trend_of(key, points), fmt)
    return ('<tr class="spark" data-metric="%s" data-module="%s"><th title="%s">%s</th><td><svg viewBox="0 0 90 16" '
            'width="90" height="16" aria-hidden="true"><polyline points="%s"/></svg></td><td class="now">%s</td>'
            '<td class="mod">%s</td></tr>' % (
                esc(key), esc(module), esc('%s %s' % (module, key)), esc(title_of(module, key)), ' '.join(coords),
                esc(fmt(key, values[-1])), esc(('flat over %d results' % len(values)) if flat else
                                               (trend or '%d results' % len(values)))))


def wanted_chart(key, values):
    """A line chart for a series that moves and is no timing; everything else is a sparkline row."""
    return len(values) > 2 and not is_flat(values) and not figure_of(key).endswith(('_ms', '_s')) \
        and figure_of(key) not in ('snapshots_kept', 'snapshots_pruned', 'probes_total')


def concern_sections(series, fmt):
    """The charts of one host, one ``<div class="concern">`` per concern that has any."""
    groups = {}
    for (module, key), points in sorted(series.items()):
        groups.setdefault(concern_of(module, key), []).append((module, key, points))
    out = []
    for concern in CONCERNS:
        if concern not in groups:
            continue
        charts = [line_chart(m, k, p, fmt) for m, k, p in groups[concern] if wanted_chart(k, [v for _t, v in p])]
        rows = [sparkline_row(m, k, p, fmt) for m, k, p in groups[concern] if not wanted_chart(k, [v for _t, v in p])]
        out.append('<div class="concern" data-concern="%s"><h4>%s</h4>%s%s</div>' % (
            concern, concern, '<div class="charts">%s</div>' % ''.join(charts) if charts else '',
            '<table class="sparks">%s</table>' % ''.join(rows) if rows else ''))
    return ''.join(out)

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capacity review: monthly figures, growth and the date a disk reaches a threshold.

The figures come from the maintenance log that every calendar run writes, so
the review needs no access to the hosts and can look back as far as the log
goes. Three modules' results carry them (see ``samples_of``): pg_insight's
``database_bytes_total``, snapshot_archive's ``<tier>_snapshot_bytes`` and the
health probe's disk figures (``<path> used_pct``, ``used_bytes``, ``free_bytes``).

Growth is a least-squares line over every sample, not over monthly points, so
that a month with daily samples and one with a single sample both count for
what they are. A projection starts from the latest measured use and applies
the fitted growth: it is never drawn from less than ``MIN_MONTHS`` calendar
months spanning ``MIN_SPAN_DAYS``, never from a flat or shrinking trend, and
never further than ``HORIZON_DAYS`` - in each case the result says why there is
no date instead of inventing one.
"""

from __future__ import annotations

import datetime
import json

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.record import is_number
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc, parse_time
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import format_size

DAYS_PER_MONTH = 365.2425 / 12   # the mean Gregorian month: growth "per month" whatever the month's length
MIN_MONTHS = 2
MIN_SPAN_DAYS = 28
HORIZON_DAYS = 3653              # ten years: a date further out says nothing about a disk
INSIGHT = 'engineroom.maintenance.pg_insight'
SNAPSHOT = 'engineroom.maintenance.snapshot_archive'
HEALTH = 'engineroom.maintenance.health_probe'
TIERS = ('database', 'full')
DISK_FIGURES = ('used_pct', 'used_bytes', 'free_bytes')
GOOD_TASK_STATUSES = ('ok', 'changed')
PROJECTION_ORDER = ('reached', 'projected', 'beyond_horizon', 'not_growing', 'not_enough_history')


def month_of(when):
    return when.strftime('%Y-%m')


def disk_samples(entry_metrics):
    """``{path: figures}`` of one health probe entry: paths with used %, used and free bytes."""
    found = {}
    for key, value in entry_metrics.items():
        if not key.endswith(' used_pct') or not is_number(value):
            continue
        path = key[:-len(' used_pct')]
        figures = dict((name, entry_metrics.get('%s %s' % (path, name))) for name in DISK_FIGURES)
        if path and all(is_number(v) for v in figures.values()):
            size = entry_metrics.get('%s size_bytes' % path)
            figures['size_bytes'] = size if is_number(size) else None
            found[path] = figures
    return found


def samples_of(events, host):
    """The capacity figures of ``host`` in the log, as ``(series, time, figures)``, in log order.

    ``series`` is ``('database', '')``, ``('snapshot', tier)`` or ``('disk', path)``. A
    ``database_bytes_total`` of 0 means pg_insight did not collect the ``database_sizes``
    section (a cluster is never empty), so it is no sample.
    """
    samples = []
    for event in events:
        if event.get('event') != 'task' or event.get('host') != host or event.get('status') not in GOOD_TASK_STATUSES:
            continue
        when = parse_time(event.get('time'))
        metrics = event.get('metrics')
        if when is None or not isinstance(metrics, dict):
            continue
        module = event.get('module')
        if module == INSIGHT:
            value = metrics.get('database_bytes_total')
            if is_number(value) and value > 0:
                samples.append((('database', ''), when, dict(bytes=value)))
        elif module == SNAPSHOT:
            for tier in TIERS:
                value = metrics.get('%s_snapshot_bytes' % tier)
                if is_number(value) and value > 0:
                    samples.append((('snapshot', tier), when, dict(bytes=value)))
        elif module == HEALTH:
            items = event.get('items') if isinstance(event.get('items'), dict) else {}
            for entries in items.values():
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, dict) and isinstance(entry.get('metrics'), dict):
                        for path, figures in sorted(disk_samples(entry['metrics']).items()):
                            samples.append((('disk', path), when, figures))
    return samples


def within_window(samples, months):
    """The samples of the last ``months`` calendar months, counted back from the newest sample's month."""
    if not samples:
        return []
    newest = max(when for _series, when, _figures in samples)
    first_year, first_month = divmod(newest.year * 12 + newest.month - 1 - (months - 1), 12)
    start = '%04d-%02d' % (first_year, first_month + 1)
    return [s for s in samples if month_of(s[1]) >= start]


def linear_fit(points):
    """Least-squares line through ``points`` (days, value): (slope per day, r squared or None).

    None when every point has the same time (no slope can be told). r squared is None for
    perfectly flat values, where it is undefined.
    """
    count = len(points)
    mean_x = sum(x for x, _y in points) / count
    mean_y = sum(y for _x, y in points) / count
    sxx = sum((x - mean_x) ** 2 for x, _y in points)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    syy = sum((y - mean_y) ** 2 for _x, y in points)
    slope = sxy / sxx
    r_squared = round(sxy * sxy / (sxx * syy), 4) if syy else None
    return slope, r_squared


def history_gap(times):
    """Why ``times`` are too little history for a growth figure, or None when they are enough."""
    months = sorted(set(month_of(t) for t in times))
    if len(months) < MIN_MONTHS:
        return ('%d sample%s in %d calendar month%s; at least %d months are needed'
                % (len(times), '' if len(times) == 1 else 's', len(months), '' if len(months) == 1 else 's', MIN_MONTHS))
    span = (max(times) - min(times)).total_seconds() / 86400.0
    if span < MIN_SPAN_DAYS:
        return 'the samples span %.1f days; at least %d days are needed' % (span, MIN_SPAN_DAYS)
    return None


def growth_of(points, fields):
    """Growth per month of ``fields`` over ``points`` [(time, figures)], oldest first.

    Returns ``status`` (V(ok) or V(not_enough_history)), ``reason``, the sample count, the calendar
    months covered, first and last time, the latest figures and ``<field>_per_month`` with the fit's
    ``r_squared`` per field.
    """
    times = [when for when, _figures in points]
    growth = dict(status='not_enough_history', reason=None, samples=len(points),
                  months=len(set(month_of(t) for t in times)),
                  first=iso_utc(times[0]) if times else None, last=iso_utc(times[-1]) if times else None)
    growth.update(('%s_latest' % field, points[-1][1][field] if points else None) for field in fields)
    growth.update(('%s_per_month' % field, None) for field in fields)
    growth['reason'] = history_gap(times) if times else 'no samples in the maintenance log'
    if growth['reason']:
        return growth
    origin = times[0]
    fits = {}
    for field in fields:
        fit = linear_fit([((when - origin).total_seconds() / 86400.0, figures[field]) for when, figures in points])
        if fit is not None:
            fits[field] = fit
    growth.update(('%s_per_month' % field, round(slope * DAYS_PER_MONTH, 3) if field.endswith('_pct')
                   else int(round(slope * DAYS_PER_MONTH))) for field, (slope, _r2) in fits.items())
    growth['r_squared'] = dict((field, r2) for field, (_slope, r2) in fits.items())
    growth['status'], growth['reason'] = 'ok', None
    return growth


def disk_reached(figures, threshold_pct):
    """Whether a disk sample is at or above the threshold, in bytes of its usable space (used + free)."""
    return figures['used_bytes'] >= threshold_pct / 100.0 * (figures['used_bytes'] + figures['free_bytes'])


def project_disk(path, points, growth, threshold_pct):
    """When ``path`` reaches ``threshold_pct``: from the latest measured use at the fitted bytes per month.

    Bytes rather than percent, so a resized filesystem keeps its growth rate and the target is
    the threshold of its latest size.
    """
    when, latest = points[-1]
    capacity = latest['used_bytes'] + latest['free_bytes']
    target = threshold_pct / 100.0 * capacity
    projection = dict(path=path, status=None, date=None, days=None, reason=None, used_pct=latest['used_pct'],
                      used_bytes=latest['used_bytes'], capacity_bytes=capacity, target_bytes=int(target),
                      bytes_per_month=growth['used_bytes_per_month'], as_of=iso_utc(when))
    if disk_reached(latest, threshold_pct):
        since = when
        for earlier, figures in reversed(points):
            if not disk_reached(figures, threshold_pct):
                break
            since = earlier
        projection.update(status='reached', date=since.strftime('%Y-%m-%d'), days=0.0,
                          reason='%s is at %.1f %% (threshold %g %%) since %s'
                                 % (path, latest['used_pct'], threshold_pct, since.strftime('%Y-%m-%d')))
        return projection
    if growth['status'] != 'ok':
        projection.update(status='not_enough_history', reason='%s: not enough history (%s)' % (path, growth['reason']))
        return projection
    per_month = growth['used_bytes_per_month']
    if per_month is None or per_month <= 0:
        projection.update(status='not_growing',
                          reason='%s is not growing (%s per month over %d samples): no date to project'
                                 % (path, signed_size(per_month or 0), growth['samples']))
        return projection
    days = (target - latest['used_bytes']) / (per_month / DAYS_PER_MONTH)
    if days > HORIZON_DAYS:
        projection.update(status='beyond_horizon',
                          reason='%s grows %s per month: %g %% is more than %d years away'
                                 % (path, signed_size(per_month), threshold_pct, HORIZON_DAYS // 365))
        return projection
    date = when + datetime.timedelta(days=days)
    projection.update(status='projected', date=date.strftime('%Y-%m-%d'), days=round(days, 1),
                      reason='%s reaches %g %% around %s: %.1f %% used on %s, growing %s per month'
                             % (path, threshold_pct, date.strftime('%Y-%m-%d'), latest['used_pct'],
                                when.strftime('%Y-%m-%d'), signed_size(per_month)))
    return projection


def overall_projection(disks, threshold_pct):
    """The projection that needs attention first: a reached disk, else the earliest date, else why none."""
    if not disks:
        return dict(status='not_enough_history', date=None, path=None, threshold_pct=threshold_pct,
                    reason='no disk figures in the maintenance log: the health check\'s disk probe records them')
    rank = sorted(disks, key=lambda d: (PROJECTION_ORDER.index(d['status']), d['date'] or '', d['path']))
    first = rank[0]
    reason = first['reason']
    if first['date'] is None and len(disks) > 1:
        # Each reason starts with its path: say a shared "not enough history" once for all paths.
        tails = set(d['reason'][len(d['path']) + 2:] for d in disks)
        if len(tails) == 1 and all(d['status'] == 'not_enough_history' for d in disks):
            reason = '%s: %s' % (', '.join(d['path'] for d in disks), tails.pop())
        else:
            reason = '; '.join(d['reason'] for d in disks)
    return dict(status=first['status'], date=first['date'], path=first['path'] if first['date'] else None,
                threshold_pct=threshold_pct, reason=reason)


def monthly_table(series_points, months):
    """One entry per calendar month from the first to the last month with figures (gaps included)."""
    if not months:
        return []
    first, last = months[0], months[-1]
    year, month = int(first[:4]), int(first[5:])
    names = []
    while True:
        names.append('%04d-%02d' % (year, month))
        if names[-1] >= last:
            break
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    table = []
    for name in names:
        entry = dict(month=name, samples=0)
        for (kind, label), points in sorted(series_points.items()):
            inside = [figures for when, figures in points if month_of(when) == name]
            entry['samples'] += len(inside)
            if kind == 'disk':
                entry.setdefault('disks', []).append(dict(
                    path=label, samples=len(inside),
                    used_pct_last=inside[-1]['used_pct'] if inside else None,
                    used_pct_max=max(f['used_pct'] for f in inside) if inside else None,
                    used_bytes_last=inside[-1]['used_bytes'] if inside else None,
                    used_bytes_max=max(f['used_bytes'] for f in inside) if inside else None,
                    size_bytes=inside[-1]['size_bytes'] if inside else None))
                continue
            prefix = 'database' if kind == 'database' else '%s_snapshot' % label
            entry['%s_bytes_last' % prefix] = inside[-1]['bytes'] if inside else None
            entry['%s_bytes_max' % prefix] = max(f['bytes'] for f in inside) if inside else None
        for prefix in ['database'] + ['%s_snapshot' % tier for tier in TIERS]:
            entry.setdefault('%s_bytes_last' % prefix, None)
            entry.setdefault('%s_bytes_max' % prefix, None)
        entry.setdefault('disks', [])
        table.append(entry)
    return table


def review(events, host, threshold_pct, months):
    """The whole review of ``host`` from the log's ``events``: a dict of the module's result keys."""
    samples = within_window(samples_of(events, host), months)
    series_points = {}
    for series, when, figures in sorted(samples, key=lambda s: s[1]):
        series_points.setdefault(series, []).append((when, figures))
    covered = sorted(set(month_of(when) for _series, when, _figures in samples))
    database = growth_of(series_points.get(('database', ''), []), ('bytes',))
    snapshots = dict((tier, growth_of(series_points.get(('snapshot', tier), []), ('bytes',))) for tier in TIERS)
    disks, projections = [], []
    for (kind, path), points in sorted(series_points.items()):
        if kind != 'disk':
            continue
        growth = growth_of(points, ('used_pct', 'used_bytes'))
        disks.append(dict(growth, path=path))
        projections.append(project_disk(path, points, growth, threshold_pct))
    projection = overall_projection(projections, threshold_pct)
    projection['disks'] = projections
    as_of = max(when for _series, when, _figures in samples) if samples else None
    return dict(host=host, as_of=iso_utc(as_of) if as_of else None, threshold_pct=threshold_pct,
                months=monthly_table(series_points, covered),
                growth=dict(database=database, snapshots=snapshots, disks=disks),
                projection=projection, samples=len(samples))


# --- words --------------------------------------------------------------------------------

def signed_size(count):
    return ('+' if count > 0 else '-' if count < 0 else '') + format_size(abs(count))


def size_or_dash(count):
    return format_size(count) if count is not None else '–'


def growth_phrase(name, growth, field='bytes'):
    if growth['status'] != 'ok':
        return None
    return '%s %s %s/month' % (name, format_size(growth['%s_latest' % field]), signed_size(growth['%s_per_month' % field]))


def summary_of(result):
    """One line for the maintenance log: the growth figures and the projection, or why there are none."""
    host, growth, projection = result['host'], result['growth'], result['projection']
    if not result['samples']:
        return ('capacity of %s: no capacity figures in the maintenance log (pg_insight database sizes, snapshot sizes, '
                'disk probes): no projection' % host)
    head = 'capacity of %s as of %s (%d month%s, %d samples)' % (
        host, result['as_of'][:10], len(result['months']), '' if len(result['months']) == 1 else 's', result['samples'])
    parts = [growth_phrase('database', growth['database'])]
    parts += [growth_phrase('%s snapshot' % tier, growth['snapshots'][tier]) for tier in TIERS]
    parts += ['disk %s %.1f %% %+.2f pp/month' % (d['path'], d['used_pct_latest'], d['used_pct_per_month'])
              for d in growth['disks'] if d['status'] == 'ok']
    parts = [p for p in parts if p]
    if not parts:
        parts = ['not enough history for growth figures (at least %d calendar months spanning %d days)'
                 % (MIN_MONTHS, MIN_SPAN_DAYS)]
    if projection['date']:
        verdict = ('%g %% disk reached on %s since %s' if projection['status'] == 'reached'
                   else '%g %% disk projected for %s on %s') % (projection['threshold_pct'], projection['path'],
                                                                projection['date'])
    else:
        verdict = 'no %g %% date: %s' % (projection['threshold_pct'], projection['reason'])
    return '%s: %s; %s' % (head, ', '.join(parts), verdict)


def render_json(result):
    return json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False) + '\n'


def pct(value):
    return '%.1f %%' % value


def last_and_max(last, peak, form):
    """A month's cell: its latest value, and its maximum when that was higher."""
    if last is None:
        return '–'
    return form(last) if last == peak else '%s (max %s)' % (form(last), form(peak))


def render_markdown(result):
    """The review as a Markdown page: projection first, then growth, then the months."""
    threshold = result['threshold_pct']
    out = ['# Capacity review: %s' % result['host'], '']
    out.append('Figures from the maintenance log up to %s; growth is a least-squares line over every sample, per '
               'mean calendar month; the threshold is %g %% of each disk.'
               % (result['as_of'].replace('T', ' ').replace('Z', ' UTC') if result['as_of'] else 'nothing recorded', threshold))
    out += ['', '## When the disks reach %g %%' % threshold, '']
    projection = result['projection']
    out.append('**%s**' % projection['reason'])
    if projection['disks']:
        out += ['', '| disk | used (latest) | growth / month | %g %% reached |' % threshold, '| --- | --- | --- | --- |']
        for disk in projection['disks']:
            growth = next(g for g in result['growth']['disks'] if g['path'] == disk['path'])
            rate = ('%+.2f pp, %s' % (growth['used_pct_per_month'], signed_size(growth['used_bytes_per_month']))
                    if growth['status'] == 'ok' else 'not enough history')
            when = {'reached': 'since %s' % disk['date'], 'projected': disk['date']}.get(disk['status'],
                                                                                         disk['status'].replace('_', ' '))
            out.append('| %s | %.1f %% (%s of %s) | %s | %s |' % (disk['path'], disk['used_pct'], format_size(disk['used_bytes']),
                                                                  format_size(disk['capacity_bytes']), rate, when))
    out += ['', '## Growth per month', '', '| figure | latest | growth / month | samples | months | fit r² |',
            '| --- | --- | --- | --- | --- | --- |']
    rows = [('database size (all databases)', result['growth']['database'], 'bytes')]
    rows += [('%s snapshot' % tier, result['growth']['snapshots'][tier], 'bytes') for tier in TIERS]
    rows += [('disk %s used' % g['path'], g, 'used_bytes') for g in result['growth']['disks']]
    for name, growth, field in rows:
        latest = size_or_dash(growth['%s_latest' % field])
        if growth['status'] == 'ok':
            rate = signed_size(growth['%s_per_month' % field])
            if field == 'used_bytes':
                latest += ' (%.1f %%)' % growth['used_pct_latest']
                rate += ' (%+.2f pp)' % growth['used_pct_per_month']
            r2 = growth['r_squared'].get(field)
            fit = '%.2f' % r2 if r2 is not None else 'flat'
        else:
            rate, fit = 'not enough history: %s' % growth['reason'], '–'
        out.append('| %s | %s | %s | %d | %d | %s |' % (name, latest, rate, growth['samples'], growth['months'], fit))
    disks = [d['path'] for d in result['growth']['disks']]
    out += ['', '## Per month (UTC): latest value, maximum when higher', '']
    if result['months']:
        out.append('| month | samples | database | database snapshot | full snapshot |%s' % ''.join(' %s used |' % p for p in disks))
        out.append('| --- ' * (5 + len(disks)) + '|')
        for month in result['months']:
            cells = [month['month'], str(month['samples'])]
            for prefix in ['database'] + ['%s_snapshot' % tier for tier in TIERS]:
                cells.append(last_and_max(month['%s_bytes_last' % prefix], month['%s_bytes_max' % prefix], format_size))
            cells += [last_and_max(disk['used_pct_last'], disk['used_pct_max'], pct) for disk in month['disks']]
            out.append('| %s |' % ' | '.join(cells))
    else:
        out.append('No capacity figures recorded for this host.')
    return '\n'.join(out) + '\n'

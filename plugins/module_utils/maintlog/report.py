# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance report: one self-contained HTML page from the history of ``maintenance.jsonl``.

No per-module code, like the callback that writes the log: every module's
``metrics`` become a chart per key over time per host, every list of
``{name, status}`` entries (health probes, vacuumed tables, log policies)
becomes a status grid over time, non-good entries of the latest result and any
``violations`` list are the open violations, and failed or unreachable tasks
the last failures. Charts are inline SVG and the style inline CSS: the page
works offline, attached to a mail or opened from a share.
"""

from __future__ import annotations

import html
import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.answers import answers_of
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.files import JSONL_NAME
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.history import build_runs, hosts_of
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.record import (
    ENDED_WITHOUT_SUMMARY,
    ENDED_WITHOUT_SUMMARY_TEXT,
    FAILURE_STATUSES,
    is_number,
)

# Statuses of list entries that need nobody's attention; any other status is an open violation.
GOOD_STATUSES = frozenset(('healthy', 'ok', 'pass', 'passed', 'compliant', 'done', 'planned', 'skipped',
                           'unchanged', 'changed', 'verified', 'kept', 'removed', 'vacuumed', 'analyzed',
                           'rotated', 'released', 'held', 'success', 'succeeded'))
# Metric keys shown first (snapshot sizes, dead tuples removed, disk usage); every other key is
# charted too, under "All figures".
FEATURED_KEYS = ('size_bytes', 'bytes_written', 'dead_tuples_removed', 'used_pct', 'free_pct')
STATUS_COLOURS = dict(ok='#2f9e62', changed='#3a7fc4', failed='#d94841', unreachable='#8155ba',
                      skipped='#a3acb5', incomplete='#6f8fb3', running='#6f8fb3', rescued='#e0a526', ignored='#8a96a3',
                      ended_without_summary='#b5562b', healthy='#2f9e62', degraded='#e0a526',
                      unhealthy='#d94841')
NEUTRAL_BAD = '#d94841'
ITEM_CHART_LIMIT = 12
WARNING_STATUSES = frozenset(('degraded', 'warning', 'warn', 'stale', 'incomplete', 'deferred', 'reported'))


def short_module(name):
    return str(name).rsplit('.', 1)[-1]


class HostView:
    """Everything the page shows for one host."""

    def __init__(self, host, runs):
        self.host = host
        self.timeline = [(run, run.status_of(host)) for run in runs
                         if host in run.host_status or any(t['host'] == host for t in run.tasks)]
        self.series = {}      # (module, key) -> [(time, value)]
        self.grids = {}       # (module, list key) -> [(time, {name: (status, message)})]
        self.latest_violations = {}  # module -> (time, [violation dicts])
        self.failures = []
        for run, _status in self.timeline:
            for task in run.tasks:
                if task['host'] == host and task.get('_time') is not None:
                    self.add_task(run, task)

    def add_task(self, run, task):
        when, module = task['_time'], str(task.get('module', ''))
        for key, value in sorted((task.get('metrics') or {}).items()):
            if is_number(value):
                self.series.setdefault((module, key), []).append((when, value))
        for list_key, entries in sorted((task.get('items') or {}).items()):
            cells = {}
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict) or 'name' not in entry:
                    continue
                cells[str(entry['name'])] = (str(entry.get('status')), entry.get('message') or '')
                if len(entries) > ITEM_CHART_LIMIT:
                    continue  # a long list (every vacuumed table) gets its status grid, not a chart per entry
                for key, value in sorted((entry.get('metrics') or {}).items()):
                    if is_number(value):
                        self.series.setdefault((module, '%s %s: %s' % (list_key.rstrip('s'), entry['name'], key)),
                                               []).append((when, value))
            self.grids.setdefault((module, list_key), []).append((when, cells))
        if isinstance(task.get('violations'), list):
            self.latest_violations[module] = (when, [v for v in task['violations'] if isinstance(v, dict)])
        if task.get('status') in FAILURE_STATUSES:
            self.failures.append((run, task))

    def count(self, *statuses):
        return sum(1 for _run, task in self.failures if task['status'] in statuses)

    def open_violations(self):
        """Non-good entries in the latest result of each list, with the time they have been so since."""
        found = []
        for (module, list_key), columns in sorted(self.grids.items()):
            latest_time, latest = columns[-1]
            for name, (status, message) in sorted(latest.items()):
                if status.lower() in GOOD_STATUSES:
                    continue
                since = latest_time
                for when, cells in reversed(columns):
                    if name in cells and cells[name][0].lower() not in GOOD_STATUSES:
                        since = when
                    else:
                        break
                found.append(dict(module=module, what='%s %s' % (list_key.rstrip('s'), name), status=status,
                                  message=message, since=since))
        for module, (when, violations) in sorted(self.latest_violations.items()):
            for violation in violations:
                what = (violation.get('name') or violation.get('path') or violation.get('rule') or violation.get('code')
                        or violation.get('kind') or 'violation')
                detail = violation.get('message') or ', '.join('%s=%s' % (k, v) for k, v in sorted(violation.items())
                                                               if k not in ('name', 'status', 'kind'))
                found.append(dict(module=module, what=str(what), status=str(violation.get('status') or 'open'),
                                  message=str(detail), since=when))
        return found


# --- formatting -------------------------------------------------------------------------

def esc(value):
    return html.escape(str(value), quote=True)


def human_number(value):
    magnitude = abs(value)
    for limit, suffix in ((1e9, ' G'), (1e6, ' M'), (1e4, ' k')):
        if magnitude >= limit:
            return '%.1f%s' % (value / limit, suffix)
    return '{:,}'.format(value) if isinstance(value, int) else '%.4g' % value


def format_value(key, value):
    """A value in the unit its metric key names."""
    key = key.rsplit(' ', 1)[-1]
    if key.endswith('_bytes') or key == 'bytes_written':
        size = float(value)
        for unit in ('B', 'KB', 'MB', 'GB', 'TB'):
            if abs(size) < 1024 or unit == 'TB':
                return ('%d %s' % (size, unit)) if unit == 'B' else '%.1f %s' % (size, unit)
            size /= 1024.0
    if key.endswith('_pct'):
        return '%.1f %%' % value
    if key.endswith('_ms'):
        return '%.1f s' % (value / 1000.0) if abs(value) >= 1000 else '%.4g ms' % value
    if key.endswith('_s'):
        return '%.4g s' % value
    return human_number(value)


def short_time(when):
    return when.strftime('%m-%d %H:%M')


def colour(status):
    """Green for any good status, amber for warnings, red for anything else a module reports."""
    status = str(status).lower()
    if status in STATUS_COLOURS:
        return STATUS_COLOURS[status]
    if status in GOOD_STATUSES:
        return STATUS_COLOURS['ok']
    return STATUS_COLOURS['degraded'] if status in WARNING_STATUSES else NEUTRAL_BAD


def pill(status):
    label = ENDED_WITHOUT_SUMMARY_TEXT if status == ENDED_WITHOUT_SUMMARY else status
    return '<span class="pill" style="background:%s">%s</span>' % (colour(status.split(' ')[0]), esc(label))


def run_status(run):
    """A run's status for the page: its end's, or ``running`` (the report's own run among them) without one."""
    return run.status or 'running'


def last_task_note(run):
    """Where a run that ended without a summary stopped: its last recorded task."""
    last = (run.end or {}).get('last_task') if run.ended_without_summary else None
    if not last:
        return ''
    return '<div class="mod">last task: %s on %s (%s) at %s</div>' % (
        esc(last.get('task')), esc(last.get('host')), esc(last.get('status')), esc(last.get('time')))


def line_chart(module, key, points):
    """A small SVG line chart of one metric over time, with its latest value."""
    width, height, left, right, top, bottom = 340, 176, 56, 14, 50, 26
    values = [v for _t, v in points]
    stamps = [t.timestamp() for t, _v in points]
    x_low, x_high = min(stamps), max(stamps)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    y_low = min([0.0] + values)
    y_high = max(values)
    if key.endswith('_pct'):
        y_low, y_high = min(y_low, 0.0), max(y_high, 100.0)
    if y_high == y_low:
        y_high = y_low + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(stamp):
        return left + (stamp - x_low) / (x_high - x_low) * plot_w

    def y_of(value):
        return top + plot_h - (value - y_low) / (y_high - y_low) * plot_h

    out = ['<svg class="chart" data-metric="%s" data-module="%s" viewBox="0 0 %d %d" width="%d" height="%d" '
           'role="img" aria-label="%s">' % (esc(key), esc(module), width, height, width, height,
                                            esc('%s %s over time' % (short_module(module), key)))]
    shown = key if len(key) <= 40 else '…' + key[-39:]  # the end of a long name says what it is
    out.append('<text class="ctitle" x="12" y="18">%s<title>%s</title></text>' % (esc(shown), esc(key)))
    out.append('<text class="csub" x="12" y="34">%s · %d point%s</text>'
               % (esc(short_module(module)), len(points), '' if len(points) == 1 else 's'))
    out.append('<text class="clast" x="%d" y="38" text-anchor="end">%s</text>'
               % (width - right, esc(format_value(key, values[-1]))))
    for fraction in (0.0, 0.5, 1.0):
        value = y_low + fraction * (y_high - y_low)
        y = y_of(value)
        out.append('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>' % (left, width - right, y, y))
        out.append('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>'
                   % (left - 6, y + 4, esc(format_value(key, value))))
    coords = ['%.1f,%.1f' % (x_of(s), y_of(v)) for s, v in zip(stamps, values)]
    if len(coords) > 1:
        out.append('<polygon class="area" points="%.1f,%.1f %s %.1f,%.1f"/>'
                   % (x_of(stamps[0]), top + plot_h, ' '.join(coords), x_of(stamps[-1]), top + plot_h))
        out.append('<polyline class="line" points="%s"/>' % ' '.join(coords))
    for (when, value), coord in zip(points, coords):
        x, y = coord.split(',')
        out.append('<circle class="dot" cx="%s" cy="%s" r="3"><title>%s: %s</title></circle>'
                   % (x, y, esc(when.strftime('%Y-%m-%d %H:%M:%SZ')), esc(format_value(key, value))))
    out.append('<text class="tick" x="%d" y="%d">%s</text>' % (left, height - 8, esc(short_time(points[0][0]))))
    out.append('<text class="tick" x="%d" y="%d" text-anchor="end">%s</text>'
               % (width - right, height - 8, esc(short_time(points[-1][0]))))
    out.append('</svg>')
    return ''.join(out)


def timeline_svg(host, timeline):
    """One block per run, coloured by the host's status in it, newest on the right."""
    block, gap, height = 18, 4, 46
    width = max(len(timeline) * (block + gap) + 8, 240)
    out = ['<svg class="timeline" data-host="%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img" '
           'aria-label="%s">' % (esc(host), width, height, width, height, esc('run timeline of %s' % host))]
    for index, (run, status) in enumerate(timeline):
        x = 4 + index * (block + gap)
        out.append('<rect class="run %s" x="%d" y="4" width="%d" height="26" rx="4" fill="%s"><title>%s</title></rect>'
                   % (esc(status), x, block, colour(status),
                      esc('%s %s: %s%s' % (run.time.strftime('%Y-%m-%d %H:%M:%SZ'),
                                           os.path.basename(run.playbook), status,
                                           ' (check mode)' if run.check_mode else ''))))
    if timeline:
        out.append('<text class="tick" x="4" y="%d">%s</text>' % (height - 2, esc(short_time(timeline[0][0].time))))
        out.append('<text class="tick" x="%d" y="%d" text-anchor="end">%s</text>'
                   % (width - 4, height - 2, esc(short_time(timeline[-1][0].time))))
    out.append('</svg>')
    return ''.join(out)


def grid_table(module, list_key, columns):
    """Status of each entry (probe, table, policy) over time: rows are entries, columns results."""
    names = []
    for _when, cells in columns:
        names += [n for n in cells if n not in names]
    out = ['<div class="gridwrap"><table class="heatmap" data-module="%s" data-list="%s">'
           '<caption>%s · %s</caption><thead><tr><th></th>'
           % (esc(module), esc(list_key), esc(short_module(module)), esc(list_key))]
    out += ['<th class="col" title="%s">%s</th>' % (esc(w.strftime('%Y-%m-%d %H:%M:%SZ')), esc(w.strftime('%d %H:%M')))
            for w, _c in columns]
    out.append('</tr></thead><tbody>')
    for name in names:
        out.append('<tr><th class="row">%s</th>' % esc(name))
        for when, cells in columns:
            status, message = cells.get(name, ('', ''))
            fill = colour(status) if status else '#eef1f4'
            out.append('<td class="cell %s" style="background:%s" title="%s"></td>'
                       % (esc(status or 'absent'), fill,
                          esc('%s %s: %s %s' % (when.strftime('%Y-%m-%d %H:%M'), name, status or 'not probed', message))))
        out.append('</tr>')
    out.append('</tbody></table></div>')
    return ''.join(out)


def featured(key):
    """Module metrics named in FEATURED_KEYS, and every percentage (disk, connections used)."""
    return key in FEATURED_KEYS or key.endswith('_pct')


def slug(name):
    return ''.join(c if c.isalnum() else '-' for c in name)


def host_section(view, max_runs, max_failures):
    latest = view.timeline[-1][1] if view.timeline else 'running'
    out = ['<section class="host" id="host-%s" data-host="%s"><div class="hosthead"><h2>%s</h2>%s</div>'
           % (esc(slug(view.host)), esc(view.host), esc(view.host), pill(latest))]
    out.append('<h3>Run timeline</h3>' + timeline_svg(view.host, view.timeline[-max_runs:]))
    charts = view.series
    top = [k for k in sorted(charts, key=lambda k: (FEATURED_KEYS.index(k[1]) if k[1] in FEATURED_KEYS else 99, k))
           if featured(k[1])]
    rest = [k for k in sorted(charts) if k not in top]
    if top:
        out.append('<h3>Key figures</h3><div class="charts featured">%s</div>'
                   % ''.join(line_chart(m, k, charts[(m, k)][-max_runs:]) for m, k in top))
    grids = sorted(view.grids.items())
    if grids:
        out.append('<h3>Status over time</h3>')
        out += [grid_table(m, k, cols[-max_runs:]) for (m, k), cols in grids]
    violations = view.open_violations()
    out.append('<h3>Open violations</h3>')
    if violations:
        out.append('<table class="violations"><thead><tr><th>module</th><th>what</th><th>status</th><th>since</th>'
                   '<th>message</th></tr></thead><tbody>')
        out += ['<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class="msg">%s</td></tr>'
                % (esc(short_module(v['module'])), esc(v['what']), pill(v['status']),
                   esc(v['since'].strftime('%Y-%m-%d %H:%M')), esc(v['message'])) for v in violations]
        out.append('</tbody></table>')
    else:
        out.append('<p class="none">None in the latest results.</p>')
    out.append('<h3>Last failures</h3>')
    if view.failures:
        out.append('<table class="failures"><thead><tr><th>when</th><th>playbook</th><th>task</th><th>status</th>'
                   '<th>message</th></tr></thead><tbody>')
        for run, task in list(reversed(view.failures))[:max_failures]:
            out.append('<tr><td>%s</td><td>%s</td><td>%s<div class="mod">%s</div></td><td>%s</td><td class="msg">%s</td></tr>'
                       % (esc(task['_time'].strftime('%Y-%m-%d %H:%M')),
                          esc(os.path.basename(run.playbook)), esc(task.get('task', '')),
                          esc(task.get('module', '')), pill(task['status']),
                          esc('output hidden by no_log' if task.get('no_log') else task.get('msg') or 'no message')))
        out.append('</tbody></table>')
    else:
        out.append('<p class="none">No failed, unreachable, rescued or ignored task recorded.</p>')
    if rest:
        out.append('<details class="more"><summary>All figures (%d charts)</summary><div class="charts">%s</div></details>'
                   % (len(rest), ''.join(line_chart(m, k, charts[(m, k)][-max_runs:]) for m, k in rest)))
    out.append('</section>')
    return ''.join(out)


CARD_HOSTS = 8   # up to this many hosts get a card each; the fleet table lists every host


def flag(bad, bad_word, good_word='ok'):
    """A status in words and colour (never colour alone)."""
    return '<b class="flag %s">%s</b>' % ('bad' if bad else 'good', esc(bad_word if bad else good_word))


def when_text(moment):
    return moment.strftime('%Y-%m-%d %H:%M UTC')


def hours_text(hours):
    return '%.0f h' % hours if hours < 48 else '%.1f d' % (hours / 24.0)


def snapshot_text(snapshots):
    if not snapshots:
        return flag(True, 'none recorded')
    return '<br>'.join('%s %s: %s old, %s, verified %s' % (
        flag(s['stale'], 'STALE'), esc(s['tier']), esc(hours_text(s['age_h'])), esc(format_value('size_bytes', s['size_bytes'])),
        esc(when_text(s['verified_at']))) for s in snapshots)


def drill_text(drill):
    if not drill['found']:
        return flag(True, 'none recorded')
    compared = ('%s tables compared, %s mismatched' % (drill['tables_compared'], drill['tables_mismatched'] or 0)
                if drill['tables_compared'] is not None else 'nothing compared')
    return '%s %s ago (%s): rto_s %s, %s%s' % (
        flag(drill['stale'] or not drill['matches'], 'MISMATCH' if not drill['matches'] else 'OLDER THAN A QUARTER',
             'matches'), esc(hours_text(drill['age_h'])), esc(when_text(drill['time'])), esc('%.1f' % drill['rto_s']),
        esc(compared), ', %s files restored' % esc(drill['files_restored']) if drill.get('files_restored') else '')


def lock_text(lock):
    if not lock['found']:
        return 'no lock recorded'
    if not lock['held']:
        return '%s %s' % (flag(False, '', 'free'), esc(lock['summary']))
    return '%s %s (expires %s)' % (flag(True, 'EXPIRED' if lock['expired'] else 'HELD'), esc(lock['summary']),
                                   esc(when_text(lock['expires_at'])))


def health_text(health):
    if not health['found']:
        return 'no probe recorded'
    return '%s %s (%s)' % (pill(health['status']), esc(health['summary']), esc(when_text(health['time'])))


def calendar_text(calendar):
    out = []
    for entry in calendar:
        line = '%s %s %s' % (esc(entry['playbook']), pill(entry['status']), esc(when_text(entry['time'])))
        if entry['failed_tasks']:
            line += ' failed: %s' % esc(', '.join(str(t) for t in entry['failed_tasks'][:3]))
        if entry['last_task']:
            line += ' last task: %s' % esc(entry['last_task'].get('task'))
        out.append(line)
    return '<br>'.join(out) or 'none'


def answers_section(answers, as_of):
    """The first screen: per host what is backed up, drilled, locked, healthy and how the calendar went."""
    rows = [('Newest verified snapshot', snapshot_text, 'snapshots'), ('Newest restore drill', drill_text, 'drill'),
            ('Maintenance lock', lock_text, 'lock'), ('Health now', health_text, 'health'),
            ('Last run per playbook', calendar_text, 'calendar')]
    out = ['<section class="card" id="answers"><h2>At a glance</h2><p class="none">As of the newest record, %s.</p>'
           % esc(when_text(as_of))]
    if len(answers) <= CARD_HOSTS:
        out.append('<div class="answers">')
        for answer in answers:
            out.append('<div class="answer" data-host="%s"><h3>%s %s</h3><table>' % (
                esc(answer['host']), esc(answer['host']), flag(bool(answer['problems']), 'needs attention', 'fine')))
            out += ['<tr data-answer="%s"><th>%s</th><td>%s</td></tr>' % (key, esc(title), render_answer(answer[key]))
                    for title, render_answer, key in rows]
            if answer['problems']:
                out.append('<tr data-answer="problems"><th>Wrong now</th><td>%s</td></tr>' % esc('; '.join(answer['problems'])))
            out.append('</table></div>')
        out.append('</div>')
    if len(answers) > 1:
        out.append('<table class="fleet"><thead><tr><th>host</th><th>wrong now</th>%s</tr></thead><tbody>'
                   % ''.join('<th>%s</th>' % esc(title) for title, _r, _k in rows))
        for answer in answers:
            out.append('<tr data-host="%s"><th>%s</th><td>%s</td>%s</tr>' % (
                esc(answer['host']), esc(answer['host']), esc('; '.join(answer['problems']) or 'nothing'),
                ''.join('<td>%s</td>' % render_answer(answer[key]) for _t, render_answer, key in rows)))
        out.append('</tbody></table>')
    out.append('</section>')
    return ''.join(out)


def runs_table(runs, hosts, max_runs):
    out = ['<table class="runs"><thead><tr><th>started (UTC)</th><th>playbook</th><th>who</th><th>duration</th>'
           '<th>status</th><th>hosts</th></tr></thead><tbody>']
    for run in list(reversed(runs))[:max_runs]:
        status = run_status(run)
        host_pills = ' '.join('<span class="dot-host" style="background:%s" title="%s"></span>%s'
                              % (colour(run.status_of(h)), esc(run.status_of(h)), esc(h))
                              for h in hosts if h in run.host_status or any(t['host'] == h for t in run.tasks))
        out.append('<tr><td>%s</td><td>%s%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            esc(run.time.strftime('%Y-%m-%d %H:%M')), esc(os.path.basename(run.playbook)),
            ' <span class="tag">check</span>' if run.check_mode else '',
            esc(run.user or '?') + (' · AWX job %s' % esc(run.awx_job_id) if run.awx_job_id else ''),
            esc(format_value('duration_ms', run.duration_ms)) if run.duration_ms is not None else '–',
            pill(status) + last_task_note(run), host_pills))
    out.append('</tbody></table>')
    return ''.join(out)


STYLE = '''
:root{--ink:#1d2733;--muted:#66768a;--line:#e3e8ee;--bg:#f4f6f9;--card:#fff}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:var(--bg)}
header{background:linear-gradient(120deg,#1f3b57,#2c6fbb);color:#fff;padding:28px 40px 22px}
header h1{margin:0 0 6px;font-size:26px;font-weight:650}header p{margin:0;opacity:.85}
main{padding:24px 40px 48px;max-width:1500px}
.kpis{display:flex;gap:14px;flex-wrap:wrap;margin-bottom:22px}
.kpi{background:var(--card);border-radius:10px;padding:14px 18px;min-width:150px;box-shadow:0 1px 3px rgba(20,40,60,.08)}
.kpi b{display:block;font-size:24px;font-weight:650}.kpi b .pill{font-size:15px;padding:3px 14px;margin:4px 0}
.kpi>span{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.notice{background:#fff6e0;border:1px solid #f0cf7a;border-radius:10px;padding:12px 16px;margin-bottom:22px}
.notice ul{margin:6px 0 0;padding-left:20px}
section.card,section.host{background:var(--card);border-radius:12px;padding:18px 22px;margin-bottom:22px;
box-shadow:0 1px 3px rgba(20,40,60,.08)}
h2{margin:0 0 10px;font-size:19px}h3{margin:20px 0 8px;font-size:13px;text-transform:uppercase;letter-spacing:.05em;
color:var(--muted)}
.hosthead{display:flex;align-items:center;gap:12px}.hosthead h2{margin:0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);
vertical-align:top}thead th{font-size:12px;color:var(--muted);font-weight:600}
td.msg{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;color:#3a4654;word-break:break-word}
.mod{font-size:11px;color:var(--muted)}
.pill{display:inline-block;color:#fff;border-radius:999px;padding:1px 10px;font-size:12px;font-weight:600;
white-space:nowrap}
.tag{font-size:11px;background:#e7edf5;border-radius:4px;padding:0 5px;color:#345}
.dot-host{display:inline-block;width:9px;height:9px;border-radius:50%;margin:0 4px 0 8px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
svg.chart{background:#fbfcfd;border:1px solid var(--line);border-radius:10px}
svg .ctitle{font-size:13px;font-weight:650;fill:var(--ink)}svg .csub{font-size:11px;fill:var(--muted)}
svg .clast{font-size:16px;font-weight:650;fill:#2c6fbb}svg .tick{font-size:10px;fill:var(--muted)}
svg .grid{stroke:#e6ebf0;stroke-width:1}svg .line{fill:none;stroke:#2c6fbb;stroke-width:2.2;stroke-linejoin:round}
svg .area{fill:#2c6fbb;opacity:.08}svg .dot{fill:#fff;stroke:#2c6fbb;stroke-width:2}
.gridwrap{overflow-x:auto;margin-bottom:10px}
table.heatmap{width:auto}table.heatmap caption{text-align:left;white-space:nowrap;font-weight:600;padding:4px 0;color:var(--muted);
font-size:12px}table.heatmap th.col{font-size:10px;writing-mode:vertical-rl;transform:rotate(180deg);padding:4px 2px;
color:var(--muted);font-weight:500}
table.heatmap th.row{font-weight:600;padding-right:14px;white-space:nowrap}
table.heatmap td.cell{width:22px;min-width:22px;height:22px;padding:0;border:2px solid #fff;border-radius:5px}
.none{color:var(--muted);margin:4px 0}
details.more summary{cursor:pointer;color:#2c6fbb;font-weight:600;margin:18px 0 10px}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin-top:10px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:5px;vertical-align:-1px}
.hostnav{display:flex;gap:10px;flex-wrap:wrap;margin-bottom:22px}.hostnav a{display:flex;gap:8px;
align-items:center;background:var(--card);border-radius:999px;padding:5px 14px 5px 6px;color:var(--ink);
text-decoration:none;font-weight:600;box-shadow:0 1px 3px rgba(20,40,60,.08)}
footer{color:var(--muted);font-size:12px;padding:0 40px 30px}
.answers{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.answer{border:1px solid var(--line);border-radius:10px;padding:8px 12px}.answer h3{margin:4px 0 6px}
.answer th{width:160px;font-size:12px;color:var(--muted)}table.fleet{margin-top:14px;font-size:12px}
.flag{font-size:11px;padding:0 6px;border-radius:4px;margin-right:4px}.flag.bad{background:#fbe3e1;color:#a3261f}
.flag.good{background:#e2f4ea;color:#1f6e43}
@media print{.answers{display:block}.answer{break-inside:avoid;margin-bottom:8px}}
'''


def render(history, title, max_runs=60, max_failures=20):
    """Return (html text, figures) for the page built from ``history``."""
    runs = build_runs(history.events)
    hosts = hosts_of(runs)
    views = [HostView(host, runs) for host in hosts]
    failures = sum(v.count('failed', 'unreachable') for v in views)
    open_violations = sum(len(v.open_violations()) for v in views)
    latest = runs[-1] if runs else None
    # The last run that is over: a run still going (this report's own run) says nothing yet.
    last_done = next((run for run in reversed(runs) if run.complete), None)
    span = ('%s to %s' % (runs[0].time.strftime('%Y-%m-%d %H:%M'), latest.time.strftime('%Y-%m-%d %H:%M UTC'))
            if runs else 'no runs recorded yet')
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
           'content="width=device-width, initial-scale=1"><title>%s</title><style>%s</style></head><body>'
           % (esc(title), STYLE)]
    out.append('<header><h1>%s</h1><p>%s · %d run%s · %d host%s</p></header><main>'
               % (esc(title), esc(span), len(runs), '' if len(runs) == 1 else 's', len(hosts),
                  '' if len(hosts) == 1 else 's'))
    kpis = [('runs', len(runs)), ('hosts', len(hosts)),
            ('last run', pill(last_done.status) if last_done else '–'),
            ('failed tasks', failures), ('rescued tasks', sum(v.count('rescued') for v in views)),
            ('ignored failures', sum(v.count('ignored') for v in views)), ('open violations', open_violations)]
    out.append('<div class="kpis">%s</div>' % ''.join(
        '<div class="kpi" data-kpi="%s"><b>%s</b><span>%s</span></div>'
        % (esc(name), value if name == 'last run' else esc(value), esc(name)) for name, value in kpis))
    if runs:
        as_of = max(run.last_time or run.time for run in runs)
        out.append(answers_section(answers_of(runs, hosts, as_of), as_of))
    out.append('<nav class="hostnav">%s</nav>' % ''.join(
        '<a href="#host-%s">%s%s</a>' % (esc(slug(v.host)), pill(v.timeline[-1][1] if v.timeline else 'running'),
                                         esc(v.host)) for v in views))
    if history.skipped:
        out.append('<div class="notice skipped"><b>%d line%s of the history could not be read and %s skipped:</b><ul>%s'
                   '</ul></div>' % (len(history.skipped), '' if len(history.skipped) == 1 else 's',
                                    'was' if len(history.skipped) == 1 else 'were',
                                    ''.join('<li>%s: %s</li>' % (esc(s['where']), esc(s['reason']))
                                            for s in history.skipped[:50])))
    out.append('<section class="card" id="runs"><h2>Recent runs</h2>%s<div class="legend">%s</div></section>'
               % (runs_table(runs, hosts, max_runs), ''.join(
                   '<span><i style="background:%s"></i>%s</span>' % (STATUS_COLOURS[s], s.replace('_', ' '))
                   for s in ('ok', 'changed', 'failed', 'unreachable', 'skipped', 'rescued', 'ignored', 'running',
                             'ended_without_summary'))))
    out += [host_section(view, max_runs, max_failures) for view in views]
    out.append('</main><footer>Rendered by engineroom.maintenance.maintenance_report from %s; history up to %s.</footer>'
               '</body></html>' % (esc(', '.join(os.path.basename(p) for p in history.files) or JSONL_NAME),
                                   esc(latest.time.strftime('%Y-%m-%dT%H:%M:%SZ') if latest else 'nothing')))
    figures = dict(runs=len(runs), hosts=len(hosts), events=len(history.events),
                   lines_skipped=len(history.skipped), failed_tasks=failures,
                   rescued_tasks=sum(v.count('rescued') for v in views), ignored_tasks=sum(v.count('ignored') for v in views),
                   open_violations=open_violations,
                   charts=sum(len(v.series) for v in views))
    return '\n'.join(out) + '\n', figures

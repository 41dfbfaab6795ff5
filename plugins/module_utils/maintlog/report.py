# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance report: one self-contained HTML page from the history of ``maintenance.jsonl``.

No per-module code, like the callback that writes the log: every module's
``metrics`` become a series per key over time per host (charted by concern, see
charts.py; a flat series is one line), every list of
``{name, status}`` entries (health probes, vacuumed tables, log policies)
becomes a status grid over time, non-good entries of the latest result and any
``violations`` list are the open violations, and failed or unreachable tasks
the last failures. The first screen answers what an auditor asks (answers.py): per host
or, for a fleet, one row per host, problems first. Per-host detail is folded
(``<details>``) so that a year of 50 hosts stays a few MB. Charts are inline SVG and
the style inline CSS, JavaScript only re-sorts the fleet table: the page works offline
and without scripts, attached to a mail or opened from a share, and prints.
"""

from __future__ import annotations

import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.answers import answers_of, tasks_by_host
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.charts import concern_sections, esc
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

    def __init__(self, host, runs, tasks=None):
        self.host = host
        self.timeline = [(run, run.status_of(host)) for run in runs if run.touches(host)]
        self.series = {}      # (module, key) -> [(time, value)]
        self.grids = {}       # (module, list key) -> [(time, {name: (status, message)})]
        self.latest_violations = {}  # module -> (time, [violation dicts])
        self.failures = []
        for run, task in tasks_by_host(runs).get(host, []) if tasks is None else tasks:
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
    """A run's status for the page: its end's, or ``running`` without one (never "incomplete")."""
    return run.status or 'running'


def own_run(run, runs):
    """The report's own run: the newest run, of report.yml, not ended yet (it is rendering this page)."""
    return run is runs[-1] and not run.complete and os.path.basename(run.playbook) == 'report.yml'


def last_task_note(run):
    """Where a run that ended without a summary stopped: its last recorded task."""
    last = (run.end or {}).get('last_task') if run.ended_without_summary else None
    if not last:
        return ''
    return '<div class="mod">last task: %s on %s (%s) at %s</div>' % (
        esc(last.get('task')), esc(last.get('host')), esc(last.get('status')), esc(last.get('time')))


def timeline_svg(host, timeline):
    """One block per run, coloured by the host's status in it (hover: when, playbook, status), newest on the right."""
    block, gap, height = 8, 2, 34
    width = max(len(timeline) * (block + gap) + 8, 240)
    out = ['<svg class="timeline" data-host="%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img" '
           'aria-label="%s">' % (esc(host), width, height, width, height, esc('run timeline of %s' % host))]
    for index, (run, status) in enumerate(timeline):
        out.append('<rect class="run %s" x="%d" y="2" width="%d" height="18" fill="%s"><title>%s %s: %s</title></rect>'
                   % (esc(status), 4 + index * (block + gap), block, colour(status),
                      esc(run.time.strftime('%Y-%m-%d %H:%M')), esc(os.path.basename(run.playbook)), esc(status)))
    if timeline:
        out.append('<text class="tick" x="4" y="%d">%s</text>' % (height - 2, esc(short_time(timeline[0][0].time))))
        out.append('<text class="tick" x="%d" y="%d" text-anchor="end">%s</text>'
                   % (width - 4, height - 2, esc(short_time(timeline[-1][0].time))))
    out.append('</svg>')
    return ''.join(out)


def cell_class(status):
    lowered = status.lower()
    if not status:
        return 'na'
    if lowered in GOOD_STATUSES:
        return 'g'
    return 'w' if lowered in WARNING_STATUSES else 'b'


def grid_table(module, list_key, columns):
    """Status of each entry (probe, table, policy) over time: rows are entries, columns results.

    A good cell is a green square without text; any other carries its status as a hover and a letter
    (colour is never the only sign)."""
    names = []
    for _when, cells in columns:
        names += [n for n in cells if n not in names]
    out = ['<div class="gridwrap"><table class="heatmap" data-module="%s" data-list="%s">'
           '<caption>%s · %s, %s to %s</caption><tbody>'
           % (esc(module), esc(list_key), esc(short_module(module)), esc(list_key),
              esc(columns[0][0].strftime('%Y-%m-%d')), esc(columns[-1][0].strftime('%Y-%m-%d')))]
    for name in names:
        out.append('<tr><th class="row">%s</th>' % esc(name))
        for when, cells in columns:
            status, message = cells.get(name, ('', ''))
            kind = cell_class(status)
            if kind == 'g':
                out.append('<td class="g"></td>')
            else:
                out.append('<td class="%s" title="%s">%s</td>' % (
                    kind, esc('%s %s: %s %s' % (when.strftime('%Y-%m-%d %H:%M'), name, status or 'not probed', message)),
                    esc((status or '-')[:1].upper())))
        out.append('</tr>')
    out.append('</tbody></table></div>')
    return ''.join(out)


def slug(name):
    return ''.join(c if c.isalnum() else '-' for c in name)


def problems_table(view, max_failures):
    """Open violations and last failures of a host."""
    out = []
    violations = view.open_violations()
    if violations:
        out.append('<h3>Open violations</h3><table class="violations"><thead><tr><th>module</th><th>what</th><th>status</th>'
                   '<th>since</th><th>message</th></tr></thead><tbody>')
        out += ['<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class="msg">%s</td></tr>'
                % (esc(short_module(v['module'])), esc(v['what']), pill(v['status']),
                   esc(v['since'].strftime('%Y-%m-%d %H:%M')), esc(v['message'])) for v in violations]
        out.append('</tbody></table>')
    else:
        out.append('<p class="none">Open violations: none in the latest results.</p>')
    if view.failures:
        out.append('<h3>Last failures</h3><table class="failures"><thead><tr><th>when</th><th>playbook</th><th>task</th>'
                   '<th>status</th><th>message</th></tr></thead><tbody>')
        for run, task in list(reversed(view.failures))[:max_failures]:
            out.append('<tr><td>%s</td><td>%s</td><td>%s<div class="mod">%s</div></td><td>%s</td><td class="msg">%s</td></tr>'
                       % (esc(task['_time'].strftime('%Y-%m-%d %H:%M')),
                          esc(os.path.basename(run.playbook)), esc(task.get('task', '')),
                          esc(task.get('module', '')), pill(task['status']),
                          esc('output hidden by no_log' if task.get('no_log') else task.get('msg') or 'no message')))
        out.append('</tbody></table>')
    else:
        out.append('<p class="none">Last failures: no failed, unreachable, rescued or ignored task recorded.</p>')
    return ''.join(out)


def host_section(view, max_runs, max_failures, problems=(), open_=False):
    """A host's detail, folded unless it is the only host: timeline, charts by concern, status grids, failures."""
    latest = view.timeline[-1][1] if view.timeline else 'running'
    out = ['<details class="host" id="host-%s" data-host="%s"%s><summary><h2>%s</h2>%s<span class="mod">%s</span></summary>'
           % (esc(slug(view.host)), esc(view.host), ' open' if open_ else '', esc(view.host), pill(latest),
              esc('; '.join(problems) if problems else '%d series, %d runs' % (len(view.series), len(view.timeline))))]
    out.append(problems_table(view, max_failures))
    out.append('<h3>Run timeline</h3>' + timeline_svg(view.host, view.timeline[-max_runs:]))
    if view.series:
        out.append('<h3>Figures by concern</h3>' + concern_sections(view.series, format_value))
    grids = sorted(view.grids.items())
    if grids:
        out.append('<h3>Status over time</h3>')
        out += [grid_table(m, k, cols[-max_runs:]) for (m, k), cols in grids]
    out.append('</details>')
    return ''.join(out)


CARD_HOSTS = 8   # up to this many hosts get a card each; more get the fleet table, one short row per host


def flag(bad, bad_word, good_word='ok'):
    """A status in words and colour (never colour alone)."""
    return '<b class="flag %s">%s</b>' % ('bad' if bad else 'good', esc(bad_word if bad else good_word))


def when_text(moment):
    return moment.strftime('%Y-%m-%d %H:%M UTC')


def hours_text(hours):
    return '%.0f h' % hours if hours < 48 else '%.1f d' % (hours / 24.0)


def snapshot_text(snapshots, short=False):
    if not snapshots:
        return flag(True, 'none recorded')
    if short:
        return '<br>'.join('<span title="verified %s">%s %s %s old, %s</span>' % (
            esc(when_text(s['verified_at'])), flag(s['stale'], 'STALE'), esc(s['tier']), esc(hours_text(s['age_h'])),
            esc(format_value('size_bytes', s['size_bytes']))) for s in snapshots)
    return '<br>'.join('%s %s: %s old, %s, verified %s' % (
        flag(s['stale'], 'STALE'), esc(s['tier']), esc(hours_text(s['age_h'])), esc(format_value('size_bytes', s['size_bytes'])),
        esc(when_text(s['verified_at']))) for s in snapshots)


def drill_text(drill, short=False):
    if not drill['found']:
        return flag(True, 'none recorded')
    compared = ('%s tables compared, %s mismatched' % (drill['tables_compared'], drill['tables_mismatched'] or 0)
                if drill['tables_compared'] is not None else 'nothing compared')
    verdict = flag(drill['stale'] or not drill['matches'], 'MISMATCH' if not drill['matches'] else 'OLDER THAN A QUARTER',
                   'matches')
    if short:
        return '<span title="%s">%s %s ago, rto_s %s, %s</span>' % (
            esc('%s: %s' % (when_text(drill['time']), drill['summary'])), verdict, esc(hours_text(drill['age_h'])),
            esc('%.1f' % drill['rto_s']), esc(compared))
    return '%s %s ago (%s): rto_s %s, %s%s' % (
        verdict, esc(hours_text(drill['age_h'])), esc(when_text(drill['time'])), esc('%.1f' % drill['rto_s']),
        esc(compared), ', %s files restored' % esc(drill['files_restored']) if drill.get('files_restored') else '')


def lock_text(lock, short=False):
    if not lock['found']:
        return 'no lock recorded'
    if not lock['held']:
        return flag(False, '', 'free') if short else '%s %s' % (flag(False, '', 'free'), esc(lock['summary']))
    return '%s %s (expires %s)' % (flag(True, 'EXPIRED' if lock['expired'] else 'HELD'), esc(lock['summary']),
                                   esc(when_text(lock['expires_at'])))


def health_text(health, short=False):
    if not health['found']:
        return 'no probe recorded'
    if short:
        return '<span title="%s">%s</span>' % (esc('%s (%s)' % (health['summary'], when_text(health['time']))),
                                               pill(health['status']))
    return '%s %s (%s)' % (pill(health['status']), esc(health['summary']), esc(when_text(health['time'])))


def calendar_text(calendar, short=False):
    out = []
    for entry in calendar:
        notes = ''
        if entry['failed_tasks']:
            notes += ' failed: %s' % ', '.join(str(t) for t in entry['failed_tasks'][:3])
        if entry['last_task']:
            notes += ' last task: %s' % entry['last_task'].get('task')
        if short:
            out.append('<span title="%s">%s %s</span>' % (esc(when_text(entry['time']) + notes), esc(entry['playbook']),
                                                          pill(entry['status'])))
        else:
            out.append('%s %s %s%s' % (esc(entry['playbook']), pill(entry['status']), esc(when_text(entry['time'])), esc(notes)))
    return ('<br>' if not short else ' ').join(out) or 'none'


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
    else:
        out.append(fleet_table(answers, rows))
    out.append('</section>')
    return ''.join(out)


# Re-sorts the fleet table by a clicked column; the content and its order (problems first) need no script.
SORT_SCRIPT = ('<script>document.querySelectorAll("table.fleet th[data-col]").forEach(function(h){h.onclick=function(){'
               'var b=h.closest("table").tBodies[0],c=+h.dataset.col,d=h.dataset.dir=h.dataset.dir=="a"?"d":"a";'
               'Array.from(b.rows).sort(function(x,y){var r=x.cells[c].textContent.localeCompare(y.cells[c].textContent,'
               'undefined,{numeric:true});return d=="a"?r:-r}).forEach(function(r){b.appendChild(r)})}})</script>')


def fleet_table(answers, rows):
    """One row per host with the first screen's columns, problems first (click a heading to re-sort)."""
    heads = ['host', 'status', 'wrong now'] + [title for title, _r, _k in rows]
    out = ['<table class="fleet"><caption>Fleet: %d hosts, %d needing attention (hosts with problems first; '
           'click a heading to sort)</caption><thead><tr>%s</tr></thead><tbody>'
           % (len(answers), sum(1 for a in answers if a['problems']),
              ''.join('<th data-col="%d">%s</th>' % (i, esc(h)) for i, h in enumerate(heads)))]
    for answer in answers:
        out.append('<tr data-host="%s"><th><a href="#host-%s">%s</a></th><td>%s</td><td>%s</td>%s</tr>' % (
            esc(answer['host']), esc(slug(answer['host'])), esc(answer['host']),
            flag(bool(answer['problems']), '%d problem%s' % (len(answer['problems']), '' if len(answer['problems']) == 1 else 's'),
                 'fine'),
            esc('; '.join(answer['problems']) or 'nothing'),
            ''.join('<td>%s</td>' % render_answer(answer[key], short=True) for _t, render_answer, key in rows)))
    out.append('</tbody></table>' + SORT_SCRIPT)
    return ''.join(out)


def run_hosts_text(run, hosts):
    """The hosts of a run with their status: each by name for a few hosts, counted (bad ones named) for a fleet."""
    touched = [(h, run.status_of(h)) for h in hosts if run.touches(h)]
    if len(touched) <= CARD_HOSTS:
        return ' '.join('%s %s' % (pill(status), esc(h)) for h, status in touched)
    counts = {}
    for host, status in touched:
        counts.setdefault(status, []).append(host)
    return ' '.join('%s %d%s' % (pill(status), len(names), '' if status in ('ok', 'changed', 'skipped')
                                 else ': ' + esc(', '.join(names[:10]) + (' …' if len(names) > 10 else '')))
                    for status, names in sorted(counts.items()))


def runs_table(runs, hosts, max_runs):
    out = ['<table class="runs"><thead><tr><th>started (UTC)</th><th>playbook</th><th>who</th><th>duration</th>'
           '<th>status</th><th>hosts</th></tr></thead><tbody>']
    for run in list(reversed(runs))[:max_runs]:
        mine = own_run(run, runs)
        out.append('<tr><td>%s</td><td>%s%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            esc(run.time.strftime('%Y-%m-%d %H:%M')), esc(os.path.basename(run.playbook)),
            ' <span class="tag">check</span>' if run.check_mode else '',
            esc(run.user or '?') + (' · AWX job %s' % esc(run.awx_job_id) if run.awx_job_id else ''),
            esc(format_value('duration_ms', run.duration_ms)) if run.duration_ms is not None else '–',
            '<span class="tag">this report</span>' if mine else pill(run_status(run)) + last_task_note(run),
            '' if mine else run_hosts_text(run, hosts)))
    out.append('</tbody></table>')
    return ''.join(out)


STYLE = '''
:root{--ink:#1d2733;--muted:#5f6f82;--line:#e3e8ee;--bg:#f4f6f9;--card:#fff;--blue:#2c6fbb}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:var(--bg)}
header{background:#1f3b57;color:#fff;padding:22px 40px 18px}header h1{margin:0 0 4px;font-size:24px}header p{margin:0}
main{padding:20px 40px 40px;max-width:1600px}
.kpis{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:18px}
.kpi{background:var(--card);border-radius:8px;padding:10px 16px;min-width:130px;border:1px solid var(--line)}
.kpi b{display:block;font-size:22px}.kpi small{font-size:12px;font-weight:400;margin-left:6px}
.kpi>span{color:var(--muted);font-size:12px;text-transform:uppercase}
.notice{background:#fff6e0;border:1px solid #f0cf7a;border-radius:8px;padding:10px 14px;margin-bottom:18px}
section.card,details.host{background:var(--card);border-radius:10px;padding:14px 20px;margin-bottom:14px;border:1px solid var(--line)}
h2{margin:0 0 10px;font-size:19px}h3{margin:16px 0 6px;font-size:12px;text-transform:uppercase;color:var(--muted)}
h4{margin:10px 0 4px;font-size:13px;text-transform:capitalize}
details.host summary{cursor:pointer;display:flex;gap:12px;align-items:baseline}details.host summary h2{margin:0;font-size:17px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);
vertical-align:top}thead th{font-size:12px;color:var(--muted)}caption{text-align:left;color:var(--muted);padding:4px 0}
td.msg{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;word-break:break-word}
.mod{font-size:11px;color:var(--muted)}
.pill{display:inline-block;color:#fff;border-radius:999px;padding:1px 9px;font-size:12px;font-weight:600;white-space:nowrap}
.tag{font-size:11px;background:#e7edf5;border-radius:4px;padding:0 5px;color:#345}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}
figure.chart{margin:0;border:1px solid var(--line);border-radius:8px;padding:6px 8px}
figure.chart figcaption{display:flex;justify-content:space-between;gap:8px;font-size:12px}
.now{font-weight:650;color:var(--blue);white-space:nowrap}.range{font-size:11px;color:var(--muted)}
svg polyline{fill:none;stroke:var(--blue);stroke-width:1.6;stroke-linejoin:round;vector-effect:non-scaling-stroke}
table.sparks{width:auto;font-size:12px}table.sparks th{font-weight:500;min-width:260px}table.sparks td{padding:2px 8px}
svg .tick{font-size:10px;fill:var(--muted)}
.gridwrap{overflow-x:auto;margin-bottom:8px}table.heatmap{width:auto;font-size:10px}
table.heatmap th.row{font-size:12px;white-space:nowrap;padding:1px 10px 1px 0}
table.heatmap td{width:9px;min-width:9px;height:14px;padding:0;border:1px solid #fff;text-align:center;color:#fff;font-weight:700}
td.g{background:#2f9e62}td.w{background:#e0a526}td.b{background:#d94841}td.na{background:#eef1f4;color:var(--muted)}
.none{color:var(--muted);margin:4px 0}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin-top:8px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:5px}
footer{color:var(--muted);font-size:12px;padding:0 40px 30px}
.answers{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.answer{border:1px solid var(--line);border-radius:8px;padding:8px 12px}.answer h3{margin:4px 0 6px}
.answer th{width:160px;font-size:12px;color:var(--muted)}table.fleet{margin-top:12px;font-size:12px}
table.fleet th[data-col]{cursor:pointer}
.flag{font-size:11px;padding:0 6px;border-radius:4px;margin-right:4px}.flag.bad{background:#fbe3e1;color:#a3261f}
.flag.good{background:#e2f4ea;color:#1f6e43}
@media print{body{background:#fff}header{color:#000;background:#fff;padding:0 0 8px}main{padding:0}
.answers{display:block}.answer,tr{break-inside:avoid}.answer{margin-bottom:8px}details.host{break-inside:avoid-page}}
'''


def kpis_block(runs, hosts, views, failures, open_violations):
    # The last run that is over: a run still going (this report's own run) says nothing yet.
    last_done = next((run for run in reversed(runs) if run.complete), None)
    kpis = [('runs', len(runs)), ('hosts', len(hosts)),
            ('last run', (pill(last_done.status) + '<small>%s</small>' % esc(os.path.basename(last_done.playbook)))
             if last_done else '–'),
            ('failed tasks', failures), ('rescued tasks', sum(v.count('rescued') for v in views)),
            ('ignored failures', sum(v.count('ignored') for v in views)), ('open violations', open_violations)]
    return '<div class="kpis">%s</div>' % ''.join(
        '<div class="kpi" data-kpi="%s"><b>%s</b><span>%s</span></div>'
        % (esc(name), value if name == 'last run' else esc(value), esc(name)) for name, value in kpis)


def skipped_notice(history):
    if not history.skipped:
        return ''
    return ('<div class="notice skipped"><b>%d line%s of the history could not be read and %s skipped:</b><ul>%s'
            '</ul></div>' % (len(history.skipped), '' if len(history.skipped) == 1 else 's',
                             'was' if len(history.skipped) == 1 else 'were',
                             ''.join('<li>%s: %s</li>' % (esc(s['where']), esc(s['reason'])) for s in history.skipped[:50])))


def legend():
    return '<div class="legend">%s</div>' % ''.join(
        '<span><i style="background:%s"></i>%s</span>' % (STATUS_COLOURS[s], s.replace('_', ' '))
        for s in ('ok', 'changed', 'failed', 'unreachable', 'skipped', 'rescued', 'ignored', 'running', 'ended_without_summary'))


def render(history, title, max_runs=60, max_failures=20):
    """Return (html text, figures) for the page built from ``history``."""
    runs = build_runs(history.events)
    hosts = hosts_of(runs)
    by_host = tasks_by_host(runs)
    views = dict((host, HostView(host, runs, by_host.get(host, []))) for host in hosts)
    failures = sum(v.count('failed', 'unreachable') for v in views.values())
    open_violations = sum(len(v.open_violations()) for v in views.values())
    latest = runs[-1] if runs else None
    span = ('%s to %s' % (runs[0].time.strftime('%Y-%m-%d %H:%M'), latest.time.strftime('%Y-%m-%d %H:%M UTC'))
            if runs else 'no runs recorded yet')
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
           'content="width=device-width, initial-scale=1"><title>%s</title><style>%s</style></head><body>'
           % (esc(title), STYLE)]
    out.append('<header><h1>%s</h1><p>%s · %d run%s · %d host%s</p></header><main>'
               % (esc(title), esc(span), len(runs), '' if len(runs) == 1 else 's', len(hosts),
                  '' if len(hosts) == 1 else 's'))
    out.append(kpis_block(runs, hosts, list(views.values()), failures, open_violations))
    answers = []
    if runs:
        as_of = max(run.last_time or run.time for run in runs)
        answers = answers_of(runs, hosts, as_of, by_host)
        out.append(answers_section(answers, as_of))
    out.append(skipped_notice(history))
    out.append('<section class="card" id="runs"><h2>Recent runs</h2>%s%s</section>' % (runs_table(runs, hosts, max_runs), legend()))
    out.append('<h2 class="details">Per host (folded: open one for its figures, status grids and failures)</h2>'
               if len(hosts) > 1 else '')
    out += [host_section(views[a['host']], max_runs, max_failures, a['problems'], open_=len(hosts) == 1) for a in answers]
    out.append('</main><footer>Rendered by engineroom.maintenance.maintenance_report from %s; history up to %s.</footer>'
               '</body></html>' % (esc(', '.join(os.path.basename(p) for p in history.files) or JSONL_NAME),
                                   esc(latest.time.strftime('%Y-%m-%dT%H:%M:%SZ') if latest else 'nothing')))
    figures = dict(runs=len(runs), hosts=len(hosts), events=len(history.events),
                   lines_skipped=len(history.skipped), failed_tasks=failures,
                   rescued_tasks=sum(v.count('rescued') for v in views.values()),
                   ignored_tasks=sum(v.count('ignored') for v in views.values()),
                   open_violations=open_violations, charts=sum(len(v.series) for v in views.values()))
    return '\n'.join(out) + '\n', figures

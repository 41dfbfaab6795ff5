"""The report's reading and rendering on a synthetic history in the callback's schema."""

from __future__ import annotations

import datetime
import os
import re

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog import history as _history, report as _report
from ansible_collections.engineroom.maintenance.plugins.module_utils.common import time as clock
from tests.harness.maintenance_log import synthetic_events, write_history


def make_history(tmp_path, corrupt_after=None, events=None):
    write_history(str(tmp_path / 'maintenance.jsonl'), events if events is not None else synthetic_events(),
                  corrupt_after)
    return _history.read_history(str(tmp_path))


def test_corrupt_and_foreign_lines_are_skipped_and_named(tmp_path):
    history = make_history(tmp_path, corrupt_after=5)
    with open(tmp_path / 'maintenance.jsonl', 'a') as handle:
        handle.write('[1, 2]\n{"event": "task"}\n\n')
    assert len(history.events) == len(synthetic_events())
    history = _history.read_history(str(tmp_path))
    assert [s['where'] for s in history.skipped] == ['maintenance.jsonl line 6', 'maintenance.jsonl line %d'
                                                     % (len(synthetic_events()) + 2), 'maintenance.jsonl line %d'
                                                     % (len(synthetic_events()) + 3)]
    assert history.skipped[0]['reason'].startswith('not valid JSON')
    assert history.skipped[1]['reason'].startswith('not a maintenance log event')
    page, figures = _report.render(history, 'T')
    assert figures['lines_skipped'] == 3 and '3 lines of the history could not be read and were skipped' in page


def test_figures_and_open_violations(tmp_path):
    page, figures = _report.render(make_history(tmp_path), 'Ops <report>')
    assert figures == dict(runs=14, hosts=3, events=len(synthetic_events()), lines_skipped=0, failed_tasks=2,
                           rescued_tasks=0, ignored_tasks=0, open_violations=4, charts=figures['charts'])
    assert '<title>Ops &lt;report&gt;</title>' in page
    views = dict((v.host, v) for v in (_report.HostView(h, _history.build_runs(synthetic_events()))
                                       for h in ('db1', 'app1', 'app2')))
    app1 = dict((v['what'], v) for v in views['app1'].open_violations())
    assert set(app1) == {'log /var/log/nginx/access.log', 'probe uploads'}
    nginx = app1['log /var/log/nginx/access.log']
    assert nginx['status'] == 'violation' and nginx['since'].strftime('%m-%d') == '11-11'  # open since day 10
    assert 'probe api' not in app1  # degraded earlier, healthy in the latest result
    assert [t['module'] for _r, t in views['db1'].failures] == ['engineroom.maintenance.snapshot_archive']


def test_every_metric_is_charted_by_concern_with_units(tmp_path):
    page, _figures = _report.render(make_history(tmp_path), 'T')
    concerns = re.findall(r'<div class="concern" data-concern="([^"]+)">', page)
    assert set(concerns) == {'backups', 'database', 'disks', 'logs', 'health'}
    moving = set(re.findall(r'<figure class="chart" data-metric="([^"]+)" data-module="([^"]+)"', page))
    flat = set(re.findall(r'<tr class="spark" data-metric="([^"]+)" data-module="([^"]+)"', page))
    assert ('size_bytes', 'engineroom.maintenance.snapshot_archive') in moving      # grows 3 % a day
    assert ('dead_tuples_removed', 'engineroom.maintenance.pg_vacuum') in moving
    assert ('probe uploads: /srv used_pct', 'engineroom.maintenance.health_probe') in moving
    assert ('tables_processed', 'engineroom.maintenance.pg_vacuum') in flat          # always 12: one line
    row = re.search(r'<tr class="spark" data-metric="tables_processed".*?</tr>', page).group(0)
    assert '>12<' in row and 'flat over 14 results' in row
    disk = re.search(r'<figure class="chart" data-metric="probe uploads: /srv used_pct".*?</figure>', page).group(0)
    assert '>uploads /srv used %</b>' in disk and 'title="engineroom.maintenance.health_probe probe uploads: /srv used_pct"' in disk
    assert re.search(r'\+2\.\d+ %/month', disk) is None  # under 28 days of history: no growth figure
    assert 'http://' not in page and 'https://' not in page and '<script src' not in page


def test_own_run_is_this_report_and_a_killed_run_shows_its_last_task(tmp_path):
    events = synthetic_events(days=2)
    events += [dict(schema_version=2, event='run_start', run_id='kill', time='2026-11-03T00:00:00.000Z',
                    playbook='playbooks/weekly.yml'),
               dict(schema_version=2, event='task', run_id='kill', time='2026-11-03T00:01:00.000Z', host='db1', play='W',
                    task='VACUUM FULL', module='engineroom.maintenance.pg_vacuum', status='changed'),
               dict(schema_version=2, event='run_end', run_id='kill', time='2026-11-03T00:30:00.000Z',
                    playbook='playbooks/weekly.yml', status='ended_without_summary', hosts={'db1': {'status': 'changed'}},
                    last_task=dict(host='db1', task='VACUUM FULL', status='changed', time='2026-11-03T00:01:00.000Z')),
               dict(schema_version=2, event='run_start', run_id='rep', time='2026-11-03T01:00:00.000Z',
                    playbook='playbooks/report.yml')]
    page, _figures = _report.render(make_history(tmp_path, events=events), 'T')
    runs = page[page.index('id="runs"'):]
    assert '<td>report.yml</td>' in runs and '<span class="tag">this report</span>' in runs
    assert 'incomplete' not in page and 'style="background:#6f8fb3">running</span>' not in page
    assert 'weekly.yml ended without summary' in page  # the killed run: said so, with where it stopped
    assert 'last task: VACUUM FULL on db1 (changed) at 2026-11-03T00:01:00.000Z' in runs
    kpi = re.search(r'data-kpi="last run"><b>(.*?)</b>', page).group(1)
    assert kpi.endswith('<small>weekly.yml</small>')  # the last run that is over, not the report's own


def test_same_history_same_page(tmp_path):
    first, _f = _report.render(make_history(tmp_path), 'T')
    second, _f = _report.render(make_history(tmp_path), 'T')
    assert first == second


def test_run_without_end_is_running_never_incomplete_and_empty_history_renders(tmp_path):
    events = [e for e in synthetic_events(days=1) if e['event'] != 'run_end']
    runs = _history.build_runs(events)
    assert runs[0].status is None and runs[0].status_of('db1') == 'running'
    page, figures = _report.render(make_history(tmp_path, events=events), 'T')
    assert figures['runs'] == 1 and '>running<' in page and 'incomplete' not in page
    assert '<div class="kpi" data-kpi="last run"><b>–</b>' in page  # no run is over yet
    os.unlink(tmp_path / 'maintenance.jsonl')
    page, figures = _report.render(_history.read_history(str(tmp_path)), 'T')
    assert figures['runs'] == 0 and 'no runs recorded yet' in page


def test_values_are_shown_in_the_unit_of_their_key():
    assert _report.format_value('size_bytes', 536870912) == '512.0 MB'
    assert _report.format_value('probe x: /srv used_pct', 82.04) == '82.0 %'
    assert _report.format_value('duration_ms', 1400.2) == '1.4 s'
    assert _report.format_value('duration_ms', 35.2) == '35.2 ms'
    assert _report.format_value('dead_tuples_removed', 1400000) == '1.4 M'
    assert _report.format_value('tables_processed', 7) == '7'
    when = clock.parse_time('2026-11-23T02:00:00.123Z')
    assert when == datetime.datetime(2026, 11, 23, 2, 0, 0, 123000, tzinfo=datetime.timezone.utc)
    assert clock.parse_time('yesterday') is None

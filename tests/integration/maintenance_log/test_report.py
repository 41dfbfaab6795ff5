"""The HTML report from a recorded history, loaded in headless Chromium.

The history is two weeks of synthetic runs in the callback's schema (with one
torn line) followed by real runs of playbooks/health_check.yml recorded by the
callback: one healthy, one failing.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.harness.maintenance_log import synthetic_events, write_history
from tests.harness.playbook import REPO_ROOT, run_tasks
from tests.harness.ports import free_port
from tests.integration.maintenance_log.conftest import chromium_run, run_logged

OUTPUT = os.path.join(REPO_ROOT, 'tests', 'output', 'maintenance_log')
MODULE = 'engineroom.maintenance.maintenance_report'
HEALTH_CHECK = os.path.join(REPO_ROOT, 'playbooks', 'health_check.yml')
REPORT = os.path.join(REPO_ROOT, 'playbooks', 'report.yml')


@pytest.fixture(scope='module')
def history(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('history'))
    log_dir = os.path.join(directory, 'log')
    os.makedirs(log_dir)
    write_history(os.path.join(log_dir, 'maintenance.jsonl.1'), synthetic_events(), corrupt_after=30)
    disk = dict(name='scratch', kind='disk', path=[directory])
    healthy = run_logged([HEALTH_CHECK], log_dir, extra_vars=[dict(health_check_probes=[disk])])
    assert healthy.rc == 0, healthy.stderr
    broken = run_logged([HEALTH_CHECK], log_dir, extra_vars=[dict(health_check_probes=[
        disk, dict(name='cache', kind='redis', login_port=free_port())])])
    assert broken.rc == 2  # the health_check role fails an unhealthy host
    with open(os.path.join(log_dir, 'maintenance.jsonl'), encoding='utf-8') as handle:  # the real runs only
        real = [json.loads(line) for line in handle]
    assert [e['status'] for e in real if e['event'] == 'run_end'] == ['ok', 'failed']
    return dict(directory=directory, log_dir=log_dir, real=real)


def render(history, name='report.html'):
    dest = os.path.join(history['directory'], name)
    run = run_logged([REPORT], callback=False, extra_vars=[dict(maintenance_report_log_dir=history['log_dir'],
                                                                maintenance_report_dest=dest)],
                     env=dict(ANSIBLE_SHOW_CUSTOM_STATS='1'))
    assert run.rc == 0, run.stderr
    result = [t for p in run.report['plays'] for t in p['tasks']
              if t['task']['name'] == 'Render the HTML report from the maintenance log'][0]['hosts']['localhost']
    return dest, result, run


def test_report_renders_history_and_loads_in_chromium(history, chromium):
    dest, result, run = render(history)
    assert result['changed'] is True and result['dest'] == dest
    assert result['skipped_lines'] == [dict(where='maintenance.jsonl.1 line 31', reason=result['skipped_lines'][0]['reason'])]
    assert result['skipped_lines'][0]['reason'].startswith('not valid JSON')
    assert any(w.startswith('maintenance log maintenance.jsonl.1 line 31 skipped: not valid JSON')
               for w in result['warnings'])
    metrics = result['metrics']
    assert metrics['runs'] == 14 + 2 and metrics['hosts'] == 4 and metrics['lines_skipped'] == 1
    assert metrics['failed_tasks'] == 3  # synthetic snapshot failure and unreachable, the real failed health check
    assert metrics['bytes_written'] == os.path.getsize(dest)
    assert result['summary'] == ('report of 16 runs on 4 hosts: 3 failed tasks, %d open violations, '
                                 '1 unreadable line skipped' % metrics['open_violations'])
    assert run.report['global_custom_stats']['maintenance_report']['runs'] == 16  # set_stats for AWX

    with open(dest, encoding='utf-8') as handle:
        page = handle.read()
    assert not re.search(r'(?:src|href)=["\']?(?:https?:)?//', page)  # self-contained: nothing to fetch

    dom = chromium_run(chromium, 'file://' + dest, '--dump-dom', '--virtual-time-budget=2000')
    hosts = re.findall(r'<details class="host" id="host-[^"]*" data-host="([^"]+)"', dom)
    assert sorted(hosts) == ['app1', 'app2', 'db1', 'localhost']
    charts = re.findall(r'<(?:figure class="chart"|tr class="spark") data-metric="([^"]+)" data-module="([^"]+)"', dom)
    metrics_by_module = set(charts)
    assert ('size_bytes', 'engineroom.maintenance.snapshot_archive') in metrics_by_module       # snapshot sizes
    assert ('dead_tuples_removed', 'engineroom.maintenance.pg_vacuum') in metrics_by_module     # VACUUM per run
    assert ('probe uploads: /srv used_pct', 'engineroom.maintenance.health_probe') in metrics_by_module  # disk %
    real_disk = 'probe scratch: %s used_pct' % history['directory']
    assert (real_disk, 'engineroom.maintenance.health_probe') in metrics_by_module  # from the real runs
    assert len(re.findall(r'<svg class="timeline" data-host=', dom)) == 4
    assert len(re.findall(r'<rect class="run ', dom)) == 14 * 3 + 2
    heatmaps = re.findall(r'<table class="heatmap" data-module="([^"]+)" data-list="([^"]+)"', dom)
    assert heatmaps.count(('engineroom.maintenance.health_probe', 'probes')) == 4
    assert ('engineroom.maintenance.log_rotation_check', 'logs') in heatmaps
    violations = dom.split('<table class="violations">')
    assert any('/var/log/nginx/access.log' in part.split('</table>')[0] for part in violations[1:])
    failures = re.findall(r'<table class="failures">(.*?)</table>', dom, re.S)
    assert any('No space left on device' in table for table in failures)
    assert any('Connection timed out' in table and 'unreachable' in table for table in failures)
    assert any('health unhealthy' in table and 'cache' in table for table in failures)
    assert 'class="notice skipped"' in dom and 'maintenance.jsonl.1 line 31' in dom
    assert '<table class="runs">' in dom

    os.makedirs(OUTPUT, exist_ok=True)
    screenshot = os.path.join(OUTPUT, 'report.png')
    if os.path.exists(screenshot):
        os.unlink(screenshot)
    chromium_run(chromium, 'file://' + dest, '--screenshot=' + screenshot, '--window-size=1280,2000',
                 '--hide-scrollbars')
    with open(screenshot, 'rb') as handle:
        assert handle.read(8) == b'\x89PNG\r\n\x1a\n'
    assert os.path.getsize(screenshot) > 50000  # a rendered page, not a blank one


def test_same_history_renders_the_same_file(history):
    dest, first, _run = render(history, 'again.html')
    with open(dest, 'rb') as handle:
        content = handle.read()
    dest, second, _run = render(history, 'again.html')
    assert first['changed'] is True and second['changed'] is False
    assert second['metrics']['bytes_written'] == 0
    with open(dest, 'rb') as handle:
        assert handle.read() == content


def test_bad_inputs_fail_clearly_and_write_nothing(history):
    missing_log = os.path.join(history['directory'], 'no-log-here')
    os.makedirs(missing_log)
    missing_dest_dir = os.path.join(history['directory'], 'no-such-dir', 'report.html')
    planned = os.path.join(history['directory'], 'planned.html')
    run = run_tasks([
        {'name': 'no log', MODULE: dict(log_dir=missing_log, dest=os.path.join(missing_log, 'r.html')),
         'ignore_errors': True},
        {'name': 'no log dir', MODULE: dict(log_dir=missing_log + '-absent', dest=planned), 'ignore_errors': True},
        {'name': 'no dest dir', MODULE: dict(log_dir=history['log_dir'], dest=missing_dest_dir), 'ignore_errors': True},
        {'name': 'bad max_runs', MODULE: dict(log_dir=history['log_dir'], dest=planned, max_runs=0),
         'ignore_errors': True},
        {'name': 'check mode', MODULE: dict(log_dir=history['log_dir'], dest=planned), 'check_mode': True},
    ])
    no_log = run.result('no log')
    assert no_log['failed'] is True
    assert no_log['msg'] == ('no maintenance log in %s (maintenance.jsonl missing): enable the '
                             'engineroom.maintenance.maintenance_log callback for the runs to report on, or point '
                             'log_dir at its log_dir' % missing_log)
    assert os.listdir(missing_log) == []
    assert run.result('no log dir')['msg'] == ('log_dir %s-absent does not exist: point it at the maintenance_log '
                                               'callback\'s log_dir (ENGINEROOM_MAINTENANCE_LOG_DIR or '
                                               '[callback_maintenance_log] log_dir in ansible.cfg); nothing was written'
                                               % missing_log)
    assert not os.path.exists(missing_log + '-absent') and not os.path.exists(planned)
    no_dir = run.result('no dest dir')
    assert no_dir['failed'] is True
    assert no_dir['msg'] == 'dest %s cannot be written: directory %s does not exist' % (
        missing_dest_dir, os.path.dirname(missing_dest_dir))
    assert not os.path.exists(os.path.dirname(missing_dest_dir))
    assert run.result('bad max_runs')['msg'] == 'max_runs must be at least 1 (got 0)'
    check = run.result('check mode')
    assert check['changed'] is True and check['metrics']['runs'] == 16
    assert not os.path.exists(planned)

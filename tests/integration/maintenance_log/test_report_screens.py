"""The report's first screen in headless Chromium, on logs of the calendar (tests/harness/fleet_log.py).

Three logs: a demo-like one (one host, a day of daily, weekly and a restore drill, the report's own run
still going), a fleet of 50 hosts over a year, and one with a failed drill, an expired lock, an
unreachable host and a killed run. The assertions read the TEXT Chromium rendered in the first-screen
cards and the fleet table (ages, rto_s, matches, lock holder), and check the screenshot is a real
picture. Timings are not asserted (docs/performance/report.md has them).
"""

from __future__ import annotations

import html
import os
import re

from tests.harness.fleet_log import fleet_events, write_log
from tests.harness.playbook import REPO_ROOT, run_tasks
from tests.integration.maintenance_log.conftest import chromium_run

OUTPUT = os.path.join(REPO_ROOT, 'tests', 'output', 'maintenance_log')
MODULE = 'engineroom.maintenance.maintenance_report'
MAX_BYTES = 5 * 2 ** 20


def render_log(directory, events, name):
    log_dir = os.path.join(str(directory), name)
    os.makedirs(log_dir)
    write_log(os.path.join(log_dir, 'maintenance.jsonl'), events)
    dest = os.path.join(str(directory), name + '.html')
    run = run_tasks([{'name': 'report', MODULE: dict(log_dir=log_dir, dest=dest)}], timeout=600)
    assert run.result('report')['changed'] is True, run.result('report')
    return dest


def text_of(fragment):
    return re.sub(r'\s+', ' ', html.unescape(re.sub(r'<[^>]+>', ' ', fragment))).strip()


def first_screen(chromium, dest):
    """The rendered DOM's answers section as text, per host card and per fleet row."""
    dom = chromium_run(chromium, 'file://' + dest, '--dump-dom')
    section = dom[dom.index('<section class="card" id="answers">'):]
    section = section[:section.index('</section>')]
    cards = dict((host, text_of(body)) for host, body in
                 re.findall(r'<div class="answer" data-host="([^"]+)">(.*?)</table></div>', section, re.S))
    rows = [(host, text_of(body)) for host, body in
            re.findall(r'<tr data-host="([^"]+)">(.*?)</tr>', section, re.S)]
    return dom, cards, rows


def screenshot(chromium, dest, name, min_bytes):
    os.makedirs(OUTPUT, exist_ok=True)
    path = os.path.join(OUTPUT, name)
    if os.path.exists(path):
        os.unlink(path)
    chromium_run(chromium, 'file://' + dest, '--screenshot=' + path, '--window-size=1280,1400', '--hide-scrollbars')
    with open(path, 'rb') as handle:
        assert handle.read(8) == b'\x89PNG\r\n\x1a\n'
    assert os.path.getsize(path) > min_bytes  # a rendered page, not a blank one (a blank 1280x1400 PNG is ~12 kB)


def test_demo_like_log_shows_snapshot_drill_lock_and_health_cards(chromium, tmp_path):
    dest = render_log(tmp_path, fleet_events(hosts=1, days=1, faults=('weekly', 'drill', 'report')), 'demo')
    dom, cards, rows = first_screen(chromium, dest)
    assert list(cards) == ['db01'] and rows == []  # one host: a card, no fleet table
    card = cards['db01']
    assert re.search(r'Newest verified snapshot ok database: \d+ h old, 4\.0 GB, verified 2025-12-01 02:\d\d UTC', card), card
    assert re.search(r'ok full: \d+ h old, 60\.0 GB, verified 2025-12-01 03:\d\d UTC', card), card
    assert re.search(r'Newest restore drill matches \d+ h ago \(2025-12-01 05:\d\d UTC\): rto_s \d+\.\d, '
                     r'12 tables compared, 0 mismatched', card), card
    assert 'Maintenance lock free released (held 41 min)' in card
    assert 'Health now healthy health healthy: 3 probes' in card
    assert 'daily.yml changed' in card and 'monthly.yml ok' in card and 'weekly.yml changed' in card
    assert 'report.yml' not in card  # the report's own run is no calendar run, and never "incomplete"
    runs = text_of(dom[dom.index('id="runs"'):dom.index('</section>', dom.index('id="runs"'))])
    assert 'report.yml ops – this report' in runs and 'incomplete' not in dom
    assert re.search(r'<div class="concern" data-concern="backups">', dom)
    screenshot(chromium, dest, 'report-demo.png', 60000)


def test_fleet_of_50_hosts_over_a_year_stays_small_and_lists_problems_first(chromium, tmp_path):
    events = fleet_events(hosts=50, days=365, faults=('failed_drill', 'expired_lock', 'unreachable', 'report'))
    dest = render_log(tmp_path, events, 'fleet')
    size = os.path.getsize(dest)
    assert size < MAX_BYTES, 'the report of 50 hosts x 365 days is %d bytes' % size
    dom, cards, rows = first_screen(chromium, dest)
    assert cards == {} and len(rows) == 50  # a fleet: one row per host, no cards
    hosts = [host for host, _text in rows]
    assert hosts[:2] == ['db01', 'db02'] and sorted(hosts) == ['db%02d' % n for n in range(1, 51)]
    bad = [host for host, text in rows if ' fine ' not in ' %s ' % text]
    assert hosts[:len(bad)] == bad  # problems first, then the fine hosts
    db01, db02 = rows[0][1], rows[1][1]
    assert 'restore drill did not match; maintenance lock expired' in db01
    assert re.search(r'MISMATCH \d+ h ago, rto_s \d+\.\d, 12 tables compared, 1 mismatched', db01), db01
    assert re.search(r'EXPIRED acquired: held by ops \(weekly window 2026-W49\) \(expires 2026-11-30 \d\d:\d\d UTC\)', db01)
    assert 'health unreachable' in db02 and ' unreachable daily.yml unreachable ' in db02
    assert re.search(r'STALE database 30 h old, \d+\.\d GB', db02), db02  # no snapshot the day it was unreachable
    assert 'daily.yml changed monthly.yml ok weekly.yml changed' in rows[-1][1]
    titles = re.findall(r'<span title="([^"]+)">', dom[dom.index('<tr data-host="db02">'):])
    assert any('Connection timed out' in t for t in titles)  # the detail is on hover
    assert 'caption>Fleet: 50 hosts' in dom.replace('<caption>', 'caption>')
    assert len(re.findall(r'<details class="host" id="host-', dom)) == 50
    screenshot(chromium, dest, 'report-fleet.png', 100000)

    # The inline script re-sorts by a clicked heading (twice: descending); the content never needed it.
    clicked = dest.replace('.html', '-clicked.html')
    with open(dest, encoding='utf-8') as handle, open(clicked, 'w', encoding='utf-8') as out:
        out.write(handle.read().replace('</body>', '<script>var h=document.querySelector(\'table.fleet th[data-col="0"]\');'
                                                   'h.click();h.click()</script></body>'))
    resorted = re.findall(r'<tr data-host="([^"]+)">', chromium_run(chromium, 'file://' + clicked, '--dump-dom'))
    assert resorted == ['db%02d' % n for n in range(50, 0, -1)]


def test_failed_drill_expired_lock_unreachable_host_and_killed_run_are_named(chromium, tmp_path):
    events = fleet_events(hosts=3, days=100, faults=('failed_drill', 'expired_lock', 'unreachable', 'killed', 'report'))
    dest = render_log(tmp_path, events, 'faults')
    dom, cards, rows = first_screen(chromium, dest)
    assert list(cards) == ['db01', 'db02', 'db03'] and rows == []  # a few hosts: cards (problems first), no fleet table
    db01, db02, db03 = cards['db01'], cards['db02'], cards['db03']
    assert db01.startswith('db01 needs attention')
    assert re.search(r'Newest restore drill MISMATCH \d h ago \(2026-03-10 05:\d\d UTC\): rto_s \d+\.\d, '
                     r'12 tables compared, 1 mismatched', db01), db01
    assert re.search(r'Maintenance lock EXPIRED acquired: held by ops \(weekly window 2026-W11\) '
                     r'\(expires 2026-03-10 0\d:\d\d UTC\)', db01), db01
    assert 'quarterly.yml ended without a summary (killed or fatal error)' in db01
    assert 'last task: VACUUM FULL the bloated tables' in db01
    assert ('Wrong now restore drill did not match; maintenance lock expired; monthly.yml failed; '
            'quarterly.yml ended without summary') in db01
    assert re.search(r'Health now unreachable Failed to connect to the host via ssh: .*Connection timed out', db02), db02
    assert 'Wrong now database snapshot 30 h old; health unreachable; daily.yml unreachable' in db02
    assert db03.startswith('db03 fine') and 'Newest restore drill matches' in db03 and 'Maintenance lock free' in db03
    kpi = text_of(re.search(r'<div class="kpi" data-kpi="last run">.*?</div>', dom).group(0))
    assert kpi == 'ended without a summary (killed or fatal error) quarterly.yml last run'  # not the report's own run
    screenshot(chromium, dest, 'report-faults.png', 60000)

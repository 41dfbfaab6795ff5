"""The report's charts: concerns, titles for people, flat series as one line, downsampling, growth."""

from __future__ import annotations

import datetime

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog import charts
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.report import format_value

START = datetime.datetime(2026, 1, 1, 2, 0, tzinfo=datetime.timezone.utc)
PROBE = 'engineroom.maintenance.health_probe'


def daily(values):
    return [(START + datetime.timedelta(days=n), value) for n, value in enumerate(values)]


def test_titles_name_the_probe_and_the_end_of_the_path():
    assert charts.title_of(PROBE, 'probe backups: /work/newcomer/.demo/backups inodes_used_pct') == \
        'backups …/.demo/backups inodes used %'
    assert charts.title_of(PROBE, 'probe uploads: /srv used_pct') == 'uploads /srv used %'
    assert charts.title_of('engineroom.maintenance.pg_vacuum', 'dead_tuples_removed') == 'dead tuples removed'


def test_concerns():
    assert charts.concern_of(PROBE, 'probe data: /var/lib/postgresql used_bytes') == 'disks'
    assert charts.concern_of(PROBE, 'probe postgres: response_ms') == 'health'
    assert charts.concern_of('engineroom.maintenance.snapshot_archive', 'bytes_written') == 'backups'
    assert charts.concern_of('engineroom.maintenance.snapshot_restore', 'rto_s') == 'backups'
    assert charts.concern_of('engineroom.maintenance.pg_insight', 'database_bytes_total') == 'database'
    assert charts.concern_of('engineroom.maintenance.log_rotation_check', 'violations_count') == 'logs'
    assert charts.concern_of('engineroom.maintenance.maintenance_lock', 'lock_expires_in_s') == 'other'


def test_downsample_keeps_first_and_last_and_at_most_the_limit():
    points = daily(range(365))
    shown = charts.downsample(points, 60)
    assert len(shown) == 60 and shown[0] == points[0] and shown[-1] == points[-1]
    assert charts.downsample(points[:10], 60) == points[:10]


def test_flat_series_is_one_line_with_its_current_value_and_a_moving_one_a_chart_with_growth():
    flat = daily([21.0] * 200 + [21.1])
    assert charts.is_flat([v for _t, v in flat])
    row = charts.sparkline_row(PROBE, 'probe postgres: connections_used_pct', flat, format_value)
    assert 'flat over 201 results' in row and '>21.1 %<' in row and row.count(',') == 2  # a two-point line
    growing = daily([50.0 + n * 0.1 for n in range(120)])  # 0.1 % a day: about 3.04 % a month
    chart = charts.line_chart(PROBE, 'probe data: /var/lib/postgresql used_pct', growing, format_value)
    assert '+3.04 %/month' in chart and '>61.9 %<' in chart
    assert chart.count(',') - chart.count(', ') <= charts.CHART_POINTS + 1
    assert 'title="%s probe data: /var/lib/postgresql used_pct"' % PROBE in chart
    assert charts.trend_of('dead_tuples_removed', growing) is None  # no capacity figure
    assert charts.trend_of('database_bytes_total', daily([1.0, 2.0, 3.0])) is None  # three days: too little history


def test_concern_sections_put_moving_series_in_charts_and_the_rest_in_one_line_rows():
    series = {(PROBE, 'probe data: /srv used_pct'): daily([50.0 + n for n in range(40)]),
              (PROBE, 'probe postgres: response_ms'): daily([3.0 + n % 5 for n in range(40)]),
              ('engineroom.maintenance.pg_vacuum', 'tables_processed'): daily([12] * 40)}
    page = charts.concern_sections(series, format_value)
    assert page.index('data-concern="database"') < page.index('data-concern="disks"') < page.index('data-concern="health"')
    assert page.count('<figure class="chart"') == 1 and page.count('<tr class="spark"') == 2  # a timing is a sparkline

"""Table selection: globs over catalog rows, thresholds, stale statistics, ordering, totals."""

from __future__ import annotations

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare import vacuum as vac
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.table_patterns import pattern_matches, select_tables

THRESHOLDS = dict(min_dead_tuples=1000, min_dead_ratio=0.2, analyze_threshold_ratio=0.1)


def row(table='t', schema='public', live=10000, dead=0, mod=0, analyzed=True, pages=8192 * 100, reltuples=None,
        can_maintain=True, relkind='r', toast_live=0, toast_dead=0, ancestors=None):
    return dict(oid=1, schema=schema, table=table, live_tuples=live, dead_tuples=dead, mod_since_analyze=mod,
                analyzed=analyzed, relpages_bytes=pages, reltuples=float(live) if reltuples is None else reltuples,
                can_maintain=can_maintain,
                relkind=relkind, toast_oid=2 if toast_live or toast_dead else 0, toast_live_tuples=toast_live,
                toast_dead_tuples=toast_dead, ancestors=ancestors)


@pytest.mark.parametrize('pattern, schema, table, expected', [
    ('public.audit_*', 'public', 'audit_log', True),
    ('public.audit_*', 'archive', 'audit_log', False),
    ('audit_*', 'archive', 'audit_log', True),
    ('audit_?og', 'public', 'audit_log', True),
    ('Audit_*', 'public', 'audit_log', False),
    ('x"; DROP TABLE y; --', 'public', 'y', False),
    ('*', 'public', 'x"; DROP TABLE y; --', True),
])
def test_pattern_matches(pattern, schema, table, expected):
    assert pattern_matches(pattern, schema, table) is expected


def test_select_tables_schemas_include_exclude_and_unmatched():
    rows = [row('audit_log'), row('audit_archive'), row('orders'), row('audit_log', schema='archive')]
    selected, unmatched = select_tables(rows, schemas=['public'], include=['audit_*', 'nothing_*'],
                                        exclude=['public.audit_archive'])
    assert [(r['schema'], r['table']) for r in selected] == [('public', 'audit_log')]
    assert unmatched == ['nothing_*']
    everything, none_missing = select_tables(rows)
    assert len(everything) == 4 and none_missing == []


@pytest.mark.parametrize('values, mode, expected', [
    (dict(dead=1000, live=5000), 'vacuum_analyze', 'vacuum_analyze'),      # both thresholds reached exactly
    (dict(dead=999, live=10), 'vacuum_analyze', None),                      # too few dead tuples
    (dict(dead=1500, live=10000), 'vacuum_analyze', None),                  # ratio 0.15 < 0.2
    (dict(dead=1500, live=0), 'vacuum', 'vacuum'),                          # no live tuple: fully dead
    (dict(dead=5000, live=5000), 'analyze', None),                          # analyze mode ignores bloat
    (dict(analyzed=False), 'vacuum_analyze', 'analyze'),                    # never analyzed
    (dict(analyzed=False), 'vacuum', None),                                 # vacuum mode ignores statistics
    (dict(mod=1001, live=10000), 'freeze', 'analyze'),                      # 0.1001 > 0.1
    (dict(mod=1000, live=10000), 'vacuum_analyze', None),                   # exactly 0.1 is not over
    (dict(dead=5000, live=5000), 'full', 'full'),
    (dict(live=301000, reltuples=1000.0), 'vacuum_analyze', 'analyze'),    # estimate far off the live rows
    (dict(live=10900, reltuples=10000.0), 'vacuum_analyze', None),         # 9 % off: fresh enough
])
def test_plan_action(values, mode, expected):
    decided = vac.plan_action(row(**values), mode, THRESHOLDS)
    assert (decided[0] if decided else None) == expected


def test_force_selects_with_mode_and_reason():
    assert vac.plan_action(row(), 'freeze', THRESHOLDS, force=True) == ('freeze', 'forced')


def test_plan_orders_largest_first_by_lock_free_estimate():
    rows = [row('small', dead=2000, live=2000, pages=8192 * 10, reltuples=4000.0),
            row('grew', dead=20000, live=20000, pages=8192 * 10, reltuples=4000.0),  # 10x the tuples since
            row('big', dead=5000, live=5000, pages=8192 * 40, reltuples=10000.0)]
    entries = vac.plan('db', rows, 'vacuum_analyze', THRESHOLDS)
    assert [e['table'] for e in entries] == ['grew', 'big', 'small']
    assert entries[0]['_estimate'] == 8192 * 100
    assert all(e['status'] == 'planned' and e['database'] == 'db' for e in entries)
    assert 'dead tuples 20000 >= 1000, dead ratio 1.00 >= 0.2' == entries[0]['reason']


def test_estimate_without_statistics_falls_back_to_relpages():
    assert vac.estimated_bytes(row(live=0, dead=0, reltuples=-1.0, pages=8192)) == 8192


def test_totals_count_only_vacuum_work():
    entries = [
        dict(status='done', action='vacuum_analyze', dead_tuples_before=1200, dead_tuples_after=0,
             size_bytes_before=100, size_bytes_after=100),
        dict(status='done', action='full', dead_tuples_before=300, dead_tuples_after=0,
             size_bytes_before=1000, size_bytes_after=400),
        dict(status='done', action='analyze', dead_tuples_before=500, dead_tuples_after=0,
             size_bytes_before=10, size_bytes_after=10),
        dict(status='skipped', action='vacuum', dead_tuples_before=900, dead_tuples_after=None,
             size_bytes_before=None, size_bytes_after=None),
    ]
    assert vac.totals(entries) == dict(tables_processed=3, dead_tuples_removed=1500, toast_dead_tuples_removed=0,
                                       bytes_reclaimed=600)
    assert vac.count_by(entries, 'status') == dict(done=3, skipped=1)


def test_toast_bloat_selects_a_table_whose_heap_is_clean():
    clean_heap = row('docs', live=1000, dead=20, toast_live=4000, toast_dead=2000)
    assert vac.bloated_parts(clean_heap, 1000, 0.2) == ['toast']
    action, reason = vac.plan_action(clean_heap, 'vacuum_analyze', THRESHOLDS)
    assert action == 'vacuum_analyze' and reason == 'TOAST dead tuples 2000 >= 1000, TOAST dead ratio 0.50 >= 0.2'
    both = row(live=5000, dead=5000, toast_live=1000, toast_dead=1000)
    assert vac.plan_action(both, 'vacuum', THRESHOLDS)[1].count('>=') == 4
    assert vac.plan_action(clean_heap, 'analyze', THRESHOLDS) is None


def test_totals_count_toast_tuples_and_held_back_tables():
    entries = [
        dict(status='done', action='vacuum_analyze', dead_tuples_before=20, dead_tuples_after=0,
             toast_dead_tuples_before=2000, toast_dead_tuples_after=0, size_bytes_before=1, size_bytes_after=1),
        dict(status='held_back', action='vacuum_analyze', dead_tuples_before=500, dead_tuples_after=400,
             toast_dead_tuples_before=0, toast_dead_tuples_after=0, size_bytes_before=1, size_bytes_after=1),
    ]
    assert vac.totals(entries) == dict(tables_processed=1, dead_tuples_removed=2120, toast_dead_tuples_removed=2000,
                                       bytes_reclaimed=0)


@pytest.mark.parametrize('values, mode, expected', [
    (dict(analyzed=False, reltuples=-1.0), 'vacuum_analyze', ('analyze', 'partitioned parent never analyzed')),
    (dict(analyzed=False, reltuples=-1.0), 'vacuum', None),
    (dict(live=301000, reltuples=1000.0), 'analyze', ('analyze', 'partitioned parent estimates 1000 rows, '
                                                                 'its partitions hold 301000 live')),
    (dict(live=10500, reltuples=10000.0), 'vacuum_analyze', None),   # 5 % off: fresh enough
    (dict(live=10500, reltuples=10000.0), 'freeze', None),
])
def test_partitioned_parent_is_analyzed_never_vacuumed(values, mode, expected):
    assert vac.plan_action(row('measurements', relkind='p', dead=0, **values), mode, THRESHOLDS) == expected
    assert vac.plan_action(row('measurements', relkind='p'), mode, THRESHOLDS, force=True) == (
        None if mode == 'vacuum' else ('analyze', 'forced'))


def test_naming_a_partitioned_parent_selects_its_partitions():
    rows = [row('measurements', relkind='p'), row('measurements_2026', ancestors=[['public', 'measurements']]),
            row('measurements_old', schema='archive', ancestors=[['public', 'measurements']]), row('other')]
    selected, unmatched = select_tables(rows, include=['measurements'])
    assert [r['table'] for r in selected] == ['measurements', 'measurements_2026', 'measurements_old']
    assert unmatched == []
    selected = select_tables(rows, include=['public.measurements'], exclude=['archive.*'])[0]
    assert [r['table'] for r in selected] == ['measurements', 'measurements_2026']
    selected = select_tables(rows, exclude=['measurements'])[0]
    assert [r['table'] for r in selected] == ['other']


def test_budget():
    assert not vac.Budget(0.0, None).exhausted()
    assert vac.Budget(0.0, 1).exhausted()  # monotonic time is far past 1 s after 0.0

"""Review logic: figures from INFO text, deltas across restarts, grading, thresholds, key rules."""

from __future__ import annotations

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.actions import check_key_rules
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.review import (
    ReviewError,
    assess,
    deltas,
    figures_of,
    keyspace,
    resolve_thresholds,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.scan import ScanError

INFO = dict(used_memory='950', maxmemory='1000', mem_fragmentation_ratio='1.2', mem_fragmentation_bytes='10',
            keyspace_hits='90', keyspace_misses='10', evicted_keys='7', expired_keys='3', rdb_last_save_time='1000',
            rdb_changes_since_last_save='5', rdb_last_bgsave_status='ok', role='master', run_id='r1', loading='0',
            db0='keys=10,expires=4,avg_ttl=1500', db3='keys=1,expires=0,avg_ttl=0',
            slave0='ip=10.0.0.2,port=6379,state=online,offset=10,lag=12')


def test_figures_and_keyspace_from_info():
    figures = figures_of(INFO, now_s=4600)
    assert figures['memory_pct'] == 95.0 and figures['hit_ratio_pct'] == 90.0 and figures['rdb_age_s'] == 3600
    assert figures['replication_lag_s'] == 12
    assert keyspace(INFO) == {'db0': dict(keys=10, expires=4, avg_ttl_ms=1500), 'db3': dict(keys=1, expires=0, avg_ttl_ms=0)}


def test_deltas_first_run_same_server_and_after_restart():
    figures = figures_of(INFO, now_s=4600)
    assert deltas(figures, INFO, {})['evicted_keys'] is None
    same = deltas(figures, INFO, dict(run_id='r1', evicted_keys=5, expired_keys=3, keyspace_hits=80, keyspace_misses=0))
    assert same['evicted_keys'] == 2 and same['expired_keys'] == 0 and same['hit_ratio_pct'] == 50.0
    restarted = deltas(figures, INFO, dict(run_id='r0', evicted_keys=500))
    assert restarted['evicted_keys'] == 7  # counted from zero: the counters reset with the server


def test_assess_grades_every_concern():
    t = resolve_thresholds(dict(rdb_age_degraded_h=0.5, rdb_age_unhealthy_h=2))
    figures = figures_of(INFO, now_s=4600)
    status, reasons = assess(figures, INFO, dict(evicted_keys=2), t)
    assert status == 'unhealthy'
    assert any('95.0 % of maxmemory' in r for r in reasons) and any('2 keys evicted' in r for r in reasons)
    assert any('1.0 h old' in r for r in reasons) and any('replication lag 12 s' in r for r in reasons)
    loading = dict(INFO, loading='1', loading_loaded_perc='40.00', used_memory='1')
    assert any('loading its dataset (40.00 % done)' in r for r in assess(figures_of(loading, 0), loading, {}, t)[1])
    failed = dict(INFO, rdb_last_bgsave_status='err', used_memory='1')
    assert 'MISCONF' in ' '.join(assess(figures_of(failed, 0), failed, {}, resolve_thresholds({}))[1])


def test_thresholds_refused_when_negative_or_out_of_order():
    with pytest.raises(ReviewError, match='must not be negative'):
        resolve_thresholds(dict(memory_degraded_pct=-1))
    with pytest.raises(ReviewError, match='out of order'):
        resolve_thresholds(dict(fragmentation_degraded_ratio=4, fragmentation_unhealthy_ratio=2))


def test_key_rules_refuse_star_unless_allowed():
    with pytest.raises(ScanError, match='selects every key'):
        check_key_rules([], [dict(pattern='*', min_idle_s=10)], allow_all=False)
    check_key_rules([], [dict(pattern='*', min_idle_s=10)], allow_all=True)
    with pytest.raises(ScanError, match='ttl_s must be at least 1'):
        check_key_rules([dict(pattern='a:*', ttl_s=0)], [], allow_all=False)

"""What the maintenance log keeps of a module result (maintlog/record.py): generic, no per-module code."""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog import record


def test_summary_metrics_and_msg_are_kept_as_returned():
    fields = record.record_fields(dict(
        changed=True, summary='vacuumed 7 of 122 tables, 39,200 dead tuples removed in 1.4 s',
        metrics=dict(duration_ms=1400.2, dead_tuples_removed=39200, tables_processed=7, label='x', flag=True),
        msg='done', executed_commands=['VACUUM (ANALYZE) public.orders'], status='changed'))
    assert fields == dict(summary='vacuumed 7 of 122 tables, 39,200 dead tuples removed in 1.4 s',
                          metrics=dict(duration_ms=1400.2, dead_tuples_removed=39200, tables_processed=7),
                          msg='done', result_status='changed')


def test_name_status_lists_become_items_with_unit_numbers():
    fields = record.record_fields(dict(probes=[
        dict(name='uploads', kind='disk', status='degraded', message='/srv 82.0 % used', response_ms=0.4,
             details=dict(paths=[dict(path='/srv', used_pct=82.0, size_bytes=1000, free=5)]),
             thresholds=dict(degraded_pct=70)),
        dict(name='db', kind='postgres', status='healthy', message='ok', response_ms=3.1,
             details=dict(connections=4, connections_pct=8.0)),
    ], tables=[], other=[dict(name='x')]))
    assert fields['items'] == dict(probes=[
        dict(name='uploads', status='degraded', message='/srv 82.0 % used',
             metrics={'/srv size_bytes': 1000, '/srv used_pct': 82.0, 'response_ms': 0.4}),
        dict(name='db', status='healthy', message='ok', metrics=dict(connections_pct=8.0, response_ms=3.1)),
    ])


def test_violations_and_findings_are_kept_in_compact_form():
    fields = record.record_fields(dict(violations=[
        dict(name='/var/log/app.log', message='not rotated for 3 days', age_days=3, nested=dict(a=1)),
        'world-writable /srv/uploads',
    ], findings=['app: 3 unused indexes take 48 MB']))
    assert fields['violations'] == [
        dict(name='/var/log/app.log', message='not rotated for 3 days', age_days=3, kind='violation'),
        dict(message='world-writable /srv/uploads', kind='violation'),
        dict(message='app: 3 unused indexes take 48 MB', kind='finding')]


def test_entries_named_by_path_or_table_and_graded_by_their_own_violations():
    fields = record.record_fields(dict(
        logs=[dict(path='/srv/logs/audit.log', size_bytes=7340032, violations=[
                   dict(code='oversized', message='7.0 MiB > 5 MiB'), dict(code='too_many_versions', message='9 > 7')]),
              dict(path='/srv/logs/app.log', size_bytes=10, violations=[])],
        tables=[dict(database='app', schema='public', table='orders', status='done', dead_tuples_before=12000,
                     size_bytes_before=8192)],
        verified=[dict(path='/x', ok=True, message='fine')]))
    assert fields['items'] == dict(
        logs=[dict(name='/srv/logs/audit.log', status='violation', message='7.0 MiB > 5 MiB; 9 > 7',
                   metrics=dict(size_bytes=7340032)),
              dict(name='/srv/logs/app.log', status='compliant', metrics=dict(size_bytes=10))],
        tables=[dict(name='app.public.orders', status='done')])  # numbers without a unit suffix stay out


def test_failures_carry_rc_and_the_tail_of_stderr():
    result = dict(msg='non-zero return code', rc=2, stderr='ls: cannot access x\n', stdout='lots')
    fields = record.record_fields(result, failed=True)
    assert fields['msg'] == 'non-zero return code: rc 2: ls: cannot access x'


def test_a_failed_loop_keeps_the_failed_items_reasons_but_not_hidden_ones():
    fields = record.record_fields(dict(msg='One or more items failed', results=[
        dict(failed=False, msg='purged 10 rows'), dict(failed=True, msg='table public.audit_log does not exist'),
        dict(failed=True, msg='password secret-pw refused', _ansible_no_log=True)]), failed=True)
    assert fields['msg'] == 'One or more items failed: table public.audit_log does not exist'


def test_loop_results_keep_visible_item_summaries():
    fields = record.record_fields(dict(msg='All items completed', results=[
        dict(summary='snapshot app 12 MB'), dict(summary='secret one', _ansible_no_log=True),
        dict(summary='snapshot billing 3 MB')]))
    assert fields['summary'] == 'snapshot app 12 MB; snapshot billing 3 MB'


def test_long_text_is_clipped_to_one_line():
    fields = record.record_fields(dict(msg='line one\nline two ' + 'y' * 2000))
    assert '\n' not in fields['msg'] and len(fields['msg']) == record.TEXT_LIMIT
    assert fields['msg'].startswith('line one line two') and fields['msg'].endswith('…')


def test_host_status_order():
    assert record.host_status(dict(ok=3, changed=1, failures=1, unreachable=1)) == 'unreachable'
    assert record.host_status(dict(ok=3, changed=1, failures=1, unreachable=0)) == 'failed'
    assert record.host_status(dict(ok=3, changed=1)) == 'changed'
    assert record.host_status(dict(ok=3)) == 'ok'
    assert record.host_status(dict(ok=0, skipped=2)) == 'skipped'

"""Strict JSON lines and failure reasons from every place ansible puts them (maintlog/record.py)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog import record


def strict_loads(line):
    """json.loads that refuses NaN/Infinity, as JSON.parse, jq and RFC 8259 do."""
    def refuse(token):
        raise ValueError('non-standard JSON token %s' % token)
    return json.loads(line, parse_constant=refuse)


def test_non_finite_numbers_become_null_and_are_listed():
    metrics = dict(ratio=float('nan'), big=float('inf'), small=-float('inf'), fine=1.5)
    line = record.json_line(dict(event='task', metrics=metrics, items=dict(probes=[dict(metrics=dict(x=float('nan')))])))
    parsed = strict_loads(line)
    assert line.endswith('\n') and 'NaN' not in line and 'Infinity' not in line
    assert parsed['metrics'] == dict(ratio=None, big=None, small=None, fine=1.5)
    assert parsed['non_finite'] == ['metrics.ratio', 'metrics.big', 'metrics.small', 'items.probes[0].metrics.x']


def test_finite_records_have_no_non_finite_key_and_odd_values_become_strings():
    parsed = strict_loads(record.json_line(dict(event='task', when=object.__name__, n=3, s='é')))
    assert 'non_finite' not in parsed and parsed['s'] == 'é'


@pytest.mark.parametrize('result, expected', [
    (dict(msg='plain'), 'plain'),
    (dict(reason="Could not find or access 'x.yml' on the Ansible Controller."),
     "Could not find or access 'x.yml' on the Ansible Controller."),
    (dict(failed_when_result="Error while evaluating conditional: 'undefined_thing' is undefined"),
     "failed_when: Error while evaluating conditional: 'undefined_thing' is undefined"),
    (dict(msg='MODULE FAILURE', exception='Traceback (most recent call last):\n  File "x"\nValueError: bad value\n'),
     'MODULE FAILURE: ValueError: bad value'),
    (dict(msg='non-zero return code', rc=2, stderr='line one\n' + 'x' * 400 + 'TAIL'),
     'non-zero return code: rc 2: ' + ('x' * 400 + 'TAIL')[-300:]),
    (dict(msg='MODULE FAILURE', module_stderr='boom', rc=1), 'MODULE FAILURE: rc 1: boom'),
    (dict(msg='One or more items failed', results=[
        dict(item='/a', failed=False, msg='fine'), dict(item='/b', failed=True, msg='no /b', rc=2),
        dict(item='secret', failed=True, msg='hidden', _ansible_no_log=True)]),
     'One or more items failed: item /b: no /b: rc 2'),
    (dict(msg='', exception='(traceback unavailable)'), ''),
])
def test_failure_reasons_come_from_every_place(result, expected):
    assert record.failure_message(result) == expected


def test_counts_of_recorded_statuses_follow_ansibles_recap():
    assert record.counts_of(['ok', 'changed', 'ignored', 'failed', 'rescued', 'skipped', 'unreachable']) == dict(
        ok=3, changed=1, unreachable=1, failures=1, skipped=1, rescued=1, ignored=1)


def test_schema_1_ignored_failures_read_as_ignored():
    assert record.task_status(dict(status='failed', ignored=True)) == 'ignored'
    assert record.task_status(dict(status='failed')) == 'failed'

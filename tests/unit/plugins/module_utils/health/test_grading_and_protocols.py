"""Pure logic of the probes: grading, thresholds, Redis protocol, Prometheus text."""

from __future__ import annotations

import os

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.health import core, system


@pytest.mark.parametrize('value, expected', [(69.9, 'healthy'), (70, 'degraded'), (89.9, 'degraded'),
                                             (90, 'unhealthy'), (100, 'unhealthy')])
def test_grade_boundaries_follow_disk_defaults(value, expected):
    assert core.grade(value, 70, 90) == expected


def test_grade_with_a_disabled_threshold():
    assert core.grade(10_000, None, None) == 'healthy'
    assert core.grade(10_000, 5, None) == 'degraded'


def test_worst():
    assert core.worst([]) == 'healthy'
    assert core.worst(['healthy', 'unhealthy', 'degraded']) == 'unhealthy'
    assert core.worst(['healthy', 'degraded']) == 'degraded'


def test_thresholds_merge_defaults_with_probe_values():
    resolved = core.resolve_thresholds(dict(name='db', kind='postgres', latency_degraded_ms=200))
    assert resolved == dict(latency_degraded_ms=200, latency_unhealthy_ms=3000, degraded_pct=80, unhealthy_pct=95)


@pytest.mark.parametrize('probe, message', [
    (dict(degraded_pct=91), 'thresholds out of order: degraded_pct (91) must not be above unhealthy_pct (90)'),
    (dict(unhealthy_pct=-1), 'unhealthy_pct must not be negative'),
    (dict(degraded_pct=101, unhealthy_pct=102), 'degraded_pct is a percentage, at most 100'),
])
def test_bad_thresholds(probe, message):
    with pytest.raises(core.ProbeConfigError, match=message.replace('(', r'\(').replace(')', r'\)')):
        core.resolve_thresholds(dict(probe, name='root', kind='disk'))


def test_finding_keeps_the_worst_status_and_every_reason():
    finding = core.Finding()
    finding.flag('degraded', 'slow')
    finding.flag('healthy', 'ignored')
    finding.flag('unhealthy', 'down')
    finding.flag('degraded', 'also slow')
    assert finding.status == 'unhealthy'
    assert finding.reasons == ['slow', 'down', 'also slow']


def test_processes_named_finds_this_interpreter():
    with open('/proc/self/comm') as handle:
        name = handle.read().strip()
    assert os.getpid() in system._processes_named(name)
    assert system._processes_named('no-such-process-name-xyz') == []


def test_prometheus_text_escapes_labels():
    results = [dict(name='a "quoted"\\name\n', kind='disk', status='degraded', response_ms=12.5)]
    text = core.prometheus_text(results, 'degraded', 1700000000.0)
    assert 'engineroom_health_probe_status{name="a \\"quoted\\"\\\\name\\n",kind="disk"} 1' in text
    assert 'engineroom_health_probe_response_seconds{name="a \\"quoted\\"\\\\name\\n",kind="disk"} 0.0125' in text
    assert 'engineroom_health_status 1' in text
    assert text.endswith('\n')

"""The cache_maintenance role: review only by default, actions only through its `actions` entry point, the gate."""

from __future__ import annotations

import os

from tests.harness.playbook import run_tasks


def role(name, server, entry='main', **variables):
    variables.setdefault('cache_maintenance_login_port', server.port)
    variables.setdefault('cache_maintenance_state_file', os.path.join(server.work_dir, 'state.json'))
    include = {'name': 'engineroom.maintenance.cache_maintenance'}
    if entry != 'main':
        include['tasks_from'] = entry
    return {'name': name, 'ansible.builtin.include_role': include, 'vars': variables, 'ignore_errors': True}


def test_review_then_actions_then_gate(redis_server):
    server = redis_server('--maxmemory', '64mb')
    server.fill('session:', 30)
    rules = [{'pattern': 'session:*', 'ttl_s': 900}]
    run = run_tasks([
        role('review', server, cache_maintenance_scan_patterns=['session:*'], cache_maintenance_expire_without_ttl=rules),
        {'name': 'after review', 'ansible.builtin.set_fact': {'reviewed': '{{ cache_maintenance_result }}'}},
        role('actions', server, entry='actions', cache_maintenance_expire_without_ttl=rules),
        {'name': 'after actions', 'ansible.builtin.set_fact': {'acted': '{{ cache_maintenance_result }}'}},
        role('gate', server, cache_maintenance_thresholds={'memory_degraded_pct': 0.0001, 'memory_unhealthy_pct': 0.0002}),
    ])
    reviewed, acted = run.result('after review'), run.result('after actions')
    reviewed, acted = reviewed['ansible_facts']['reviewed'], acted['ansible_facts']['acted']
    assert reviewed['actions'] == [] and reviewed['scan']['patterns'][0]['keys_without_ttl'] == 30
    assert acted['actions'][0]['keys_changed'] == 30 and int(server.cli('TTL', 'session:3')) > 800
    gate = [t for t in run.tasks if t['_task'].endswith('Fail when the cache is at least unhealthy')]
    assert [bool(t.get('skipped')) for t in gate] == [True, True, False]
    assert gate[-1].get('failed') and 'of maxmemory' in gate[-1]['msg']

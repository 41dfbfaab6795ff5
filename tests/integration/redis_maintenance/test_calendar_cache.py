"""The calendar: daily.yml reviews the cache, weekly.yml runs its actions, only with cache_maintenance_enabled."""

from __future__ import annotations

import json
import os

from tests.harness.playbook import REPO_ROOT, run_playbook


def calendar(name, tmp_path, **extra):
    env = dict(ENGINEROOM_MAINTENANCE_LOG_DIR=str(tmp_path / 'maintenance-log'), ANSIBLE_RUN_TAGS='cache')
    variables = dict(engineroom_state_dir=str(tmp_path / 'state'), **extra)
    return run_playbook(os.path.join(REPO_ROOT, 'playbooks', name), extra_vars=variables, env=env)


def test_daily_review_weekly_actions_and_the_maintenance_log(redis_server, tmp_path):
    server = redis_server('--maxmemory', '64mb')
    server.fill('session:', 25)
    enabled = dict(cache_maintenance_enabled=True, cache_maintenance_login_port=server.port,
                   cache_maintenance_state_file=str(tmp_path / 'redis-state.json'),
                   cache_maintenance_scan_patterns=['session:*'],
                   cache_maintenance_expire_without_ttl=[{'pattern': 'session:*', 'ttl_s': 600}])
    off = calendar('daily.yml', tmp_path, cache_maintenance_login_port=server.port)
    daily = calendar('daily.yml', tmp_path, **enabled)
    untouched = server.cli('TTL', 'session:1')
    weekly = calendar('weekly.yml', tmp_path, **enabled)
    assert off.rc == daily.rc == weekly.rc == 0, (daily.stderr, weekly.stderr)

    assert off.result('Review the cache (no action)').get('skipped')  # off by default
    assert not [t for t in off.tasks if t['_task'].endswith('Review Redis at 127.0.0.1:%d' % server.port)]
    review = daily.result('Review Redis at 127.0.0.1:%d' % server.port)
    assert review['actions'] == [] and review['scan']['patterns'][0]['keys_without_ttl'] == 25
    assert untouched == '-1'  # the daily run only reads
    acted = weekly.result('Review Redis at 127.0.0.1:%d' % server.port)
    assert acted['actions'][0]['keys_changed'] == 25 and 0 < int(server.cli('TTL', 'session:1')) <= 600
    published = weekly.result("Publish the week's figures for AWX and show_custom_stats")['ansible_stats']['data']
    assert published['weekly']['localhost']['cache'] == acted['summary']
    published = daily.result("Publish the day's figures for AWX and show_custom_stats")['ansible_stats']['data']
    assert published['daily']['localhost']['cache'] == review['summary']

    # The maintenance log (what the HTML report reads) holds the module's summary and metrics as they are.
    with open(str(tmp_path / 'maintenance-log' / 'maintenance.jsonl')) as handle:
        records = [json.loads(line) for line in handle]
    mine = [r for r in records if r.get('module') == 'engineroom.maintenance.redis_maintenance' and r.get('summary')]
    assert [r['summary'] for r in mine] == [review['summary'], acted['summary']]
    assert mine[-1]['metrics']['keys_ttl_set'] == 25

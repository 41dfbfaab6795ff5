"""playbooks/triage.yml end to end: one command, a bundle per host fetched to the controller."""

from __future__ import annotations

import json
import os

from tests.harness.playbook import REPO_ROOT, run_playbook
from tests.integration.triage.test_triage_bundle import members


def test_triage_playbook_fetches_one_bundle_per_host(tmp_path, pg, pg_probe, redis):
    logs = tmp_path / 'logs'
    logs.mkdir()
    (logs / 'app.log').write_text('ERROR something broke\n')
    fetched = tmp_path / 'controller'
    extra = dict(engineroom_postgres=dict(pg_probe, container='ignored-here'),
                 engineroom_logs_dir=str(logs), engineroom_state_dir=str(tmp_path / 'state'),
                 triage_dest=str(tmp_path / 'host'), triage_fallback_dirs=[], triage_containers=False,
                 triage_redis=[dict(name='cache', login_port=redis.port)], triage_fetch_dir=str(fetched))
    run = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'triage.yml'), extra_vars=extra)
    assert run.rc == 0, run.stderr
    gathered = run.result('Gather the triage bundle')
    report = run.result('Report the triage')['msg']
    assert report[0] == gathered['summary'] and 'triage of' in report[0]
    assert 'maintenance_log: no maintenance log at (not configured)' in report[1:]   # said, not failed
    local = fetched / 'localhost' / os.path.basename(gathered['bundle'])
    assert local.exists()
    files = dict((n.split('/', 1)[1], d) for n, d in members(str(local)))
    activity = json.loads(files['postgres/activity.json'])
    assert activity['target'].endswith('/app')
    assert 'logs/errors.json' in files and 'redis/cache-info.txt' in files
    assert json.loads(files['maintenance/lock.json'])['present'] is False
    assert pg_probe['login_password'].encode() not in b''.join(files.values())

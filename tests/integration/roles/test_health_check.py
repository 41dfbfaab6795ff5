"""The health_check role builds its probes from the fleet-wide inventory variables."""

from __future__ import annotations

import json
import os

from tests.harness.playbook import REPO_ROOT, run_playbook

PLAYBOOK = os.path.join(REPO_ROOT, 'playbooks', 'health_check.yml')


def test_probes_come_from_the_inventory(pg, tmp_path, http):
    state_dir = tmp_path / 'state'
    state_dir.mkdir()
    fleet = dict(
        engineroom_postgres=dict(login_host=pg.host, login_port=pg.port, login_user='postgres',
                                 login_password=pg.superuser_password, container='ignored-here'),
        engineroom_database='postgres',
        engineroom_uploads_dir=str(tmp_path),
        engineroom_state_dir=str(state_dir),
        health_check_http=[dict(name='api', url=http.url('/health'))],
        health_check_processes=['postgres'],
        health_check_units=['postgres.service'],
        health_check_fail_on='degraded',
    )
    run = run_playbook(PLAYBOOK, extra_vars=fleet)
    result = run.result('Probe the host\'s services')
    names = [p['name'] for p in result['probes']]
    assert names == ['database', 'disks', 'api', 'maintenance', 'unit postgres.service', 'process postgres']
    assert result['status'] == 'healthy', result['summary']
    assert run.rc == 0

    # A lock in the state directory makes the same run degraded, and the role fails at fail_on: degraded.
    (state_dir / 'maintenance.json').write_text(json.dumps(dict(
        schema_version=1, owner='test', reason='test', run_id='x', controller='c', host='h',
        started_at='2026-01-01T00:00:00Z', expires_at='2999-01-01T00:00:00Z', ttl_s=1, readonly_roles=[])))
    run = run_playbook(PLAYBOOK, extra_vars=fleet)
    probes = dict((p['name'], p) for p in run.result('Probe the host\'s services')['probes'])
    assert probes['maintenance']['status'] == 'degraded'
    assert run.rc != 0
    assert run.result('Fail when the host is at least degraded')['failed'] is True

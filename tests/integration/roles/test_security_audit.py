"""The security_audit role takes its app root and database from the fleet-wide variables, fixes modes once."""

from __future__ import annotations

import json
import os
import stat

from tests.harness.playbook import run_tasks
from tests.harness.security_audit import seed_access, seed_app_tree, tree_state

AUDIT_TASK = 'Run the security audit'


def audits(run):
    """Results of the role's module task (named with or without the role prefix, depending on the callback)."""
    return [t for t in run.tasks if t['_task'].endswith(AUDIT_TASK)]


def test_role_from_fleet_variables_fixes_once_then_reports_no_change(pg, tmp_path):
    seed_access(pg)
    app, dummy = seed_app_tree(str(tmp_path))
    before = tree_state(str(tmp_path))
    fleet = dict(
        engineroom_app_root=app,
        engineroom_postgres=dict(login_host=pg.host, login_port=pg.port, login_user='postgres',
                                 login_password=pg.superuser_password, container='ignored-here'),
        engineroom_database='app',
        security_audit_fix=True,
        security_audit_checks=['secret_files', 'world_writable_dirs', 'secret_scan', 'docker_socket',
                               'superusers', 'stale_logins'],
        security_audit_last_login_table='sa_shop.users',
        security_audit_last_login_user_column='email',
        security_audit_last_login_column='last_login_at',
    )
    role = {'ansible.builtin.include_role': {'name': 'engineroom.maintenance.security_audit'}}
    run = run_tasks([dict(role, name='first'), dict(role, name='second')], extra_vars=fleet)
    assert run.rc == 0, run.stderr
    first, second = audits(run)
    superusers = [name for name, in pg.execute('SELECT rolname FROM pg_roles WHERE rolsuper ORDER BY rolname')
                  if name != 'postgres']

    assert first['changed'] is True
    assert [(f['code'], f.get('path', f.get('object')), f['status']) for f in first['findings']] == [
        ('secret_file_world_readable', os.path.join(app, '.env'), 'fixed'),
        ('world_writable_dir', os.path.join(app, 'uploads'), 'fixed'),
        ('hardcoded_secret', os.path.join(app, 'config', 'settings.py'), 'open'),   # the private key; the AWS
    ] + [('pg_superuser', 'role:%s' % name, 'open') for name in superusers] + [
        ('stale_login', 'user:bob@shop.test', 'open'), ('stale_login', 'user:carol@shop.test', 'open')]
    assert first['checks']['docker_socket'] in ('ran', 'skipped')

    assert second['changed'] is False
    assert [f['code'] for f in second['findings']][:1] == ['hardcoded_secret']   # key ID is AWS's documented example
    assert stat.S_IMODE(os.stat(os.path.join(app, '.env')).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(app, 'uploads')).st_mode) == 0o775
    after = tree_state(str(tmp_path))
    assert {k: v for k, v in after.items() if k not in ('app/.env', 'app/uploads')} == \
        {k: v for k, v in before.items() if k not in ('app/.env', 'app/uploads')}
    assert after['app/.env'][1] == before['app/.env'][1]
    assert pg.superuser_password not in json.dumps(run.report)


def test_role_without_fleet_variables_only_reports(tmp_path):
    run = run_tasks([{'name': 'alone', 'ansible.builtin.include_role': {'name': 'engineroom.maintenance.security_audit'}}],
                    extra_vars=dict(security_audit_checks=['secret_files', 'superusers']))
    assert run.rc == 0, run.stderr
    result, = audits(run)
    assert result['changed'] is False
    assert result['checks'] == dict(secret_files='skipped', superusers='skipped')
    assert result['notes'] == ['no PostgreSQL connection option given: superusers skipped',
                               'no app_root given: secret_files skipped']

"""The maintenance_window role: enter renders the gate and takes the lock, exit releases it."""

from __future__ import annotations

import json
import os
import stat

from tests.harness.playbook import run_tasks
from tests.integration.maintenance_lock.conftest import APP_ROLE, DATABASE, insert_as, role_settings

PREFIX = 'engineroom.maintenance.maintenance_window : '


def role_task(name, action, **variables):
    include = {'name': 'engineroom.maintenance.maintenance_window', 'tasks_from': action}
    return {'name': name, 'ansible.builtin.include_role': include, 'vars': variables}


def test_enter_and_exit(roles, lock_dir):
    pg = roles
    original = role_settings(pg, APP_ROLE)
    paths = dict(maintenance_window_lock_file=os.path.join(lock_dir, 'state', 'maintenance.json'),
                 maintenance_window_flag_file=os.path.join(lock_dir, 'state', 'maintenance.flag'))
    db = dict(maintenance_window_login_host=pg.host, maintenance_window_login_port=pg.port,
              maintenance_window_login_password=pg.superuser_password, maintenance_window_login_db=DATABASE)
    nginx = dict(maintenance_window_nginx_enabled=True, maintenance_window_nginx_reload=False,
                 maintenance_window_nginx_http_conf=os.path.join(lock_dir, 'http.conf'),
                 maintenance_window_nginx_server_conf=os.path.join(lock_dir, 'server.conf'),
                 maintenance_window_admin_networks=['10.0.0.0/8'],
                 maintenance_window_admin_token='s3cret-token-0123456789')
    run = run_tasks([
        role_task('bad token', 'enter', maintenance_window_owner='ops', **dict(
            paths, **dict(nginx, maintenance_window_admin_token='short'))),
    ])
    refused = run.result(PREFIX + 'Check the admin token is usable in an nginx map')
    assert run.rc != 0 and refused['failed'] is True
    assert 'at least 16 characters' in refused['msg'] and 'short' not in refused['msg']
    assert not os.path.exists(os.path.join(lock_dir, 'http.conf'))
    assert not os.path.exists(paths['maintenance_window_lock_file'])

    run = run_tasks([
        role_task('enter', 'enter', maintenance_window_owner='ops', maintenance_window_reason='upgrade',
                  maintenance_window_readonly_roles=[APP_ROLE], **dict(paths, **db, **nginx)),
    ])
    assert run.rc == 0, run.stderr[-3000:] + json.dumps(run.tasks)[-3000:]
    lock = run.result(PREFIX + 'Take the maintenance lock')
    assert lock['acquired'] is True and lock['roles_changed'] == [APP_ROLE]
    assert 'read-only transaction' in insert_as(pg, APP_ROLE, 'role test')
    assert os.path.exists(paths['maintenance_window_flag_file'])
    assert stat.S_IMODE(os.stat(os.path.join(lock_dir, 'http.conf')).st_mode) == 0o640
    with open(os.path.join(lock_dir, 'server.conf')) as handle:
        assert 'if (-f %s)' % paths['maintenance_window_flag_file'] in handle.read()
    assert 's3cret-token-0123456789' not in repr(run.report)

    run = run_tasks([role_task('exit', 'exit', maintenance_window_owner='ops', **dict(paths, **db))])
    assert run.result(PREFIX + 'Release the maintenance lock')['released'] is True
    assert not os.path.exists(paths['maintenance_window_lock_file'])
    assert not os.path.exists(paths['maintenance_window_flag_file'])
    assert role_settings(pg, APP_ROLE) == original

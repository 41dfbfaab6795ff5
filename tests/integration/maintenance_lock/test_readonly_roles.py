"""Database read-only for non-admins, against the real PostgreSQL 15 cluster of the ``pg`` fixture.

Asserts on real INSERTs as each role, and on pg_db_role_setting before,
during and after maintenance (including a role with its own per-database
value and another, unrelated setting that must survive).
"""

from __future__ import annotations

import os

import psycopg2
import pytest
from psycopg2 import sql

from tests.harness.playbook import run_tasks
from tests.harness.ports import free_port
from tests.integration.maintenance_lock.conftest import (
    ADMIN_ROLE,
    APP2_ROLE,
    APP_ROLE,
    DATABASE,
    GROUP_ROLE,
    ROLE_PASSWORD,
    SUPER_ROLE,
    db_params,
    insert_as,
    lock_task,
    role_settings,
)

ROLES = (APP_ROLE, APP2_ROLE, ADMIN_ROLE)
READ_ONLY_ERROR = 'cannot execute INSERT in a read-only transaction'


def test_app_roles_read_only_admin_writes_and_release_restores_exactly(roles, lock_dir):
    pg = roles
    original = role_settings(pg, *ROLES)
    assert original[(APP2_ROLE, DATABASE)] == ['default_transaction_read_only=off']
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    common = dict(owner='dba', lock_file=lock_file, readonly_roles=[APP_ROLE, APP2_ROLE], admin_roles=[ADMIN_ROLE],
                  **db_params(pg))
    run = run_tasks([lock_task('acquire', reason='reindex', **common), lock_task('acquire again', **common)])
    acquired = run.result('acquire')
    assert acquired['changed'] is True and acquired['roles_changed'] == [APP_ROLE, APP2_ROLE]
    assert acquired['holder']['readonly_roles'] == [
        dict(role=APP_ROLE, settings=[dict(database=None, value=None)]),
        dict(role=APP2_ROLE, settings=[dict(database=None, value=None), dict(database=DATABASE, value='off')]),
    ]
    assert any('ALTER ROLE "mlock_app2" IN DATABASE "mlock_db" SET "default_transaction_read_only" = \'on\'' == c
               for c in acquired['executed_commands'])
    assert pg.superuser_password not in repr(run.report)
    again = run.result('acquire again')
    assert again['changed'] is False and again['roles_changed'] == []
    assert not any(c.startswith('ALTER') for c in again['executed_commands'])

    during = role_settings(pg, *ROLES)
    assert during[(APP_ROLE, '')] == ['default_transaction_read_only=on']
    assert during[(APP2_ROLE, '')] == ['default_transaction_read_only=on', 'statement_timeout=7s']
    assert during[(APP2_ROLE, DATABASE)] == ['default_transaction_read_only=on']
    assert (ADMIN_ROLE, '') not in during  # the admin role is never touched
    assert READ_ONLY_ERROR in insert_as(pg, APP_ROLE, 'app during')
    assert READ_ONLY_ERROR in insert_as(pg, APP2_ROLE, 'app2 during')
    assert insert_as(pg, ADMIN_ROLE, 'admin during') is None

    # Someone undoes the setting by hand: the owner's next run puts it back, keeping the recorded originals.
    pg.execute(sql.SQL('ALTER ROLE {} RESET default_transaction_read_only').format(sql.Identifier(APP_ROLE)))
    run = run_tasks([
        lock_task('acquire after drift', **common),
        lock_task('release', state='absent', owner='dba', lock_file=lock_file, **db_params(pg)),
        lock_task('release again', state='absent', owner='dba', lock_file=lock_file, **db_params(pg)),
    ])
    drift = run.result('acquire after drift')
    assert drift['changed'] is True and drift['roles_changed'] == [APP_ROLE]
    assert drift['holder']['readonly_roles'] == acquired['holder']['readonly_roles']
    released = run.result('release')
    assert released['released'] is True and released['roles_changed'] == [APP_ROLE, APP2_ROLE]
    assert '2 role(s) restored' in released['summary']
    assert run.result('release again')['changed'] is False

    assert role_settings(pg, *ROLES) == original
    assert not os.path.exists(lock_file)
    for role in ROLES:
        assert insert_as(pg, role, role + ' after') is None
    rows = pg.execute('SELECT who FROM mlock_t ORDER BY id', dbname=DATABASE)
    assert [r[0] for r in rows if 'during' in r[0]] == ['admin during']


def test_terminate_sessions_after_grace(roles, lock_dir):
    pg = roles
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    session = psycopg2.connect(host=pg.host, port=pg.port, user=APP_ROLE, password=ROLE_PASSWORD, dbname=DATABASE)
    session.autocommit = True
    common = dict(owner='dba', lock_file=lock_file, readonly_roles=[APP_ROLE], terminate_sessions=True, grace_s=0,
                  **db_params(pg))
    try:
        run = run_tasks([dict(lock_task('planned', **common), check_mode=True), lock_task('acquire', **common)])
        planned = run.result('planned')
        assert planned['changed'] is True and planned['sessions_terminated'] == 1
        assert planned['roles_changed'] == [APP_ROLE]
        acquired = run.result('acquire')
        assert acquired['sessions_terminated'] == 1 and acquired['metrics']['sessions_terminated'] == 1
        assert '1 session(s) terminated' in acquired['summary']
        with pytest.raises(psycopg2.OperationalError):
            with session.cursor() as cursor:
                cursor.execute('SELECT 1')
    finally:
        session.close()
        run_tasks([lock_task('release', state='absent', owner='dba', lock_file=lock_file, **db_params(pg))])
    assert not os.path.exists(lock_file)
    assert (APP_ROLE, '') not in role_settings(pg, APP_ROLE)


def test_bad_roles_and_unreachable_database_change_nothing(roles, lock_dir):
    pg = roles
    original = role_settings(pg, *ROLES)
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    base = dict(owner='dba', lock_file=lock_file, **db_params(pg))
    refused_port = dict(owner='dba', lock_file=lock_file, **db_params(pg, login_port=free_port()))
    wrong_password = dict(owner='dba', lock_file=lock_file, **db_params(pg, login_password='nope'))
    run = run_tasks([
        lock_task('unknown role', readonly_roles=[APP_ROLE, 'mlock_nobody'], **base),
        lock_task('superuser', readonly_roles=[APP_ROLE, SUPER_ROLE], **base),
        lock_task('admin listed twice', readonly_roles=[APP_ROLE, ADMIN_ROLE], admin_roles=[ADMIN_ROLE], **base),
        lock_task('unknown admin', readonly_roles=[APP_ROLE], admin_roles=['mlock_ghost'], **base),
        lock_task('unreachable', readonly_roles=[APP_ROLE], **refused_port),
        lock_task('wrong password', readonly_roles=[APP_ROLE], **wrong_password),
    ])
    expected = {
        'unknown role': 'role(s) mlock_nobody do not exist on the server',
        'superuser': 'role(s) mlock_super are superusers',
        'admin listed twice': 'listed in both readonly_roles and admin_roles',
        'unknown admin': 'role(s) mlock_ghost do not exist',
        'unreachable': 'is PostgreSQL running and listening there?',
        'wrong password': 'password authentication failed',
    }
    for name, text in expected.items():
        result = run.result(name)
        assert result['failed'] is True and result['changed'] is False, name
        assert text in result['msg'] and 'nothing was changed' in result['msg'], (name, result['msg'])
    assert 'nope' not in repr(run.report)
    assert os.listdir(lock_dir) == []
    assert role_settings(pg, *ROLES) == original
    assert role_settings(pg, SUPER_ROLE) == {}


def test_nologin_role_is_accepted_with_a_warning(roles, lock_dir):
    pg = roles
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    run = run_tasks([
        lock_task('acquire', owner='dba', lock_file=lock_file, readonly_roles=[GROUP_ROLE], **db_params(pg)),
        lock_task('release', state='absent', owner='dba', lock_file=lock_file, **db_params(pg)),
    ])
    acquired = run.result('acquire')
    assert acquired['roles_changed'] == [GROUP_ROLE]
    assert any('mlock_group cannot log in' in w for w in acquired['warnings'])
    assert run.result('release')['released'] is True
    assert role_settings(pg, GROUP_ROLE) == {}


def test_release_keeps_the_lock_when_database_is_unreachable(roles, lock_dir):
    pg = roles
    original = role_settings(pg, *ROLES)
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    flag_file = os.path.join(lock_dir, 'maintenance.flag')
    run = run_tasks([
        lock_task('acquire', owner='dba', lock_file=lock_file, flag_file=flag_file, readonly_roles=[APP2_ROLE],
                  **db_params(pg)),
        lock_task('release, database down', state='absent', owner='dba', lock_file=lock_file,
                  **db_params(pg, login_port=free_port())),
    ])
    assert run.result('acquire')['changed'] is True
    failed = run.result('release, database down')
    assert failed['failed'] is True and failed['released'] is False and failed['locked'] is True
    assert 'cannot restore the settings of mlock_app2' in failed['msg']
    assert 'is kept (maintenance stays on) so the release can be retried' in failed['msg']
    assert os.path.exists(lock_file) and os.path.exists(flag_file)
    assert READ_ONLY_ERROR in insert_as(pg, APP2_ROLE, 'still read-only')

    run = run_tasks([lock_task('retry', state='absent', owner='dba', lock_file=lock_file, **db_params(pg))])
    assert run.result('retry')['released'] is True
    assert os.listdir(lock_dir) == []
    assert role_settings(pg, *ROLES) == original

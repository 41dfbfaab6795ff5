"""Releases with a listed login role or a dropped database, against the real PostgreSQL 15 cluster of the ``pg`` fixture.

* the login role listed in readonly_roles (a CREATEROLE non-superuser) is
  refused, and a read-only default on the login role set by hand does not
  block the release;
* a per-database entry whose database was dropped during maintenance is
  skipped with a warning instead of rolling the whole restore back, also
  with ``force: true``, which never removes the lock while roles stay read-only.

Roles and databases carry the ``mlfix_`` prefix and are dropped at the end.
"""

from __future__ import annotations

import os

import pytest
from psycopg2 import sql

from tests.harness.playbook import run_tasks
from tests.harness.ports import free_port
from tests.integration.maintenance_lock.conftest import ROLE_PASSWORD, lock_task, role_settings

CREATOR = 'mlfix_creator'      # non-superuser LOGIN CREATEROLE: the module's login in these tests
APP = 'mlfix_app'
SCRATCH_DB = 'mlfix_scratch'   # dropped during maintenance
KEEP_DB = 'mlfix_keep'
ROLES = (CREATOR, APP)
READ_ONLY_ERROR = 'cannot execute INSERT in a read-only transaction'


def _drop(pg):
    for database in (SCRATCH_DB, KEEP_DB):
        pg.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(database)))
    for role in ROLES:
        pg.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))


@pytest.fixture
def fix_pg(pg):
    """A CREATEROLE login role, an application role and two databases of our own."""
    ident = sql.Identifier
    _drop(pg)
    pg.execute(sql.SQL('CREATE ROLE {} LOGIN CREATEROLE PASSWORD %s').format(ident(CREATOR)), (ROLE_PASSWORD,))
    pg.create_role(APP, ROLE_PASSWORD)
    for database in (SCRATCH_DB, KEEP_DB):
        pg.create_database(database)
        pg.execute(sql.SQL('ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = off')
                   .format(ident(APP), ident(database)))
    pg.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '7s'").format(ident(APP)))
    pg.execute('CREATE TABLE mlfix_t (id serial PRIMARY KEY, who text NOT NULL)', dbname=KEEP_DB)
    pg.execute(sql.SQL('GRANT INSERT, SELECT ON mlfix_t TO {}').format(ident(APP)), dbname=KEEP_DB)
    pg.execute(sql.SQL('GRANT USAGE ON SEQUENCE mlfix_t_id_seq TO {}').format(ident(APP)), dbname=KEEP_DB)
    yield pg
    _drop(pg)


def as_creator(pg, **overrides):
    params = dict(login_host=pg.host, login_port=pg.port, login_user=CREATOR, login_password=ROLE_PASSWORD,
                  login_db='postgres')
    params.update(overrides)
    return params


def as_superuser(pg, **overrides):
    params = dict(login_host=pg.host, login_port=pg.port, login_user='postgres',
                  login_password=pg.superuser_password, login_db='postgres')
    params.update(overrides)
    return params


def insert_in_keep(pg, role):
    """insert_as, but in the KEEP_DB database."""
    import psycopg2
    conn = psycopg2.connect(host=pg.host, port=pg.port, user=role, password=ROLE_PASSWORD, dbname=KEEP_DB)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute('INSERT INTO mlfix_t (who) VALUES (%s)', (role,))
        return None
    except psycopg2.Error as exc:
        return str(exc).strip()
    finally:
        conn.close()


def test_login_role_is_refused_and_read_only_login_default_does_not_block_release(fix_pg, lock_dir):
    pg = fix_pg
    original = role_settings(pg, *ROLES)
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    common = dict(owner='dba', lock_file=lock_file, **as_creator(pg))
    run = run_tasks([
        lock_task('login role listed', readonly_roles=[APP, CREATOR], **common),
        lock_task('acquire', readonly_roles=[APP], **common),
    ])
    refused = run.result('login role listed')
    assert refused['failed'] is True and refused['changed'] is False
    assert 'role(s) mlfix_creator are the role this module logs in as (login_user)' in refused['msg']
    assert 'nothing was changed' in refused['msg']
    assert not any(c.startswith('ALTER') for c in refused['executed_commands'])
    acquired = run.result('acquire')
    assert acquired['changed'] is True and acquired['roles_changed'] == [APP]
    assert READ_ONLY_ERROR in insert_in_keep(pg, APP)

    # The login role becomes read-only by default behind the module's back: the release must still work.
    pg.execute(sql.SQL('ALTER ROLE {} SET default_transaction_read_only = on').format(sql.Identifier(CREATOR)))
    try:
        run = run_tasks([lock_task('release', state='absent', owner='dba', lock_file=lock_file, **as_creator(pg))])
    finally:
        pg.execute(sql.SQL('ALTER ROLE {} RESET default_transaction_read_only').format(sql.Identifier(CREATOR)))
    released = run.result('release')
    assert released.get('failed') is not True, released.get('msg')
    assert released['released'] is True and released['roles_changed'] == [APP]
    assert 'SET TRANSACTION READ WRITE' in released['executed_commands']
    assert not os.path.exists(lock_file)
    assert role_settings(pg, *ROLES) == original
    assert insert_in_keep(pg, APP) is None


def test_release_skips_settings_of_a_dropped_database_and_force_keeps_the_lock_until_restored(fix_pg, lock_dir):
    pg = fix_pg
    original = role_settings(pg, APP)
    assert original[(APP, SCRATCH_DB)] == ['default_transaction_read_only=off']
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    run = run_tasks([lock_task('acquire', owner='dba', lock_file=lock_file, readonly_roles=[APP], **as_superuser(pg))])
    acquired = run.result('acquire')
    assert acquired['changed'] is True
    assert acquired['holder']['readonly_roles'][0]['settings'] == [
        dict(database=None, value=None), dict(database=KEEP_DB, value='off'), dict(database=SCRATCH_DB, value='off')]
    assert role_settings(pg, APP)[(APP, KEEP_DB)] == ['default_transaction_read_only=on']

    pg.execute(sql.SQL('DROP DATABASE {} WITH (FORCE)').format(sql.Identifier(SCRATCH_DB)))
    release = dict(state='absent', owner='oncall', force=True, lock_file=lock_file)
    run = run_tasks([
        lock_task('forced release, database down', **dict(release, **as_superuser(pg, login_port=free_port()))),
        lock_task('forced release', **dict(release, **as_superuser(pg))),
    ])
    down = run.result('forced release, database down')
    assert down['failed'] is True and down['released'] is False and down['locked'] is True
    assert 'is kept (maintenance stays on)' in down['msg']

    released = run.result('forced release')
    assert released.get('failed') is not True, released.get('msg')
    assert released['released'] is True and released['forced'] is True and released['roles_changed'] == [APP]
    assert any('database mlfix_scratch was not restored because that database no longer exists' in w
               for w in released['warnings'])
    assert not any('IN DATABASE "mlfix_scratch"' in c for c in released['executed_commands'])
    assert not os.path.exists(lock_file)
    expected = dict(original)
    del expected[(APP, SCRATCH_DB)]
    assert role_settings(pg, APP) == expected
    assert insert_in_keep(pg, APP) is None

"""security_audit through real ansible-playbook runs: a seeded application tree, the pg cluster, the Docker engine.

Each test asserts on the module's JSON and on the real state: file modes and
contents, the roles in pg_roles, the containers the engine reports.
"""

from __future__ import annotations

import json
import os
import socket
import stat

from tests.conftest import MONITOR_PASSWORD, TEST_IMAGE
from tests.harness.playbook import run_tasks
from tests.harness.ports import free_port
from tests.harness.security_audit import FAKE_AWS_KEY_ID, FAKE_DB_PASSWORD, seed_access, seed_app_tree, tree_state

MODULE = 'engineroom.maintenance.security_audit'
FILE_CHECKS = ['secret_files', 'world_writable_dirs', 'file_permissions', 'secret_scan']
SEEDED = [
    ('secret_file_world_readable', 'high', '.env', 'open'),
    ('symlink_outside_root', 'low', 'shared', 'open'),
    ('world_writable_dir', 'high', 'uploads', 'open'),
    ('symlink_outside_root', 'low', 'config/outside.env', 'open'),
    ('hardcoded_secret', 'high', 'config/settings.py', 'open'),   # the AWS key on line 3 is AWS's documented example
]


def rows(result, app):
    return [(f['code'], f['severity'], os.path.relpath(f['path'], app), f['status']) for f in result['findings']]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_report_mode_finds_exactly_the_seeded_problems_and_changes_nothing(tmp_path):
    app, dummy = seed_app_tree(str(tmp_path))
    before = tree_state(str(tmp_path))
    run = run_tasks([{'name': 'audit', MODULE: {'app_root': app, 'checks': FILE_CHECKS}}])
    result = run.result('audit')
    assert run.rc == 0, run.stderr
    assert rows(result, app) == SEEDED
    secret = result['findings'][4]
    assert (secret['line'], secret['kind'], len(secret['fingerprint'])) == (6, 'private_key', 16)
    assert secret['world_readable'] and 'excerpt' not in secret
    assert result['findings'][3]['target'] == os.path.join(os.path.dirname(app), 'outside', '.env')
    assert result['findings'][0]['fix'] == 'chmod 0600' and result['findings'][2]['fix'] == 'chmod 0775'
    assert result['changed'] is False
    assert result['counts'] == dict(critical=0, high=3, medium=0, low=2, info=0)
    assert result['checks'] == dict(secret_files='ran', world_writable_dirs='ran', file_permissions='ran', secret_scan='ran')
    assert result['metrics']['files_scanned'] == 2            # README.md and settings.py; .env is a secret file
    assert result['metrics']['findings_total'] == 5 and result['metrics']['links_checked'] == 2
    assert result['summary'].startswith('security audit: 5 findings (3 high, 2 low); 2 files scanned')
    dump = json.dumps(run.report)
    assert FAKE_AWS_KEY_ID not in dump and FAKE_DB_PASSWORD not in dump and 'MIIBOgIBAAJBAK' not in dump
    assert tree_state(str(tmp_path)) == before


def test_fix_check_mode_then_fix_then_idempotent(tmp_path):
    app, outside = seed_app_tree(str(tmp_path))
    before = tree_state(str(tmp_path))
    args = {'app_root': app, 'checks': FILE_CHECKS, 'fix': True}
    run = run_tasks([
        {'name': 'planned', MODULE: args, 'check_mode': True, 'diff': True},
        {'name': 'fix', MODULE: args, 'diff': True},
        {'name': 'again', MODULE: args},
    ])
    assert run.rc == 0, run.stderr
    planned, fixed, again = run.result('planned'), run.result('fix'), run.result('again')

    assert planned['changed'] is True
    assert [r[3] for r in rows(planned, app)] == ['planned', 'open', 'planned', 'open', 'open']
    assert planned['diff']['before'] == '%s/.env 0644\n%s/uploads 0777\n' % (app, app)
    assert planned['diff']['after'] == '%s/.env 0600\n%s/uploads 0775\n' % (app, app)

    assert fixed['changed'] is True
    assert [r[3] for r in rows(fixed, app)] == ['fixed', 'open', 'fixed', 'open', 'open']
    assert fixed['metrics']['fixes_applied_count'] == 2
    assert fixed['executed_commands'] == ['chmod 0600 %s/.env' % app, 'chmod 0775 %s/uploads' % app]
    assert '2 fixed' in fixed['summary']

    assert again['changed'] is False
    assert rows(again, app) == [SEEDED[1], SEEDED[3], SEEDED[4]]   # links and the secret need a person
    assert 'diff' not in again

    after = tree_state(str(tmp_path))
    expected = dict(before)
    expected['app/.env'] = ('0600', before['app/.env'][1])
    expected['app/uploads'] = ('0775', None)
    assert after == expected                                  # modes only, contents and outside/ untouched
    assert mode(os.path.join(outside, '.env')) == 0o644 and mode(os.path.join(outside, 'shared')) == 0o777


def test_docker_socket_permissions_on_a_real_socket(tmp_path):
    path = str(tmp_path / 'docker.sock')
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    try:
        os.chmod(path, 0o666)
        run = run_tasks([
            {'name': 'open', MODULE: {'checks': ['docker_socket'], 'docker_socket': path, 'fix': True}},
            {'name': 'absent', MODULE: {'checks': ['docker_socket'], 'docker_socket': path + '.absent'}},
            {'name': 'root group ok', MODULE: {'checks': ['docker_socket'], 'docker_socket': path,
                                               'docker_socket_group': 'root'}},
        ])
        found = run.result('open')
        assert [(f['code'], f['severity'], f['path'], f['status']) for f in found['findings']] == [
            ('docker_socket_world_writable', 'critical', path, 'open'),
            ('docker_socket_group', 'medium', path, 'open')]
        assert found['changed'] is False and mode(path) == 0o666   # never "fixed": dockerd owns its socket
        absent = run.result('absent')
        assert absent['findings'] == [] and absent['checks'] == dict(docker_socket='skipped')
        assert absent['notes'] == ['docker socket %s.absent absent: socket check skipped' % path]
        assert [f['code'] for f in run.result('root group ok')['findings']] == ['docker_socket_world_writable']
    finally:
        server.close()


def test_container_ports_match_the_engine(docker_client):
    port = free_port()
    container = docker_client.containers.run(TEST_IMAGE, ['sleep', 'infinity'], detach=True, remove=True,
                                             name='engineroom-sa-ports-%d' % port,
                                             ports={'8080/tcp': ('127.0.0.1', port)})
    try:
        run = run_tasks([
            {'name': 'ports', MODULE: {'checks': ['docker_ports'], 'allowed_public_ports': []}},
            {'name': 'no engine', MODULE: {'checks': ['docker_ports'], 'docker_host': 'unix:///nonexistent.sock'}},
        ])
        result = run.result('ports')
        assert result['checks'] == dict(docker_ports='ran')
        reported = set((f['container'], f['port']) for f in result['findings'])
        expected = set()
        for entry in docker_client.api.containers():
            for published in entry.get('Ports') or []:
                if published.get('PublicPort') and published.get('IP', '') in ('', '0.0.0.0', '::'):
                    expected.add((entry['Names'][0].lstrip('/'), published['PublicPort']))
        assert reported == expected
        assert container.name not in [name for name, dummy in reported]   # bound to 127.0.0.1 only
        skipped = run.result('no engine')
        assert skipped['checks'] == dict(docker_ports='skipped')
        assert skipped['notes'] == ['docker socket /nonexistent.sock absent: container port check skipped']
    finally:
        container.remove(force=True)


def test_access_review_superusers_and_stale_logins(pg):
    seed_access(pg)
    connection = dict(login_host=pg.host, login_port=pg.port, login_user='monitor', login_password=MONITOR_PASSWORD,
                      login_db='app')
    run = run_tasks([
        {'name': 'table', MODULE: dict(connection, checks=['superusers', 'stale_logins'], last_login_table='sa_shop.users',
                                       last_login_user_column='email', last_login_column='last_login_at')},
        {'name': 'query', MODULE: dict(connection, checks=['stale_logins'], stale_days=5, last_login_query=(
            "SELECT email, last_login_at FROM sa_shop.users WHERE email <> 'carol@shop.test'"))},
        {'name': 'no source', MODULE: dict(connection, checks=['superusers', 'stale_logins'])},
        {'name': 'no connection', MODULE: {'checks': ['superusers', 'stale_logins']}},
    ])
    assert run.rc == 0, run.stderr
    table = run.result('table')
    real_superusers = [name for name, in pg.execute('SELECT rolname FROM pg_roles WHERE rolsuper ORDER BY rolname')]
    assert 'sa_shop_admin' in real_superusers
    assert [s['name'] for s in table['access']['superusers']] == real_superusers
    assert [(f['code'], f['object']) for f in table['findings']] == (
        [('pg_superuser', 'role:%s' % name) for name in real_superusers if name != 'postgres']
        + [('stale_login', 'user:bob@shop.test'), ('stale_login', 'user:carol@shop.test')])
    assert [(u['name'], u['days_since'], u['stale']) for u in table['access']['logins']] == [
        ('alice@shop.test', 10, False), ('bob@shop.test', 200, True), ('carol@shop.test', None, True)]
    assert table['executed_commands'] == [
        'SELECT rolname, rolcanlogin FROM pg_catalog.pg_roles WHERE rolsuper ORDER BY rolname',
        'SELECT "email"::text, "last_login_at" FROM "sa_shop"."users" ORDER BY 1']
    assert MONITOR_PASSWORD not in json.dumps(run.report)

    query = run.result('query')
    assert [f['object'] for f in query['findings']] == ['user:alice@shop.test', 'user:bob@shop.test']

    no_source = run.result('no source')
    assert no_source['checks'] == dict(superusers='ran', stale_logins='skipped')
    assert 'PostgreSQL keeps no last-login time' in no_source['notes'][0]
    no_connection = run.result('no connection')
    assert no_connection['checks'] == dict(superusers='skipped', stale_logins='skipped')
    assert no_connection['executed_commands'] == []


def test_bad_inputs_fail_clearly_and_change_nothing(tmp_path, pg):
    seed_access(pg)
    app, dummy = seed_app_tree(str(tmp_path))
    a_file = os.path.join(app, 'README.md')
    before = tree_state(str(tmp_path))
    good_db = dict(login_host=pg.host, login_port=pg.port, login_user='monitor', login_password=MONITOR_PASSWORD,
                   login_db='app')
    table = dict(last_login_table='sa_shop.users', last_login_user_column='email', last_login_column='last_login_at')
    cases = [
        ('missing root', dict(app_root=app + '-missing'), 'app_root %s-missing does not exist' % app),
        ('file root', dict(app_root=a_file), 'app_root %s is not a directory' % a_file),
        ('slash root', dict(app_root='/'), 'app_root / is the root of the filesystem'),
        ('bad regex', dict(app_root=app, scan_patterns=[dict(name='x', regex='(')]), "scan pattern 'x': regex '(' does not"),
        ('duplicate', dict(app_root=app, scan_patterns=[dict(name='private_key', regex='a')]),
         "scan pattern name 'private_key' is used twice"),
        ('stale days', dict(app_root=app, stale_days=0), 'stale_days must be at least 1'),
        ('max bytes', dict(app_root=app, scan_max_file_bytes=0), 'scan_max_file_bytes must be at least 1'),
        ('max seconds', dict(app_root=app, scan_max_seconds=0), 'scan_max_seconds must be above 0 seconds'),
        ('corrupt baseline', dict(app_root=app, baseline=a_file), 'baseline %s cannot be read' % a_file),
        ('missing baseline', dict(app_root=app, baseline=a_file + '.none'), 'baseline %s.none cannot be read' % a_file),
        ('unknown owner', dict(app_root=app, expected_owners=['no-such-user-here']), "no user 'no-such-user-here'"),
        ('both sources', dict(table, app_root=app, last_login_query='SELECT 1'),
         'parameters are mutually exclusive: last_login_query|last_login_table'),
        ('half table', dict(app_root=app, last_login_table='sa_shop.users'),
         'parameters are required together: last_login_table, last_login_user_column, last_login_column'),
        ('bad table name', dict(app_root=app, last_login_table='a.b.c', last_login_user_column='x', last_login_column='y'),
         "last_login_table 'a.b.c' is not"),
        ('wrong password', dict(good_db, app_root=app, login_password='wrong'),
         'cannot connect to PostgreSQL as monitor@127.0.0.1:%d/app' % pg.port),
        ('unknown column', dict(good_db, app_root=app, last_login_table='sa_shop.users', last_login_user_column='email',
                                last_login_column='last_seen'),
         'the last-login source on database app cannot be read: ERROR:  column "last_seen" does not exist'),
        ('not a timestamp', dict(good_db, app_root=app, last_login_query='SELECT email, email FROM sa_shop.users'),
         'not a timestamp'),
        ('write query', dict(good_db, app_root=app, last_login_query="DELETE FROM sa_shop.users RETURNING email, last_login_at"),
         'cannot execute DELETE in a read-only transaction'),
    ]
    tasks = [{'name': name, MODULE: dict(args, fix=True), 'ignore_errors': True} for name, args, dummy in cases]
    run = run_tasks(tasks)
    for name, dummy, message in cases:
        result = run.result(name)
        assert result.get('failed') is True, name
        assert message in result['msg'], (name, result['msg'])
    assert tree_state(str(tmp_path)) == before
    assert pg.execute('SELECT count(*) FROM sa_shop.users', dbname='app')[0][0] == 3
    assert MONITOR_PASSWORD not in json.dumps(run.report)


def test_hard_links_are_reported_not_failed_and_a_symlinked_root_is_resolved(tmp_path):
    real = tmp_path / 'releases' / '42'
    real.mkdir(parents=True)
    os.chmod(str(real), 0o777)
    (real / '.env').write_text('A=1\n')
    os.chmod(str(real / '.env'), 0o644)
    os.link(str(real / '.env'), str(tmp_path / 'backup.env'))          # a second name outside the tree
    os.symlink(str(real), str(tmp_path / 'current'))
    args = {'app_root': str(tmp_path / 'current'), 'checks': FILE_CHECKS, 'fix': True}
    run = run_tasks([
        {'name': 'planned', MODULE: args, 'check_mode': True},
        {'name': 'fix', MODULE: args},
        {'name': 'again', MODULE: args},
    ])
    assert run.rc == 0, run.stderr
    for name in ('planned', 'fix', 'again'):
        result = run.result(name)
        assert result.get('failed') is not True, (name, result.get('msg'))
        assert result['notes'][0] == 'app_root %s is a symbolic link (or lies under one): %s audited' % (
            tmp_path / 'current', real)
        by_code = dict((f['code'], f) for f in result['findings'])
        assert by_code['secret_file_world_readable']['status'] == 'skipped'
        assert 'has 2 hard links' in by_code['secret_file_world_readable']['reason']
        assert by_code.get('world_writable_dir', dict(path=str(real)))['path'] == str(real)   # gone once fixed
        assert 'Is a directory' not in json.dumps(result)
    assert run.result('planned')['findings'][0]['status'] == 'planned'     # the root's world-write bit
    assert run.result('fix')['findings'][0]['status'] == 'fixed' and mode(str(real)) == 0o775
    assert run.result('again')['changed'] is False
    assert mode(str(real / '.env')) == 0o644 and mode(str(tmp_path / 'backup.env')) == 0o644

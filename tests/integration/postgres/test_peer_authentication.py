"""PostgreSQL the Debian way: the unix socket, peer authentication as the postgres OS user, no password.

The cluster here admits the ``postgres`` role over its socket only by peer authentication
(``local all postgres peer``), as Debian's packaged cluster does. The modules run as root (as
under ``become: true``) and take the ``postgres`` identity only while connecting and in the client
programs they start (``login_os_user``); the files they write stay root's.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess

import psycopg2
import pytest

from tests.harness.playbook import REPO_ROOT, run_tasks
from tests.harness.postgres import PostgresCluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='peer authentication as another OS user needs root')


@pytest.fixture(scope='module')
def peer_cluster(scratch_dir):
    cluster = PostgresCluster(os.path.join(scratch_dir, 'peer-pg'))
    cluster.init()
    with open(os.path.join(cluster.data_dir, 'pg_hba.conf'), 'w') as handle:
        handle.write('local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n')
    cluster.start()
    admin = psycopg2.connect(host=cluster.host, port=cluster.port, user='postgres', password=cluster.superuser_password,
                             dbname='postgres')
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute('CREATE DATABASE app')
    admin.close()
    app = psycopg2.connect(host=cluster.host, port=cluster.port, user='postgres', password=cluster.superuser_password,
                           dbname='app')
    app.autocommit = True
    with app.cursor() as cursor:
        cursor.execute('CREATE TABLE customers (id int PRIMARY KEY, name text)')
        cursor.execute("INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 500) g")
    app.close()
    yield cluster
    cluster.stop()


def socket_options(cluster, **extra):
    return dict(dict(login_unix_socket=cluster.socket_dir, login_port=cluster.port, login_user='postgres'), **extra)


def test_probe_connects_by_peer_as_the_postgres_os_user(peer_cluster):
    probe = dict(socket_options(peer_cluster, login_os_user='postgres'), name='db', kind='postgres')
    run = run_tasks([{'name': 'probe', 'engineroom.maintenance.health_probe': dict(probes=[probe], fail_on='never')}])
    result = run.result('probe')
    assert run.rc == 0, run.stderr
    assert result['probes'][0]['status'] == 'healthy', result['probes'][0]['message']
    assert result['probes'][0]['details']['server_version_num'] >= 150000


def test_peer_refusal_names_login_os_user(peer_cluster):
    run = run_tasks([{'name': 'insight', 'engineroom.maintenance.pg_insight': socket_options(peer_cluster, login_db='app')}])
    result = run.result('insight')
    assert result.get('failed'), result
    assert 'Peer authentication failed' in result['msg'] and 'login_os_user' in result['msg'], result['msg']


def test_unknown_os_user_is_a_clear_error(peer_cluster):
    run = run_tasks([{'name': 'insight', 'engineroom.maintenance.pg_insight':
                      socket_options(peer_cluster, login_db='app', login_os_user='no-such-user-here')}])
    result = run.result('insight')
    assert result.get('failed') and 'no-such-user-here' in result['msg'] and 'is not a user' in result['msg'], result


def test_snapshot_by_peer_writes_root_owned_files_that_verify(peer_cluster, tmp_path):
    dest = tmp_path / 'backups'
    args = dict(socket_options(peer_cluster, login_os_user='postgres'), database='app', dest=str(dest), tier='database')
    run = run_tasks([{'name': 'snap', 'engineroom.maintenance.snapshot_archive': args}])
    result = run.result('snap')
    assert run.rc == 0, result.get('msg', run.stderr)
    artifact = result['snapshot']['path']
    for path in (artifact, artifact + '.manifest.json'):
        assert pwd.getpwuid(os.stat(path).st_uid).pw_name == 'root'
    with open(artifact + '.manifest.json') as handle:
        inventory = json.load(handle)['database']['fingerprint']['inventory']
    # The system catalogs' own constraints (PostgreSQL 14+) are not the application's: a snapshot of 13 restored on
    # 15 must not differ by them.
    assert inventory and not [name for name in inventory if 'pg_catalog' in name or name.startswith('constraint pg_')]
    drill = run_tasks([{'name': 'drill', 'engineroom.maintenance.snapshot_restore':
                        dict(socket_options(peer_cluster, login_os_user='postgres'), snapshot=artifact)}])
    drilled = drill.result('drill')
    assert drill.rc == 0, drilled.get('msg', drill.stderr)
    assert drilled['matches'] is True, drilled['summary']


def test_directory_format_with_login_os_user_is_refused_before_writing(peer_cluster, tmp_path):
    dest = tmp_path / 'backups'
    args = dict(socket_options(peer_cluster, login_os_user='postgres'), database='app', dest=str(dest), tier='database',
                format='directory')
    run = run_tasks([{'name': 'snap', 'engineroom.maintenance.snapshot_archive': args}])
    result = run.result('snap')
    assert result.get('failed') and 'login_os_user' in result['msg'] and 'format custom' in result['msg'], result
    assert not dest.exists() or os.listdir(str(dest)) == []


def test_unwritable_backup_dir_names_the_user_when_not_root(scratch_dir):
    """A run without become: the first check names the path and the user, before anything is written."""
    dest = os.path.join(scratch_dir, 'root-only-backups')
    os.makedirs(dest, mode=0o755, exist_ok=True)
    script = ('from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import check_writable_dir;'
              'print(check_writable_dir(%r))' % str(dest))
    completed = subprocess.run(['/usr/bin/python3', '-c', script], user='nobody', group='nogroup', extra_groups=[],
                               cwd='/', env=dict(PYTHONPATH=os.path.join(REPO_ROOT, 'collections')), capture_output=True,
                               text=True, check=False)
    assert completed.stdout.strip() == ('directory %s is not writable: Permission denied (the module runs as user nobody: '
                                        'run the task with become: true, or give that user the directory)' % dest), completed

"""health_probe through real ansible-playbook runs against real servers.

Every test asserts on the module's JSON and on the real state it reports
(server settings, files, processes), and bad inputs on the message and on
nothing having been written.
"""

from __future__ import annotations

import os
import socket
import stat
import threading

import psycopg2
import pytest

from tests.conftest import MONITOR_PASSWORD, TEST_IMAGE
from tests.harness.ports import free_port
from tests.harness.playbook import run_tasks

MODULE = 'engineroom.maintenance.health_probe'


def probe_run(*probes, check=False, **options):
    """Run health_probe once with ``probes``; return (PlaybookRun, the task's result)."""
    args = dict(options, probes=list(probes))
    args.setdefault('fail_on', 'never')
    run = run_tasks([{'name': 'probe', MODULE: args}], check=check)
    return run, run.result('probe')


def by_name(result):
    return dict((p['name'], p) for p in result['probes'])


# --- postgres -------------------------------------------------------------------------

def test_postgres_healthy_reports_real_server_figures(pg, pg_probe):
    run, result = probe_run(pg_probe)
    assert run.rc == 0, run.stderr
    db = by_name(result)['db']
    real_version = pg.execute("SELECT current_setting('server_version_num')::int")[0][0]
    assert db['status'] == 'healthy', db['message']
    assert db['details']['server_version_num'] == real_version >= 150000
    assert db['details']['max_connections'] == 50  # what the fixture started the server with
    assert 1 <= db['details']['connections'] <= 50
    assert db['details']['in_recovery'] is False
    assert db['response_ms'] > 0
    assert result['changed'] is False
    assert result['status'] == 'healthy'
    assert 'SELECT 1' in result['executed_commands']
    assert MONITOR_PASSWORD not in run.report.__repr__()


def test_postgres_sees_waiting_locks_and_long_queries(pg, pg_probe):
    pg.execute('CREATE TABLE IF NOT EXISTS lock_target (id int)', dbname='app')
    holder = pg.connect('app')
    holder.autocommit = False
    waiter = pg.connect('app')
    try:
        with holder.cursor() as cursor:
            cursor.execute('LOCK TABLE lock_target IN ACCESS EXCLUSIVE MODE')
        blocked = threading.Thread(target=_select_quietly, args=(waiter,))
        blocked.start()
        pg.execute("SELECT pg_sleep(0.5)")  # let the waiter queue behind the lock
        run, result = probe_run(pg_probe)
        details = by_name(result)['db']['details']
        assert details['waiting_locks'] >= 1
        assert details['longest_query_s'] > 0.3
    finally:
        holder.rollback()
        blocked.join(10)
        holder.close()
        waiter.close()


def _select_quietly(conn):
    try:
        with conn.cursor() as cursor:
            cursor.execute('SELECT count(*) FROM lock_target')
    except psycopg2.Error:
        pass


def test_postgres_connection_usage_threshold_degrades(pg_probe):
    probe = dict(pg_probe, degraded_pct=1, unhealthy_pct=99)
    run, result = probe_run(probe, fail_on='degraded')
    db = by_name(result)['db']
    assert db['status'] == 'degraded'
    assert 'connections in use' in db['message']
    assert run.rc != 0 and result['failed'] is True
    assert result['msg'].startswith('health degraded')


@pytest.mark.parametrize('override, expected', [
    (dict(login_password='wrong-password'), 'password authentication failed'),
    (dict(login_db='no_such_db'), 'the database \'no_such_db\' does not exist'),
    (dict(login_port='FREE'), 'is PostgreSQL running and listening there?'),
    (dict(login_host='no-such-host.invalid'), 'the name does not resolve'),
], ids=['wrong-password', 'unknown-database', 'refused-port', 'dns-failure'])
def test_postgres_connection_failures_are_unhealthy_with_reason(pg_probe, override, expected):
    if override.get('login_port') == 'FREE':
        override = dict(login_port=free_port())
    run, result = probe_run(dict(pg_probe, **override), fail_on='unhealthy')
    db = by_name(result)['db']
    assert run.rc != 0
    assert db['status'] == 'unhealthy'
    assert expected in db['message']
    assert 'Traceback' not in run.stderr + result.get('exception', '')
    assert 'wrong-password' not in repr(run.report)


def test_postgres_server_that_never_answers_times_out(pg_probe):
    # A listener that accepts connections and never speaks: a hung server or a half-open path.
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(5)
        probe = dict(pg_probe, login_port=silent.getsockname()[1], timeout=2)
        run, result = probe_run(probe)
    db = by_name(result)['db']
    assert db['status'] == 'unhealthy'
    assert 'no answer within connect_timeout' in db['message']
    assert db['response_ms'] < 10000


# --- redis ----------------------------------------------------------------------------

def test_redis_ping_and_info(redis, redis_auth):
    run, result = probe_run(
        dict(name='cache', kind='redis', login_port=redis.port),
        dict(name='cache-auth', kind='redis', login_port=redis_auth.port, login_password='redis-test-pw'),
    )
    probes = by_name(result)
    for name in ('cache', 'cache-auth'):
        assert probes[name]['status'] == 'healthy', probes[name]['message']
        assert probes[name]['details']['connected_clients'] >= 1
        assert probes[name]['details']['used_memory'] > 0
        assert probes[name]['details']['redis_version']
    assert 'redis-test-pw' not in repr(run.report)
    assert any(c.endswith('AUTH ********') for c in result['executed_commands'])


def test_redis_failures(redis_auth):
    run, result = probe_run(
        dict(name='wrong-pw', kind='redis', login_port=redis_auth.port, login_password='nope'),
        dict(name='no-auth', kind='redis', login_port=redis_auth.port),
        dict(name='refused', kind='redis', login_port=free_port()),
    )
    probes = by_name(result)
    assert probes['wrong-pw']['status'] == 'unhealthy'
    assert 'WRONGPASS' in probes['wrong-pw']['message'] or 'invalid password' in probes['wrong-pw']['message']
    assert probes['no-auth']['status'] == 'unhealthy' and 'NOAUTH' in probes['no-auth']['message']
    assert probes['refused']['status'] == 'unhealthy'
    assert 'is redis-server running there' in probes['refused']['message']


# --- http -----------------------------------------------------------------------------

def test_http_codes_latency_and_body(http):
    run, result = probe_run(
        dict(name='ok', kind='http', url=http.url('/health'), body_contains='"ok"'),
        dict(name='down', kind='http', url=http.url('/status/503')),
        dict(name='expected-503', kind='http', url=http.url('/status/503'), expect_status=[503]),
        dict(name='slow', kind='http', url=http.url('/health?delay_ms=700')),
        dict(name='wrong-body', kind='http', url=http.url('/health'), body_contains='maintenance'),
    )
    probes = by_name(result)
    assert probes['ok']['status'] == 'healthy' and probes['ok']['details']['status_code'] == 200
    assert probes['down']['status'] == 'unhealthy' and 'HTTP 503, expected [200]' in probes['down']['message']
    assert probes['expected-503']['status'] == 'healthy'
    assert probes['slow']['status'] == 'degraded' and probes['slow']['response_ms'] >= 700
    assert probes['wrong-body']['status'] == 'unhealthy' and 'does not contain' in probes['wrong-body']['message']
    assert result['counts'] == dict(healthy=2, degraded=1, unhealthy=2)
    assert result['status'] == 'unhealthy'


def test_http_timeout_refused_and_dns(http):
    run, result = probe_run(
        dict(name='timeout', kind='http', url=http.url('/health?delay_ms=3000'), timeout=1),
        dict(name='refused', kind='http', url='http://127.0.0.1:%d/' % free_port()),
        dict(name='dns', kind='http', url='http://no-such-host.invalid/'),
    )
    probes = by_name(result)
    assert 'did not answer within 1' in probes['timeout']['message']
    assert probes['timeout']['response_ms'] < 2900  # the probe gave up, it did not wait for the answer
    assert 'cannot reach' in probes['refused']['message']
    assert 'no-such-host.invalid' in probes['dns']['message']
    assert all(p['status'] == 'unhealthy' for p in probes.values())


# --- disk, memory, load ---------------------------------------------------------------

def test_disk_reports_real_usage_and_missing_path(scratch_dir):
    run, result = probe_run(
        dict(name='scratch', kind='disk', path=scratch_dir),
        dict(name='full-at-zero', kind='disk', path=[scratch_dir], degraded_pct=0, unhealthy_pct=100),
        dict(name='missing', kind='disk', path='/no/such/mount'),
    )
    probes = by_name(result)
    entry = probes['scratch']['details']['paths'][0]
    real = os.statvfs(scratch_dir)
    assert entry['size_bytes'] == real.f_blocks * real.f_frsize
    used = real.f_blocks - real.f_bfree
    assert abs(entry['used_pct'] - 100.0 * used / (used + real.f_bavail)) < 1.0
    assert probes['full-at-zero']['status'] == 'degraded'
    assert probes['missing']['status'] == 'unhealthy'
    assert 'path /no/such/mount does not exist' in probes['missing']['message']


def test_memory_and_load_thresholds():
    run, result = probe_run(
        dict(name='mem', kind='memory'),
        dict(name='mem-strict', kind='memory', degraded_pct=0),
        dict(name='load', kind='load', degraded_load=0, unhealthy_load=1000),
    )
    probes = by_name(result)
    assert probes['mem']['details']['total_bytes'] > 0
    assert probes['mem-strict']['status'] == 'degraded'
    assert probes['load']['status'] == 'degraded'
    assert probes['load']['details']['cpus'] == os.cpu_count()


# --- process, systemd, command ----------------------------------------------------------

def test_process_by_name_and_pidfile(pg):
    pidfile = os.path.join(pg.data_dir, 'postmaster.pid')
    run, result = probe_run(
        dict(name='pg', kind='process', process_name='postgres', min_count=2),
        dict(name='pg-pid', kind='process', pidfile=pidfile),
        dict(name='ghost', kind='process', process_name='no-such-daemon'),
        dict(name='unit', kind='systemd', unit='postgres.service'),
    )
    probes = by_name(result)
    with open(pidfile) as handle:
        assert probes['pg-pid']['details']['pid'] == int(handle.readline())
    assert probes['pg']['status'] == 'healthy' and probes['pg']['details']['count'] >= 2
    assert probes['pg-pid']['status'] == 'healthy'
    assert probes['ghost']['status'] == 'unhealthy'
    assert '0 process(es) named no-such-daemon' in probes['ghost']['message']
    if not os.path.isdir('/run/systemd/system'):
        assert probes['unit']['details']['systemd'] is False
        assert probes['unit']['status'] == 'healthy'  # fell back to the process table


def test_command_exit_codes_timeout_and_missing_binary():
    run, result = probe_run(
        dict(name='ok', kind='command', argv=['pg_isready', '--version']),
        dict(name='warn', kind='command', argv=['sh', '-c', 'exit 3'], degraded_rc=[3]),
        dict(name='fail', kind='command', argv=['false']),
        dict(name='slow', kind='command', argv=['sleep', '5'], timeout=0.5),
        dict(name='missing', kind='command', argv=['no-such-binary-xyz']),
    )
    probes = by_name(result)
    assert probes['ok']['status'] == 'healthy' and 'pg_isready' in probes['ok']['details']['output_tail']
    assert probes['warn']['status'] == 'degraded' and probes['warn']['details']['rc'] == 3
    assert probes['fail']['status'] == 'unhealthy' and probes['fail']['details']['rc'] == 1
    assert 'did not finish within 0.5 s' in probes['slow']['message']
    assert 'command no-such-binary-xyz not found' in probes['missing']['message']
    assert "sh -c 'exit 3'" in result['executed_commands']


# --- docker ---------------------------------------------------------------------------

@pytest.mark.docker
def test_docker_containers(docker_client):
    names = dict(running='engineroom-test-running-%d' % os.getpid(),
                 sick='engineroom-test-sick-%d' % os.getpid(),
                 stopped='engineroom-test-stopped-%d' % os.getpid())
    healthcheck_fail = dict(test=['CMD', 'false'], interval=200_000_000, timeout=1_000_000_000, retries=1,
                            start_period=0)
    containers = []
    try:
        containers.append(docker_client.containers.run(TEST_IMAGE, ['sleep', 'infinity'], name=names['running'],
                                                       detach=True))
        containers.append(docker_client.containers.run(TEST_IMAGE, ['sleep', 'infinity'], name=names['sick'],
                                                       detach=True, healthcheck=healthcheck_fail))
        containers.append(docker_client.containers.create(TEST_IMAGE, ['true'], name=names['stopped']))
        _wait_health(docker_client, names['sick'], 'unhealthy')
        run, result = probe_run(
            dict(name='running', kind='docker', container=names['running']),
            dict(name='sick', kind='docker', container=names['sick']),
            dict(name='stopped', kind='docker', container=names['stopped']),
            dict(name='absent', kind='docker', container='engineroom-no-such-container'),
        )
    finally:
        for container in containers:
            container.remove(force=True)
    probes = by_name(result)
    assert probes['running']['status'] == 'healthy' and probes['running']['details']['running'] is True
    assert probes['sick']['status'] == 'unhealthy' and 'HEALTHCHECK reports unhealthy' in probes['sick']['message']
    assert probes['stopped']['status'] == 'unhealthy' and 'is created' in probes['stopped']['message']
    assert 'not found' in probes['absent']['message']


def _wait_health(client, name, wanted, timeout=30):
    import time
    deadline = time.monotonic() + timeout
    while client.api.inspect_container(name)['State'].get('Health', {}).get('Status') != wanted:
        assert time.monotonic() < deadline, 'container %s never became %s' % (name, wanted)
        time.sleep(0.2)


def test_docker_socket_absent():
    run, result = probe_run(dict(name='app', kind='docker', container='app',
                                 docker_host='unix:///nonexistent/docker.sock'))
    probe = by_name(result)['app']
    assert probe['status'] == 'unhealthy'
    assert 'docker socket /nonexistent/docker.sock absent' in probe['message']


# --- module-level behaviour ---------------------------------------------------------

def test_prometheus_textfile_written_atomically(tmp_path, pg_probe):
    textfile = tmp_path / 'engineroom_health.prom'
    run, result = probe_run(pg_probe, dict(name='root', kind='disk', path='/'), prometheus_textfile=str(textfile))
    assert result['prometheus_textfile'] == str(textfile)
    text = textfile.read_text()
    assert 'engineroom_health_probe_status{name="db",kind="postgres"} 0' in text
    assert 'engineroom_health_status 0' in text
    assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ['engineroom_health.prom']  # no temp file left behind


def test_check_mode_runs_probes_but_writes_nothing(tmp_path):
    textfile = tmp_path / 'health.prom'
    run, result = probe_run(dict(name='root', kind='disk', path='/'), check=True, prometheus_textfile=str(textfile))
    assert run.rc == 0
    assert by_name(result)['root']['status'] in ('healthy', 'degraded', 'unhealthy')
    assert result['prometheus_textfile'] is None
    assert not textfile.exists()


def test_second_run_reports_no_change():
    first = probe_run(dict(name='mem', kind='memory'))[1]
    second = probe_run(dict(name='mem', kind='memory'))[1]
    assert first['changed'] is False and second['changed'] is False


def test_fail_on_levels():
    run, result = probe_run(dict(name='missing', kind='disk', path='/no/such/dir'), fail_on='unhealthy')
    assert run.rc != 0 and result['failed'] is True
    assert 'missing: path /no/such/dir does not exist' in result['msg']
    assert result['probes'][0]['status'] == 'unhealthy'  # the full result comes with the failure
    run, result = probe_run(dict(name='missing', kind='disk', path='/no/such/dir'), fail_on='never')
    assert run.rc == 0 and result['status'] == 'unhealthy'


# --- bad inputs: a clear message, no probe run, nothing written --------------------------

@pytest.mark.parametrize('probes, options, message', [
    ([dict(name='x', kind='ftp')], {}, 'value of kind must be one of: postgres, redis, http'),
    ([dict(name='x', kind='http')], {}, 'kind is http but all of the following are missing: url'),
    ([dict(name='x', kind='process')], {}, 'kind is process but any of the following are missing: process_name'),
    ([dict(name='x', kind='disk', path='/', degraded_pct=95, unhealthy_pct=90)], {},
     "probe 'x': thresholds out of order: degraded_pct (95.0) must not be above unhealthy_pct (90.0)"),
    ([dict(name='x', kind='http', url='http://127.0.0.1/', latency_degraded_ms=-5)], {},
     "probe 'x': latency_degraded_ms must not be negative"),
    ([dict(name='x', kind='disk', path='/', unhealthy_pct=150)], {}, 'is a percentage, at most 100'),
    ([dict(name='x', kind='memory'), dict(name='x', kind='load')], {}, "probe name 'x' is used twice"),
    ([dict(name='x', kind='memory', bogus=1)], {}, 'Unsupported parameters'),
    ([], {}, 'probes is empty'),
    ([dict(name='x', kind='memory')], dict(timeout=0), 'timeout must be a positive number'),
], ids=['unknown-kind', 'http-without-url', 'process-without-target', 'thresholds-out-of-order',
        'negative-threshold', 'percent-over-100', 'duplicate-name', 'unknown-key', 'empty', 'zero-timeout'])
def test_bad_input_fails_before_probing(tmp_path, probes, options, message):
    textfile = tmp_path / 'health.prom'
    args = dict(options, probes=probes, prometheus_textfile=str(textfile))
    run = run_tasks([{'name': 'probe', MODULE: args}])
    result = run.result('probe')
    assert run.rc != 0 and result['failed'] is True
    assert message in result['msg']
    assert not textfile.exists()


@pytest.mark.parametrize('directory, message', [
    ('/no/such/dir', 'directory /no/such/dir does not exist'),
    ('/sys/kernel', 'directory /sys/kernel is not writable'),
], ids=['missing-dir', 'unwritable-dir'])
def test_textfile_directory_checked_before_probing(directory, message):
    run, result = probe_run(dict(name='cmd', kind='command', argv=['touch', '/tmp/engineroom-should-not-run']),
                            prometheus_textfile=directory + '/health.prom')
    assert run.rc != 0
    assert message in result['msg']
    assert 'executed_commands' not in result  # failed before any probe ran
    assert not os.path.exists('/tmp/engineroom-should-not-run')

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health probes: each answers "is this part healthy right now?" without changing it.

A probe never raises to the module: whatever goes wrong while probing (a
refused port, a missing library, a timeout) is itself the finding, reported
as ``unhealthy`` with the reason. Bad *configuration* (unknown kind, missing
keys, thresholds out of order) is caught before any probe runs, by
:func:`resolve_thresholds` and the module's argument spec.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.urls import open_url
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.engineroom.maintenance.plugins.module_utils.lock.record import (
    DEFAULT_LOCK_FILE,
    LockCorrupt,
    describe_holder,
    read_record,
    seconds_left,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
    StatementRunner,
    connect,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import (
    elapsed_ms,
    format_argv,
)

try:
    import docker
    import docker.errors
    HAS_DOCKER = True
except ImportError:
    HAS_DOCKER = False

STATUSES = ('healthy', 'degraded', 'unhealthy')
KINDS = ('postgres', 'redis', 'http', 'disk', 'memory', 'load', 'process', 'systemd', 'docker', 'command',
         'maintenance')

# Default thresholds per kind. A value at or above ``*_degraded*`` is degraded,
# at or above ``*_unhealthy*`` unhealthy. Latency defaults follow the seeds'
# health checks (PostgreSQL < 1 s healthy, < 3 s degraded; Redis < 100 ms / 500 ms).
DEFAULT_THRESHOLDS = {
    'postgres': dict(latency_degraded_ms=1000, latency_unhealthy_ms=3000, degraded_pct=80, unhealthy_pct=95),
    'redis': dict(latency_degraded_ms=100, latency_unhealthy_ms=500, degraded_pct=80, unhealthy_pct=95),
    'http': dict(latency_degraded_ms=500, latency_unhealthy_ms=2000),
    'disk': dict(degraded_pct=70, unhealthy_pct=90),
    'memory': dict(degraded_pct=85, unhealthy_pct=95),
    'load': dict(degraded_load=1.5, unhealthy_load=3.0),
    'process': {},
    'systemd': {},
    'docker': {},
    'command': {},
    'maintenance': {},
}
THRESHOLD_PAIRS = (
    ('latency_degraded_ms', 'latency_unhealthy_ms'),
    ('degraded_pct', 'unhealthy_pct'),
    ('degraded_load', 'unhealthy_load'),
)
PERCENT_KEYS = ('degraded_pct', 'unhealthy_pct')
DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'
BODY_READ_LIMIT = 1024 * 1024
OUTPUT_TAIL_CHARS = 2000


class ProbeConfigError(ValueError):
    """A probe definition that cannot be run as given (caught before probing)."""


def worst(statuses):
    """The worst of a list of statuses (``healthy`` for an empty list)."""
    return max(statuses, key=STATUSES.index) if statuses else 'healthy'


def grade(value, degraded_at, unhealthy_at):
    """Status of ``value`` against a pair of thresholds (``None`` disables one)."""
    if unhealthy_at is not None and value >= unhealthy_at:
        return 'unhealthy'
    if degraded_at is not None and value >= degraded_at:
        return 'degraded'
    return 'healthy'


def resolve_thresholds(probe):
    """Merge a probe's threshold options over its kind's defaults and check them.

    Raises :class:`ProbeConfigError` for a negative threshold, a percentage
    over 100, or a degraded threshold above the unhealthy one.
    """
    thresholds = dict(DEFAULT_THRESHOLDS[probe['kind']])
    for pair in THRESHOLD_PAIRS:
        for key in pair:
            if probe.get(key) is not None:
                thresholds[key] = probe[key]
    for key, value in thresholds.items():
        if value is not None and value < 0:
            raise ProbeConfigError('probe %r: %s must not be negative (got %s)' % (probe['name'], key, value))
        if key in PERCENT_KEYS and value is not None and value > 100:
            raise ProbeConfigError('probe %r: %s is a percentage, at most 100 (got %s)' % (probe['name'], key, value))
    for degraded_key, unhealthy_key in THRESHOLD_PAIRS:
        low, high = thresholds.get(degraded_key), thresholds.get(unhealthy_key)
        if low is not None and high is not None and low > high:
            raise ProbeConfigError(
                'probe %r: thresholds out of order: %s (%s) must not be above %s (%s)'
                % (probe['name'], degraded_key, low, unhealthy_key, high))
    return thresholds


class Finding:
    """What one probe found: the worst status seen, its reasons, details, commands."""

    def __init__(self):
        self.status = 'healthy'
        self.reasons = []
        self.details = {}
        self.commands = []
        self.response_ms = None
        self.summary = ''

    def flag(self, status, reason):
        """Record a reason; the probe's status becomes the worse of the two."""
        self.status = worst([self.status, status])
        if status != 'healthy':
            self.reasons.append(reason)

    def check(self, value, degraded_at, unhealthy_at, reason):
        """Grade ``value`` and record ``reason`` when it is not healthy."""
        self.flag(grade(value, degraded_at, unhealthy_at), reason)

    def check_latency(self, thresholds, what):
        self.check(self.response_ms, thresholds.get('latency_degraded_ms'), thresholds.get('latency_unhealthy_ms'),
                   '%s took %s ms (degraded at %s ms, unhealthy at %s ms)'
                   % (what, self.response_ms, thresholds.get('latency_degraded_ms'),
                      thresholds.get('latency_unhealthy_ms')))


# --- postgres ---------------------------------------------------------------

POSTGRES_STATEMENTS = (
    ('server_version_num', "SELECT current_setting('server_version_num')::int"),
    ('server_version', "SELECT current_setting('server_version')"),
    ('in_recovery', 'SELECT pg_is_in_recovery()'),
    ('max_connections', "SELECT current_setting('max_connections')::int"),
    ('connections', 'SELECT count(*) FROM pg_stat_activity WHERE backend_type = %s'),
    ('longest_query_s', "SELECT coalesce(extract(epoch FROM max(now() - query_start)), 0)::float "
                        "FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"),
    ('waiting_locks', 'SELECT count(*) FROM pg_locks WHERE NOT granted'),
)


def probe_postgres(probe, finding, thresholds, timeout):
    params = dict(probe)
    params['connect_timeout'] = probe.get('connect_timeout') or max(1, int(round(timeout)))
    started = time.monotonic()
    try:
        conn = connect(params)
    except PostgresError as exc:
        finding.flag('unhealthy', str(exc))
        return
    try:
        runner = StatementRunner(conn)
        runner.scalar('SELECT 1')
        finding.response_ms = elapsed_ms(started)
        for key, statement in POSTGRES_STATEMENTS:
            params = ('client backend',) if '%s' in statement else None
            finding.details[key] = runner.scalar(statement, params)
        finding.commands.extend(runner.executed)
    except Exception as exc:  # pylint: disable=broad-except
        finding.flag('unhealthy', 'PostgreSQL at %s:%s answered the connection but not the health queries: %s'
                     % (probe.get('login_host') or probe.get('login_unix_socket') or 'local socket',
                        probe.get('login_port'), str(exc).strip()))
        return
    finally:
        conn.close()
    details = finding.details
    details['longest_query_s'] = round(details['longest_query_s'], 3)
    details['connections_pct'] = round(100.0 * details['connections'] / details['max_connections'], 1)
    finding.check_latency(thresholds, 'connect and SELECT 1')
    finding.check(details['connections_pct'], thresholds['degraded_pct'], thresholds['unhealthy_pct'],
                  '%s of %s connections in use (%s %%)'
                  % (details['connections'], details['max_connections'], details['connections_pct']))
    finding.summary = 'PostgreSQL %s answered in %s ms, %s/%s connections%s' % (
        details['server_version'], finding.response_ms, details['connections'], details['max_connections'],
        ', in recovery' if details['in_recovery'] else '')


# --- redis ------------------------------------------------------------------

class RedisError(Exception):
    pass


def _resp_encode(*args):
    parts = [b'*%d\r\n' % len(args)]
    for arg in args:
        data = arg.encode('utf-8') if isinstance(arg, str) else arg
        parts.append(b'$%d\r\n%s\r\n' % (len(data), data))
    return b''.join(parts)


def _resp_read(reader):
    line = reader.readline()
    if not line.endswith(b'\r\n'):
        raise RedisError('connection closed mid-reply')
    kind, payload = line[:1], line[1:-2]
    if kind == b'+':
        return payload.decode('utf-8', 'replace')
    if kind == b'-':
        raise RedisError(payload.decode('utf-8', 'replace'))
    if kind == b':':
        return int(payload)
    if kind == b'$':
        size = int(payload)
        if size < 0:
            return None
        data = reader.read(size + 2)
        return data[:-2].decode('utf-8', 'replace')
    if kind == b'*':
        return [_resp_read(reader) for dummy in range(int(payload))]
    raise RedisError('not a Redis reply: %r' % line[:40])


def _parse_info(text):
    values = {}
    for line in (text or '').splitlines():
        if ':' in line and not line.startswith('#'):
            key, value = line.split(':', 1)
            values[key] = value.strip()
    return values


def probe_redis(probe, finding, thresholds, timeout):
    socket_path = probe.get('login_unix_socket')
    host = probe.get('login_host') or '127.0.0.1'
    port = probe.get('login_port') or 6379
    where = socket_path or '%s:%s' % (host, port)
    started = time.monotonic()
    try:
        if socket_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(socket_path)
        else:
            sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        finding.flag('unhealthy', 'cannot resolve Redis host %s: %s (check login_host)' % (host, exc))
        return
    except socket.timeout:
        finding.flag('unhealthy', 'Redis at %s did not answer within %s s' % (where, timeout))
        return
    except OSError as exc:
        finding.flag('unhealthy', 'cannot connect to Redis at %s: %s (is redis-server running there?)'
                     % (where, exc.strerror or exc))
        return
    try:
        reader = sock.makefile('rb')

        def command(*args):
            shown = ['AUTH', '********'] if args[0] == 'AUTH' else list(args)
            finding.commands.append('redis %s: %s' % (where, ' '.join(shown)))
            sock.sendall(_resp_encode(*args))
            return _resp_read(reader)

        if probe.get('login_password'):
            auth = ['AUTH'] + ([probe['login_user']] if probe.get('login_user') else []) + [probe['login_password']]
            command(*auth)
        pong = command('PING')
        finding.response_ms = elapsed_ms(started)
        if pong != 'PONG':
            finding.flag('unhealthy', 'Redis at %s answered PING with %r' % (where, pong))
            return
        info = _parse_info(command('INFO', 'memory'))
        info.update(_parse_info(command('INFO', 'clients')))
        info.update(_parse_info(command('INFO', 'server')))
    except socket.timeout:
        finding.flag('unhealthy', 'Redis at %s did not answer within %s s' % (where, timeout))
        return
    except (RedisError, OSError, ValueError) as exc:
        finding.flag('unhealthy', 'Redis at %s refused the probe: %s' % (where, exc))
        return
    finally:
        sock.close()
    details = finding.details
    details['redis_version'] = info.get('redis_version')
    for key in ('used_memory', 'maxmemory', 'connected_clients', 'blocked_clients', 'maxclients'):
        if info.get(key, '').isdigit():
            details[key] = int(info[key])
    if details.get('maxmemory'):
        details['memory_pct'] = round(100.0 * details['used_memory'] / details['maxmemory'], 1)
        finding.check(details['memory_pct'], thresholds['degraded_pct'], thresholds['unhealthy_pct'],
                      'Redis memory at %s %% of maxmemory' % details['memory_pct'])
    finding.check_latency(thresholds, 'PING')
    finding.summary = 'Redis %s answered PING in %s ms, %s clients' % (
        details.get('redis_version'), finding.response_ms, details.get('connected_clients'))


# --- http -------------------------------------------------------------------

def probe_http(probe, finding, thresholds, timeout):
    url = probe['url']
    expected = probe.get('expect_status') or [200]
    method = probe.get('method') or 'GET'
    finding.commands.append('%s %s' % (method, url))
    started = time.monotonic()
    try:
        response = open_url(url, method=method, timeout=timeout, validate_certs=probe.get('validate_certs', True),
                            follow_redirects='safe' if probe.get('follow_redirects', True) else 'none',
                            headers=probe.get('headers') or None)
        status_code = response.getcode()
        body = response.read(BODY_READ_LIMIT)
    except HTTPError as exc:
        status_code = exc.code
        body = exc.read(BODY_READ_LIMIT) if exc.fp else b''
    except socket.timeout:
        finding.flag('unhealthy', '%s did not answer within %s s' % (url, timeout))
        return
    except URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.timeout) or 'timed out' in str(reason):
            finding.flag('unhealthy', '%s did not answer within %s s' % (url, timeout))
        elif isinstance(reason, socket.gaierror):
            finding.flag('unhealthy', 'cannot resolve the host of %s: %s' % (url, reason))
        else:
            finding.flag('unhealthy', 'cannot reach %s: %s' % (url, reason))
        return
    except Exception as exc:  # pylint: disable=broad-except
        # open_url raises ssl/connection errors of several types; each is a finding.
        finding.flag('unhealthy', 'cannot reach %s: %s' % (url, exc))
        return
    finding.response_ms = elapsed_ms(started)
    finding.details.update(status_code=status_code, body_bytes=len(body))
    if status_code not in expected:
        finding.flag('unhealthy', '%s answered HTTP %s, expected %s' % (url, status_code, expected))
    substring = probe.get('body_contains')
    if substring is not None:
        found = substring.encode('utf-8') in body
        finding.details['body_contains'] = found
        if not found:
            finding.flag('unhealthy', '%s body does not contain %r' % (url, substring))
    finding.check_latency(thresholds, '%s %s' % (method, url))
    finding.summary = '%s answered HTTP %s in %s ms' % (url, status_code, finding.response_ms)


# --- disk, memory, load -----------------------------------------------------

def probe_disk(probe, finding, thresholds, timeout):
    entries = []
    for path in probe['path']:
        if not os.path.exists(path):
            finding.flag('unhealthy', 'path %s does not exist (missing mount or wrong path)' % path)
            continue
        stats = os.statvfs(path)
        used_blocks = stats.f_blocks - stats.f_bfree
        usable_blocks = used_blocks + stats.f_bavail
        used_pct = round(100.0 * used_blocks / usable_blocks, 1) if usable_blocks else 0.0
        used_inodes = stats.f_files - stats.f_ffree
        usable_inodes = used_inodes + stats.f_favail
        inodes_pct = round(100.0 * used_inodes / usable_inodes, 1) if usable_inodes else 0.0
        entries.append(dict(path=path, size_bytes=stats.f_blocks * stats.f_frsize,
                            used_bytes=used_blocks * stats.f_frsize, free_bytes=stats.f_bavail * stats.f_frsize,
                            used_pct=used_pct, inodes_used_pct=inodes_pct))
        finding.check(used_pct, thresholds['degraded_pct'], thresholds['unhealthy_pct'],
                      'disk %s %s %% used' % (path, used_pct))
        finding.check(inodes_pct, thresholds['degraded_pct'], thresholds['unhealthy_pct'],
                      'disk %s %s %% of inodes used' % (path, inodes_pct))
    finding.details['paths'] = entries
    finding.summary = ', '.join('%s %s %% used' % (e['path'], e['used_pct']) for e in entries)


def _read_meminfo():
    values = {}
    with open('/proc/meminfo') as handle:
        for line in handle:
            key, rest = line.split(':', 1)
            values[key] = int(rest.split()[0]) * 1024
    return values


def probe_memory(probe, finding, thresholds, timeout):
    info = _read_meminfo()
    total, available = info['MemTotal'], info.get('MemAvailable', info['MemFree'])
    used_pct = round(100.0 * (total - available) / total, 1)
    swap_total, swap_free = info.get('SwapTotal', 0), info.get('SwapFree', 0)
    finding.details.update(total_bytes=total, available_bytes=available, used_pct=used_pct,
                           swap_used_bytes=swap_total - swap_free)
    finding.check(used_pct, thresholds['degraded_pct'], thresholds['unhealthy_pct'],
                  'memory %s %% used' % used_pct)
    finding.summary = 'memory %s %% used' % used_pct


def probe_load(probe, finding, thresholds, timeout):
    with open('/proc/loadavg') as handle:
        load1, load5, load15 = (float(v) for v in handle.read().split()[:3])
    cpus = os.cpu_count() or 1
    per_cpu = round(load5 / cpus, 2)
    finding.details.update(load1=load1, load5=load5, load15=load15, cpus=cpus, load5_per_cpu=per_cpu)
    finding.check(per_cpu, thresholds['degraded_load'], thresholds['unhealthy_load'],
                  '5-minute load %s per CPU' % per_cpu)
    finding.summary = '5-minute load %s on %d CPUs' % (load5, cpus)


# --- process, systemd ---------------------------------------------------------

def _processes_named(name):
    """PIDs whose command name or argv[0] basename is ``name`` (zombies excluded)."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as handle:
                stat = handle.read()
            comm = stat[stat.index('(') + 1:stat.rindex(')')]
            state = stat[stat.rindex(')') + 2:][:1]
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                argv0 = handle.read().split(b'\0', 1)[0].decode('utf-8', 'replace')
        except (OSError, ValueError):
            continue  # the process ended while we looked
        if state == 'Z':
            continue
        if name in (comm, os.path.basename(argv0)) or (len(name) > 15 and comm == name[:15]):
            pids.append(int(entry))
    return sorted(pids)


def _check_pidfile(pidfile, finding):
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        finding.flag('unhealthy', 'pidfile %s unreadable: %s' % (pidfile, getattr(exc, 'strerror', None) or exc))
        return
    finding.details['pid'] = pid
    if not os.path.exists('/proc/%d' % pid):
        finding.flag('unhealthy', 'pidfile %s names pid %d, which is not running' % (pidfile, pid))


def probe_process(probe, finding, thresholds, timeout):
    if probe.get('pidfile'):
        _check_pidfile(probe['pidfile'], finding)
    name = probe.get('process_name')
    if name:
        pids = _processes_named(name)
        minimum = probe.get('min_count', 1)
        finding.details.update(process_name=name, count=len(pids), pids=pids[:20])
        if len(pids) < minimum:
            finding.flag('unhealthy', '%d process(es) named %s running, expected at least %d'
                         % (len(pids), name, minimum))
    finding.summary = ('%d %s process(es) running' % (finding.details['count'], name) if name
                       else 'pid %s running' % finding.details.get('pid'))


SYSTEMD_DEGRADED_STATES = ('activating', 'reloading', 'deactivating')


def probe_systemd(probe, finding, thresholds, timeout):
    unit = probe['unit']
    if not os.path.isdir('/run/systemd/system'):
        # Containers and minimal hosts run without systemd: fall back to the process table.
        fallback = dict(probe, process_name=probe.get('process_name') or unit.rsplit('.', 1)[0])
        finding.details['systemd'] = False
        probe_process(fallback, finding, thresholds, timeout)
        return
    argv = ['systemctl', 'show', unit, '--no-pager', '--property=LoadState,ActiveState,SubState,MainPID,NRestarts']
    finding.commands.append(format_argv(argv))
    try:
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        finding.flag('unhealthy', 'cannot ask systemd about %s: %s' % (unit, exc))
        return
    props = dict(line.split('=', 1) for line in completed.stdout.decode('utf-8', 'replace').splitlines() if '=' in line)
    finding.details.update(systemd=True, load_state=props.get('LoadState'), active_state=props.get('ActiveState'),
                           sub_state=props.get('SubState'), main_pid=int(props.get('MainPID') or 0),
                           restarts=int(props.get('NRestarts') or 0))
    active = props.get('ActiveState')
    if props.get('LoadState') == 'not-found':
        finding.flag('unhealthy', 'systemd unit %s not found' % unit)
    elif active in SYSTEMD_DEGRADED_STATES:
        finding.flag('degraded', 'systemd unit %s is %s' % (unit, active))
    elif active != 'active':
        finding.flag('unhealthy', 'systemd unit %s is %s (%s)' % (unit, active, props.get('SubState')))
    finding.summary = 'unit %s %s/%s' % (unit, active, props.get('SubState'))


# --- docker -----------------------------------------------------------------

def probe_docker(probe, finding, thresholds, timeout):
    container = probe['container']
    docker_host = probe.get('docker_host') or DEFAULT_DOCKER_HOST
    if not HAS_DOCKER:
        finding.flag('unhealthy', 'the Python library docker is not installed on the target host: '
                                  'install python3-docker or the docker package from PyPI')
        return
    if docker_host.startswith('unix://') and not os.path.exists(docker_host[len('unix://'):]):
        finding.flag('unhealthy', 'docker socket %s absent: is the Docker engine installed and running? '
                                  '(or set docker_host)' % docker_host[len('unix://'):])
        return
    finding.commands.append('docker inspect %s' % container)
    started = time.monotonic()
    try:
        client = docker.APIClient(base_url=docker_host, timeout=max(1, int(round(timeout))))
        try:
            state = client.inspect_container(container)
        finally:
            client.close()
    except docker.errors.NotFound:
        finding.flag('unhealthy', 'container %s not found on %s' % (container, docker_host))
        return
    except Exception as exc:  # pylint: disable=broad-except
        # The SDK raises requests/urllib3/docker errors alike for an engine that does not answer.
        finding.flag('unhealthy', 'cannot ask the Docker engine at %s about %s: %s' % (docker_host, container, exc))
        return
    finding.response_ms = elapsed_ms(started)
    state_info = state.get('State') or {}
    health = (state_info.get('Health') or {}).get('Status')
    finding.details.update(id=state.get('Id', '')[:12], status=state_info.get('Status'),
                           running=bool(state_info.get('Running')), health=health,
                           restart_count=state.get('RestartCount', 0), started_at=state_info.get('StartedAt'))
    if not state_info.get('Running'):
        finding.flag('unhealthy', 'container %s is %s' % (container, state_info.get('Status')))
    if health == 'unhealthy':
        finding.flag('unhealthy', 'container %s HEALTHCHECK reports unhealthy' % container)
    elif health == 'starting':
        finding.flag('degraded', 'container %s HEALTHCHECK is still starting' % container)
    finding.summary = 'container %s %s%s' % (container, state_info.get('Status'),
                                             ' (%s)' % health if health else '')


# --- command ----------------------------------------------------------------

def probe_command(probe, finding, thresholds, timeout):
    argv = [str(arg) for arg in probe['argv']]
    finding.commands.append(format_argv(argv))
    started = time.monotonic()
    try:
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=timeout, check=False, cwd=probe.get('chdir'))
    except FileNotFoundError:
        finding.flag('unhealthy', 'command %s not found (install it or give its full path in argv)' % argv[0])
        return
    except subprocess.TimeoutExpired:
        finding.flag('unhealthy', 'command %s did not finish within %s s (killed)' % (argv[0], timeout))
        return
    except OSError as exc:
        finding.flag('unhealthy', 'cannot run %s: %s' % (argv[0], exc.strerror or exc))
        return
    finding.response_ms = elapsed_ms(started)
    output = completed.stdout.decode('utf-8', 'replace')
    finding.details.update(rc=completed.returncode, output_tail=output[-OUTPUT_TAIL_CHARS:])
    if completed.returncode in (probe.get('degraded_rc') or []):
        finding.flag('degraded', '%s exited %d (listed in degraded_rc)' % (argv[0], completed.returncode))
    elif completed.returncode != 0:
        finding.flag('unhealthy', '%s exited %d' % (argv[0], completed.returncode))
    finding.summary = '%s exited %d in %s ms' % (argv[0], completed.returncode, finding.response_ms)


# --- maintenance -------------------------------------------------------------

def probe_maintenance(probe, finding, thresholds, timeout):
    """Maintenance mode is a planned degradation; a lock past its expiry is a forgotten one."""
    path = probe.get('lock_file') or DEFAULT_LOCK_FILE
    finding.details['lock_file'] = path
    try:
        record = read_record(path)
    except LockCorrupt as exc:
        finding.flag('unhealthy', '%s: inspect it; maintenance_lock with state=absent and force=true removes it' % exc)
        return
    if record is None:
        finding.details['locked'] = False
        finding.summary = 'maintenance off (no lock at %s)' % path
        return
    now = utc_now()
    left = seconds_left(record, now)
    finding.details.update(locked=True, expired=left <= 0, expires_in_s=left)
    for key in ('owner', 'reason', 'run_id', 'started_at', 'expires_at'):
        finding.details[key] = record.get(key)
    if left <= 0:
        finding.flag('unhealthy', 'maintenance lock %s held by %s: forgotten? release it (maintenance_lock '
                                  'state=absent) or take it over (steal_expired=true)'
                     % (path, describe_holder(record, now)))
    else:
        finding.flag('degraded', 'maintenance on: lock held by %s' % describe_holder(record, now))


PROBES = {
    'postgres': probe_postgres,
    'redis': probe_redis,
    'http': probe_http,
    'disk': probe_disk,
    'memory': probe_memory,
    'load': probe_load,
    'process': probe_process,
    'systemd': probe_systemd,
    'docker': probe_docker,
    'command': probe_command,
    'maintenance': probe_maintenance,
}


def run_probe(probe, thresholds, default_timeout):
    """Run one probe and return its result dict; never raises."""
    finding = Finding()
    timeout = probe.get('timeout') or default_timeout
    started = time.monotonic()
    try:
        PROBES[probe['kind']](probe, finding, thresholds, timeout)
    except Exception as exc:  # pylint: disable=broad-except
        # A probe bug or an unexpected OS error must still produce a result, not a trace.
        finding.flag('unhealthy', 'probe failed: %s: %s' % (type(exc).__name__, exc))
    if finding.response_ms is None:
        finding.response_ms = elapsed_ms(started)
    message = '; '.join(finding.reasons) if finding.reasons else finding.summary
    return dict(name=probe['name'], kind=probe['kind'], status=finding.status, response_ms=finding.response_ms,
                message=message, details=finding.details, thresholds=thresholds,
                executed_commands=finding.commands)


def run_probes(probes, thresholds, default_timeout, workers=8):
    """Run probes concurrently, return results in the order given.

    Probes wait on the network or on other processes, so threads let a slow
    probe's timeout overlap with the others instead of adding up.
    """
    if not probes:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(probes))) as pool:
        futures = [pool.submit(run_probe, probe, limits, default_timeout)
                   for probe, limits in zip(probes, thresholds)]
        return [future.result() for future in futures]


def escape_label(value):
    return str(value).replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def prometheus_text(results, overall, timestamp):
    """Render results in the Prometheus text exposition format (node_exporter textfile collector)."""
    lines = [
        '# HELP engineroom_health_probe_status Probe status: 0 healthy, 1 degraded, 2 unhealthy.',
        '# TYPE engineroom_health_probe_status gauge',
    ]
    labels = ['name="%s",kind="%s"' % (escape_label(r['name']), escape_label(r['kind'])) for r in results]
    for label, result in zip(labels, results):
        lines.append('engineroom_health_probe_status{%s} %d' % (label, STATUSES.index(result['status'])))
    lines += [
        '# HELP engineroom_health_probe_response_seconds Time the probe took to answer.',
        '# TYPE engineroom_health_probe_response_seconds gauge',
    ]
    for label, result in zip(labels, results):
        lines.append('engineroom_health_probe_response_seconds{%s} %.4f' % (label, result['response_ms'] / 1000.0))
    lines += [
        '# HELP engineroom_health_status Worst status of all probes: 0 healthy, 1 degraded, 2 unhealthy.',
        '# TYPE engineroom_health_status gauge',
        'engineroom_health_status %d' % STATUSES.index(overall),
        '# HELP engineroom_health_last_run_timestamp_seconds When the probes last ran (Unix time).',
        '# TYPE engineroom_health_last_run_timestamp_seconds gauge',
        'engineroom_health_last_run_timestamp_seconds %.3f' % timestamp,
    ]
    return '\n'.join(lines) + '\n'

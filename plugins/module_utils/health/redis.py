# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis probe: PING and INFO over the Redis protocol (RESP) on a plain socket, no client library."""

from __future__ import annotations

import socket
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms


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


def _redis_socket(probe, where, timeout):
    """A connected socket to the probe's Redis, or an unhealthy reason (str)."""
    socket_path = probe.get('login_unix_socket')
    host = probe.get('login_host') or '127.0.0.1'
    try:
        if socket_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(socket_path)
            return sock
        return socket.create_connection((host, probe.get('login_port') or 6379), timeout=timeout)
    except socket.gaierror as exc:
        return 'cannot resolve Redis host %s: %s (check login_host)' % (host, exc)
    except socket.timeout:
        return 'Redis at %s did not answer within %s s' % (where, timeout)
    except OSError as exc:
        return 'cannot connect to Redis at %s: %s (is redis-server running there?)' % (where, exc.strerror or exc)


def probe_redis(probe, finding, thresholds, timeout):
    where = probe.get('login_unix_socket') or '%s:%s' % (probe.get('login_host') or '127.0.0.1', probe.get('login_port') or 6379)
    started = time.monotonic()
    sock = _redis_socket(probe, where, timeout)
    if isinstance(sock, str):
        finding.flag('unhealthy', sock)
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
    _grade_redis(info, finding, thresholds)


def _grade_redis(info, finding, thresholds):
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

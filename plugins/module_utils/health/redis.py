# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis probe: PING and INFO through the collection's one Redis client (redis/client.py)."""

from __future__ import annotations

import socket
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.client import (
    RedisClient,
    RedisConnectionError,
    RedisError,
    parse_info,
)


def probe_redis(probe, finding, thresholds, timeout):
    client = RedisClient(host=probe.get('login_host'), port=probe.get('login_port'), unix_socket=probe.get('login_unix_socket'),
                         user=probe.get('login_user'), password=probe.get('login_password'), timeout=timeout)
    started = time.monotonic()
    try:
        with client:
            pong = client.text('PING')
            finding.response_ms = elapsed_ms(started)
            if pong != 'PONG':
                finding.flag('unhealthy', 'Redis at %s answered PING with %r' % (client.where, pong))
                return
            info = parse_info(client.text('INFO', 'memory'))
            info.update(parse_info(client.text('INFO', 'clients')))
            info.update(parse_info(client.text('INFO', 'server')))
    except RedisConnectionError as exc:
        finding.flag('unhealthy', str(exc))
        return
    except socket.timeout:
        finding.flag('unhealthy', 'Redis at %s did not answer within %s s' % (client.where, timeout))
        return
    except (RedisError, OSError, ValueError) as exc:
        finding.flag('unhealthy', 'Redis at %s refused the probe: %s' % (client.where, exc))
        return
    finally:
        finding.commands.extend('redis %s: %s' % (client.where, command) for command in client.commands)
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

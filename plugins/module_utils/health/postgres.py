# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The postgres probe: connect, SELECT 1, and read connections, recovery and lock waits."""

from __future__ import annotations

import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
    StatementRunner,
    connect,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms


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

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services' side of a triage: PostgreSQL activity and locks, Redis INFO, containers."""

from __future__ import annotations


from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
    connect,
    describe_target,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.client import (
    RedisClient,
    RedisConnectionError,
    RedisError,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.triage.collect import CollectError

ACTIVITY = '''
SELECT pid, usename, datname, application_name, client_addr::text, state, wait_event_type, wait_event,
       backend_start, xact_start, query_start, now() - query_start AS query_age, backend_type, left(query, 2000) AS query
FROM pg_stat_activity WHERE pid <> pg_backend_pid() ORDER BY query_start NULLS LAST'''
LOCKS = '''
SELECT l.pid, l.locktype, l.mode, l.granted, l.relation::regclass::text AS relation, l.transactionid::text,
       a.usename, a.state, now() - a.query_start AS waiting
FROM pg_locks l LEFT JOIN pg_stat_activity a USING (pid)
WHERE l.pid <> pg_backend_pid() AND (NOT l.granted OR l.pid IN (
    SELECT unnest(pg_blocking_pids(w.pid)) FROM pg_locks w WHERE NOT w.granted))
ORDER BY l.granted, l.pid'''
BLOCKING = '''
SELECT pid, pg_blocking_pids(pid) AS blocked_by, usename, state, now() - query_start AS waiting,
       left(query, 500) AS query
FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0 ORDER BY query_start'''
LONG_TRANSACTIONS = '''
SELECT pid, usename, datname, state, xact_start, now() - xact_start AS age, left(query, 500) AS query
FROM pg_stat_activity
WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND now() - xact_start > make_interval(secs => %s)
ORDER BY xact_start'''


def _rows(cursor, statement, params=None):
    cursor.execute(statement, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def collect_postgres(collector, params, long_transaction_s):
    """Activity, locks that block or wait, blocking chains, long transactions."""
    if not params:
        return 'no PostgreSQL connection configured'
    params = dict(params, connect_timeout=max(1, int(min(5, collector.timeout()))))
    collector.commands.append('postgres %s: pg_stat_activity, pg_locks, pg_blocking_pids' % describe_target(params))
    try:
        conn = connect(params)
    except PostgresError as exc:
        raise CollectError(str(exc)) from exc
    try:
        with conn.cursor() as cursor:
            cursor.execute('SET statement_timeout = %s', (int(collector.timeout() * 1000),))
            report = dict(target=describe_target(params),
                          activity=_rows(cursor, ACTIVITY), locks=_rows(cursor, LOCKS),
                          blocking=_rows(cursor, BLOCKING),
                          long_transactions=_rows(cursor, LONG_TRANSACTIONS, (long_transaction_s,)))
    except Exception as exc:  # psycopg2.Error and its subclasses; psycopg2 may be absent
        raise CollectError('PostgreSQL at %s: %s' % (describe_target(params), str(exc).strip())) from exc
    finally:
        conn.close()
    collector.add('postgres/activity.json', report)
    return None


def _redis_info(instance, timeout):
    client = RedisClient(host=instance.get('login_host'), port=instance.get('login_port'),
                         unix_socket=instance.get('login_unix_socket'), user=instance.get('login_user'),
                         password=instance.get('login_password'), timeout=timeout)
    try:
        with client:
            return client.where, client.text('INFO', 'everything')
    except RedisConnectionError as exc:
        return client.where, str(exc)
    except (RedisError, OSError, ValueError) as exc:
        return client.where, 'Redis at %s refused INFO: %s' % (client.where, exc)


def collect_redis(collector, instances):
    if not instances:
        return 'no Redis configured'
    failures = []
    for number, instance in enumerate(instances):
        where, text = _redis_info(instance, collector.timeout())
        collector.commands.append('redis %s: INFO everything' % where)
        if text is None or not text.startswith('#'):
            failures.append(text or 'no answer from %s' % where)
            continue
        collector.add('redis/%s-info.txt' % (instance.get('name') or number), '# %s\n%s' % (where, text))
    if failures:
        raise CollectError('; '.join(failures))
    return None


def _container_state(container, redactor, lines):
    attrs = container.attrs
    state = attrs.get('State') or {}
    config = attrs.get('Config') or {}
    logs = container.logs(tail=lines, timestamps=True).decode('utf-8', 'replace')
    return dict(name=container.name, id=container.short_id, image=config.get('Image'), status=state.get('Status'),
                health=(state.get('Health') or {}).get('Status'), exit_code=state.get('ExitCode'),
                started_at=state.get('StartedAt'), finished_at=state.get('FinishedAt'),
                restart_count=attrs.get('RestartCount'), oom_killed=state.get('OOMKilled'),
                env=redactor.env(config.get('Env')), command=config.get('Cmd'), last_log_lines=logs.splitlines())


def collect_containers(collector, docker_host, lines):
    """Every container's state, its environment's names (values redacted) and its last log lines."""
    from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.client import DockerExecError, docker_client
    try:
        client = docker_client(docker_host, timeout=max(1, int(collector.timeout())))
        collector.commands.append('docker %s: containers.list(all=True), logs(tail=%d)' % (docker_host, lines))
        states = [_container_state(c, collector.redactor, lines) for c in client.containers.list(all=True)]
    except DockerExecError as exc:
        raise CollectError(str(exc)) from exc
    except Exception as exc:  # docker.errors.DockerException, requests' errors
        raise CollectError('Docker engine at %s: %s' % (docker_host, exc)) from exc
    collector.add('containers/containers.json', states)
    return None

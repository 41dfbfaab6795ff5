#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: health_probe
short_description: Check whether a host and its services are healthy right now
version_added: 0.1.0
description:
  - Runs a list of read-only probes (PostgreSQL, Redis, HTTP, disk, memory, load,
    processes, systemd units, Docker containers, commands, maintenance mode) concurrently and grades each
    V(healthy), V(degraded) or V(unhealthy) against thresholds.
  - The overall RV(status) is the worst probe status. The module fails when it reaches O(fail_on).
  - A probe that cannot run (missing library, refused connection, timeout) is V(unhealthy)
    with the reason in its RV(probes[].message); it never raises a traceback.
  - Bad configuration (unknown kind, missing keys, thresholds out of order, an unusable
    O(prometheus_textfile) directory) fails before any probe runs.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Probes only read, so they run in check mode too; O(prometheus_textfile) is not written in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - The module never changes the probed systems and always returns RV(ignore:changed=false).
options:
  probes:
    description:
      - The probes to run. Each needs a unique O(probes[].name) and a O(probes[].kind);
        the other keys depend on the kind.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the probe, unique in the list; used in messages and metrics labels.
        type: str
        required: true
      kind:
        description:
          - What to probe.
          - V(postgres) connects, runs C(SELECT 1) and reads connections, version, recovery state,
            the longest running query and waiting locks.
          - V(redis) sends C(PING) and C(INFO) over the Redis protocol (no client library needed).
          - V(http) requests O(probes[].url) and checks status code, latency and optionally the body.
          - V(disk) checks used space and inodes of O(probes[].path).
          - V(memory) and V(load) read C(/proc/meminfo) and C(/proc/loadavg).
          - V(process) looks for O(probes[].process_name) in the process table and/or the pid in O(probes[].pidfile).
          - V(systemd) reads the C(ActiveState) of O(probes[].unit); on a host without systemd
            (a container) it checks the process table for O(probes[].process_name) instead.
          - V(docker) inspects O(probes[].container) through the Docker engine API.
          - V(command) runs O(probes[].argv) (no shell); exit code 0 is healthy.
          - V(maintenance) reads the lock of M(engineroom.maintenance.maintenance_lock) in O(probes[].lock_file).
            It is V(healthy) when maintenance is off, V(degraded) while it is on, V(unhealthy) when the lock has
            expired (a forgotten lock) or the file is corrupt.
        type: str
        required: true
        choices: [postgres, redis, http, disk, memory, load, process, systemd, docker, command, maintenance]
      timeout:
        description: Seconds this probe may take; defaults to the module's O(timeout).
        type: float
      latency_degraded_ms:
        description:
          - Response time at or above which the probe is V(degraded).
          - Defaults to V(1000) for V(postgres), V(100) for V(redis), V(500) for V(http); unset for other kinds.
        type: float
      latency_unhealthy_ms:
        description:
          - Response time at or above which the probe is V(unhealthy).
          - Defaults to V(3000) for V(postgres), V(500) for V(redis), V(2000) for V(http).
        type: float
      degraded_pct:
        description:
          - Usage percentage at or above which the probe is V(degraded), for disk space and inodes
            (default V(70)), memory (V(85)), PostgreSQL connections of C(max_connections) (V(80)),
            Redis memory of C(maxmemory) when set (V(80)).
        type: float
      unhealthy_pct:
        description:
          - Usage percentage at or above which the probe is V(unhealthy), for disk (default V(90)),
            memory (V(95)), PostgreSQL connections (V(95)), Redis memory (V(95)).
        type: float
      degraded_load:
        description: 5-minute load average per CPU at or above which a V(load) probe is V(degraded) (default V(1.5)).
        type: float
      unhealthy_load:
        description: 5-minute load average per CPU at or above which a V(load) probe is V(unhealthy) (default V(3.0)).
        type: float
      login_host:
        description: PostgreSQL or Redis host. Default is the local socket for V(postgres), V(127.0.0.1) for V(redis).
        type: str
      login_port:
        description: PostgreSQL or Redis port. Default V(5432) for V(postgres), V(6379) for V(redis).
        type: int
      login_user:
        description: PostgreSQL role (default V(postgres)), or Redis ACL user when O(probes[].login_password) is set.
        type: str
      login_password:
        description: PostgreSQL or Redis password. Never logged.
        type: str
      login_db:
        description: PostgreSQL database to connect to (default V(postgres)).
        type: str
      login_unix_socket:
        description: Directory of the PostgreSQL socket, or path of the Redis socket.
        type: str
      ssl_mode:
        description: libpq SSL mode for V(postgres).
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      login_os_user:
        description:
          - OS user a V(postgres) probe connects as over the unix socket (peer authentication, e.g. V(postgres) on
            Debian's packaged cluster); the module stays root and takes that identity only while connecting.
        type: str
      connect_timeout:
        description: PostgreSQL connect timeout in seconds; defaults to the probe's timeout.
        type: int
      url:
        description: URL of an V(http) probe.
        type: str
      method:
        description: HTTP method of an V(http) probe.
        type: str
        default: GET
      expect_status:
        description: HTTP status codes that count as healthy.
        type: list
        elements: int
        default: [200]
      body_contains:
        description: Text the response body must contain (the first MiB is read).
        type: str
      headers:
        description: Extra HTTP request headers.
        type: dict
      validate_certs:
        description: Verify the server's TLS certificate.
        type: bool
        default: true
      follow_redirects:
        description: Follow safe (GET/HEAD) redirects.
        type: bool
        default: true
      path:
        description: One or more paths whose filesystems a V(disk) probe checks.
        type: list
        elements: path
      process_name:
        description:
          - Process name (as in C(/proc/PID/comm) or the basename of C(argv[0])) for V(process),
            and the fallback of V(systemd) on hosts without systemd (default the unit name without its suffix).
        type: str
      pidfile:
        description: A pidfile whose process must be running (V(process)).
        type: path
      min_count:
        description: How many processes named O(probes[].process_name) must run at least.
        type: int
        default: 1
      unit:
        description: systemd unit of a V(systemd) probe.
        type: str
      container:
        description: Name or ID of the container of a V(docker) probe.
        type: str
      docker_host:
        description: Docker engine API address.
        type: str
        default: unix:///var/run/docker.sock
      argv:
        description: Program and arguments of a V(command) probe, run without a shell.
        type: list
        elements: str
      degraded_rc:
        description: Exit codes of a V(command) probe that mean V(degraded) rather than V(unhealthy).
        type: list
        elements: int
        default: []
      chdir:
        description: Working directory of a V(command) probe.
        type: path
      lock_file:
        description: Lock file of a V(maintenance) probe (default V(/var/lib/engineroom/maintenance.json)).
        type: path
  fail_on:
    description:
      - Fail the task when the overall status is at least this bad; V(never) only reports.
    type: str
    choices: [unhealthy, degraded, never]
    default: unhealthy
  timeout:
    description: Default seconds each probe may take.
    type: float
    default: 5
  prometheus_textfile:
    description:
      - Write the results in the Prometheus text format to this file, atomically, for
        node_exporter's textfile collector (use a C(.prom) name in its directory).
      - The directory must exist and be writable; this is checked before any probe runs.
    type: path
requirements:
  - psycopg2 on the managed host for V(postgres) probes
  - the docker Python SDK on the managed host for V(docker) probes
seealso:
  - name: node_exporter textfile collector
    description: How node_exporter picks up C(.prom) files.
    link: https://github.com/prometheus/node_exporter#textfile-collector
'''

EXAMPLES = r'''
- name: Check the application stack
  engineroom.maintenance.health_probe:
    probes:
      - {name: db, kind: postgres, login_host: 127.0.0.1, login_user: monitor, login_password: "{{ monitor_password }}", login_db: app}
      - {name: cache, kind: redis, login_port: 6379}
      - {name: api, kind: http, url: "http://127.0.0.1:8000/health", expect_status: [200], body_contains: ok}
      - {name: uploads, kind: disk, path: /srv/app/data}
      - {name: memory, kind: memory}
      - {name: worker, kind: command, argv: [celery, -A, app, inspect, ping], timeout: 20}
      - {name: maintenance, kind: maintenance, lock_file: /var/lib/engineroom/maintenance.json}
  register: health

- name: Report only, never fail, and export for node_exporter
  engineroom.maintenance.health_probe:
    fail_on: never
    prometheus_textfile: /var/lib/node_exporter/textfile/engineroom_health.prom
    probes:
      - {name: root, kind: disk, path: [/, /var], degraded_pct: 75, unhealthy_pct: 92}
      - {name: nginx, kind: systemd, unit: nginx.service}
      - {name: app, kind: docker, container: app}
'''

RETURN = r'''
status:
  description: Worst status of all probes.
  returned: always
  type: str
  sample: degraded
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "health degraded: 3 healthy, 1 degraded, 0 unhealthy; uploads: disk /srv/app/data 82.0 % used"
counts:
  description: Number of probes per status.
  returned: always
  type: dict
  contains:
    healthy:
      description: Probes found healthy.
      type: int
    degraded:
      description: Probes found degraded.
      type: int
    unhealthy:
      description: Probes found unhealthy.
      type: int
  sample: {healthy: 3, degraded: 1, unhealthy: 0}
probes:
  description: One entry per probe, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The probe's name.
      type: str
    kind:
      description: The probe's kind.
      type: str
    status:
      description: V(healthy), V(degraded) or V(unhealthy).
      type: str
    response_ms:
      description: How long the probe took to answer (connect and first answer for servers), in milliseconds.
      type: float
    message:
      description: Why the probe is not healthy (reasons joined by C(; )), or a one-line description when it is.
      type: str
    details:
      description:
        - Kind-specific figures, for example C(server_version_num), C(connections), C(max_connections),
          C(connections_pct), C(in_recovery), C(longest_query_s), C(waiting_locks) for V(postgres);
          C(status_code) for V(http); C(paths) with C(used_pct) and C(inodes_used_pct) for V(disk);
          C(rc) and C(output_tail) for V(command); C(status), C(health), C(restart_count) for V(docker);
          C(locked), C(expired), C(expires_in_s), C(owner), C(reason), C(expires_at) for V(maintenance).
      type: dict
    thresholds:
      description: The thresholds the probe was graded against, defaults merged with the probe's own.
      type: dict
  sample:
    - name: db
      kind: postgres
      status: healthy
      response_ms: 4.2
      message: PostgreSQL 15.18 answered in 4.2 ms, 6/100 connections
      details: {server_version_num: 150018, connections: 6, max_connections: 100, connections_pct: 6.0,
                in_recovery: false, longest_query_s: 0.0, waiting_locks: 0}
      thresholds: {latency_degraded_ms: 1000, latency_unhealthy_ms: 3000, degraded_pct: 80, unhealthy_pct: 95}
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 35.2, probes_total: 4, probes_healthy: 3, probes_degraded: 1, probes_unhealthy: 0}
executed_commands:
  description: SQL statements, Redis commands, HTTP requests and argv the probes ran (secrets masked).
  returned: always
  type: list
  elements: str
  sample: ["SELECT 1", "redis 127.0.0.1:6379: PING", "GET http://127.0.0.1:8000/health"]
prometheus_textfile:
  description: Path of the Prometheus textfile written, or V(null) when none was written (not requested, or check mode).
  returned: always
  type: str
  sample: /var/lib/node_exporter/textfile/engineroom_health.prom
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import (
    atomic_write,
    check_writable_dir,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.client import DEFAULT_DOCKER_HOST
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.core import (
    KINDS,
    STATUSES,
    ProbeConfigError,
    prometheus_text,
    resolve_thresholds,
    worst,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.probes import run_probes
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import SSL_MODES
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms

PROBE_SPEC = dict(
    name=dict(type='str', required=True),
    kind=dict(type='str', required=True, choices=list(KINDS)),
    timeout=dict(type='float'),
    latency_degraded_ms=dict(type='float'),
    latency_unhealthy_ms=dict(type='float'),
    degraded_pct=dict(type='float'),
    unhealthy_pct=dict(type='float'),
    degraded_load=dict(type='float'),
    unhealthy_load=dict(type='float'),
    login_host=dict(type='str'),
    login_port=dict(type='int'),
    login_user=dict(type='str'),
    login_password=dict(type='str', no_log=True),
    login_db=dict(type='str'),
    login_unix_socket=dict(type='str'),
    ssl_mode=dict(type='str', choices=SSL_MODES),
    login_os_user=dict(type='str'),
    connect_timeout=dict(type='int'),
    url=dict(type='str'),
    method=dict(type='str', default='GET'),
    expect_status=dict(type='list', elements='int', default=[200]),
    body_contains=dict(type='str'),
    headers=dict(type='dict'),
    validate_certs=dict(type='bool', default=True),
    follow_redirects=dict(type='bool', default=True),
    path=dict(type='list', elements='path'),
    process_name=dict(type='str'),
    pidfile=dict(type='path'),
    min_count=dict(type='int', default=1),
    unit=dict(type='str'),
    container=dict(type='str'),
    docker_host=dict(type='str', default=DEFAULT_DOCKER_HOST),
    argv=dict(type='list', elements='str'),
    degraded_rc=dict(type='list', elements='int', default=[]),
    chdir=dict(type='path'),
    lock_file=dict(type='path'),
)

# Keys that only mean something for some kinds: given to another kind they are
# most likely a mistake, so the module warns instead of silently ignoring them.
KIND_ONLY_KEYS = dict(
    login_host=('postgres', 'redis'), login_port=('postgres', 'redis'), login_user=('postgres', 'redis'),
    login_password=('postgres', 'redis'), login_db=('postgres',), login_unix_socket=('postgres', 'redis'),
    ssl_mode=('postgres',), login_os_user=('postgres',), connect_timeout=('postgres',), url=('http',), body_contains=('http',),
    headers=('http',), path=('disk',), process_name=('process', 'systemd'), pidfile=('process',),
    unit=('systemd',), container=('docker',), argv=('command',), chdir=('command',),
    lock_file=('maintenance',),
)


def check_probe_list(module, probes):
    """Reject what the argument spec cannot express: an empty list, duplicate names, bad sizes."""
    if not probes:
        module.fail_json(msg='probes is empty: give at least one probe')
    seen = set()
    for probe in probes:
        if probe['name'] in seen:
            module.fail_json(msg='probe name %r is used twice: probe names must be unique' % probe['name'])
        seen.add(probe['name'])
        if probe['kind'] == 'command' and not probe['argv']:
            module.fail_json(msg='probe %r: argv is empty: give the program and its arguments' % probe['name'])
        if probe['kind'] == 'disk' and not probe['path']:
            module.fail_json(msg='probe %r: path is empty: give at least one path' % probe['name'])
        for number in ('timeout', 'min_count', 'connect_timeout'):
            if probe.get(number) is not None and probe[number] < 0:
                module.fail_json(msg='probe %r: %s must not be negative' % (probe['name'], number))
        for key, kinds in KIND_ONLY_KEYS.items():
            if probe.get(key) is not None and probe['kind'] not in kinds:
                module.warn('probe %r (%s) ignores %s, which applies to %s probes only'
                            % (probe['name'], probe['kind'], key, '/'.join(kinds)))


def summarize(overall, counts, results):
    problems = ['%s: %s' % (r['name'], r['message']) for r in results if r['status'] != 'healthy']
    line = 'health %s: %d healthy, %d degraded, %d unhealthy' % (
        overall, counts['healthy'], counts['degraded'], counts['unhealthy'])
    return line + ('; ' + '; '.join(problems) if problems else '')


def write_textfile(module, textfile, results, overall):
    """Write the Prometheus textfile (not in check mode); its path, or None when none was written."""
    if not textfile or module.check_mode:
        return None
    try:
        atomic_write(textfile, prometheus_text(results, overall, time.time()), mode=0o644)
    except OSError as exc:
        module.fail_json(msg='prometheus_textfile %s could not be written: %s' % (textfile, exc.strerror or exc))
    return textfile


def main():
    module = AnsibleModule(
        argument_spec=dict(
            probes=dict(type='list', elements='dict', required=True, options=PROBE_SPEC,
                        required_if=[
                            ('kind', 'http', ['url']),
                            ('kind', 'disk', ['path']),
                            ('kind', 'process', ['process_name', 'pidfile'], True),
                            ('kind', 'systemd', ['unit']),
                            ('kind', 'docker', ['container']),
                            ('kind', 'command', ['argv']),
                        ]),
            fail_on=dict(type='str', default='unhealthy', choices=['unhealthy', 'degraded', 'never']),
            timeout=dict(type='float', default=5),
            prometheus_textfile=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    probes = module.params['probes']
    if module.params['timeout'] <= 0:
        module.fail_json(msg='timeout must be a positive number of seconds (got %s)' % module.params['timeout'])
    check_probe_list(module, probes)
    try:
        thresholds = [resolve_thresholds(probe) for probe in probes]
    except ProbeConfigError as exc:
        module.fail_json(msg=str(exc))

    textfile = module.params['prometheus_textfile']
    if textfile:
        problem = check_writable_dir(os.path.dirname(os.path.abspath(textfile)))
        if problem:
            module.fail_json(msg='prometheus_textfile %s cannot be written: %s' % (textfile, problem))

    started = time.monotonic()
    results = run_probes(probes, thresholds, module.params['timeout'])
    overall = worst([r['status'] for r in results])
    counts = dict((status, sum(1 for r in results if r['status'] == status)) for status in STATUSES)
    executed = [command for r in results for command in r.pop('executed_commands')]
    written = write_textfile(module, textfile, results, overall)
    result = dict(
        changed=False,
        status=overall,
        summary=summarize(overall, counts, results),
        counts=counts,
        probes=results,
        metrics=dict(duration_ms=elapsed_ms(started), probes_total=len(results),
                     probes_healthy=counts['healthy'], probes_degraded=counts['degraded'],
                     probes_unhealthy=counts['unhealthy']),
        executed_commands=executed,
        prometheus_textfile=written,
    )
    fail_on = module.params['fail_on']
    if fail_on != 'never' and STATUSES.index(overall) >= STATUSES.index(fail_on):
        module.fail_json(msg=result['summary'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

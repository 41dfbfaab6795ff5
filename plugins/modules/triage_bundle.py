#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: triage_bundle
short_description: Gather what an emergency triage needs from one host into one redacted tar.zst bundle
version_added: 0.1.0
description:
  - Collects, within one time bound (O(time_bound_s)), the process list, load, memory, disk and inodes, listening
    sockets, PostgreSQL activity, locks, blocking chains and long transactions, Redis C(INFO), container states with
    their last log lines, the last error lines of the configured logs and of journald, the recent maintenance-log
    entries and the maintenance lock.
  - Writes them as one C(triage-<host>-<YYYYmmddTHHMMSSZ>.tar.zst) whose first member is C(manifest.json) (what was
    collected, what was not and why), plus the same manifest beside it.
  - Everything is gathered in memory first, so a full disk does not stop the collection. The bundle goes to O(dest),
    or, when that directory is full or read-only, to the first of O(fallback_dirs) that takes it (a tmpfs such as
    C(/dev/shm) by default); RV(attempts) lists the refusals.
  - A section that cannot be collected (database down, engine unreachable, program missing, time bound reached)
    is listed in RV(not_collected) with the reason; the others go on.
  - Secrets are redacted before anything is stored; the passwords of the run itself and O(secrets), every
    environment value of a container, connection-string passwords, C(key=value) pairs whose key names a password,
    token, secret or key, C(Bearer) headers, SQL C(PASSWORD '...') and well-known token formats.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Collects nothing and writes nothing; returns the directories it would try.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run writes a new bundle named after its time.
options:
  dest:
    description: Directory for the bundle (created with mode 0700 when missing).
    type: path
    default: /var/tmp/engineroom-triage
  fallback_dirs:
    description: Directories tried in order when O(dest) cannot take the bundle (full, read-only).
    type: list
    elements: path
    default: [/dev/shm/engineroom-triage, /tmp/engineroom-triage]
  time_bound_s:
    description: Time for the whole collection; sections not started by then are listed as skipped.
    type: int
    default: 60
  step_timeout_s:
    description: Longest time one program or connection may take.
    type: int
    default: 15
  postgres:
    description: PostgreSQL connection of the activity and locks section; omitted skips the section.
    type: dict
    suboptions:
      login_host:
        description: Host name or address; empty uses the local socket.
        type: str
        default: ''
        aliases: [host]
      login_port:
        description: Port.
        type: int
        default: 5432
        aliases: [port]
      login_user:
        description: Role to connect as (the C(pg_monitor) role sees every session's query).
        type: str
        default: postgres
        aliases: [user]
      login_password:
        description: Password of O(postgres.login_user).
        type: str
        default: ''
        aliases: [password]
      login_db:
        description: Database to connect to.
        type: str
        default: ''
        aliases: [db]
      login_unix_socket:
        description: Directory of the server's unix socket.
        type: str
        default: ''
        aliases: [unix_socket]
      ssl_mode:
        description: libpq C(sslmode).
        type: str
        default: prefer
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      connect_timeout:
        description: Seconds to wait for the connection (capped by what is left of O(time_bound_s)).
        type: int
        default: 10
      login_os_user:
        description: OS user to connect as over the unix socket (peer authentication, e.g. V(postgres) on Debian).
        type: str
        default: ''
      ca_cert:
        description: Certificate authority file for O(postgres.ssl_mode=verify-ca) or V(verify-full).
        type: path
        aliases: [ssl_rootcert]
      ssl_cert:
        description: Client certificate file.
        type: path
      ssl_key:
        description: Private key file of O(postgres.ssl_cert).
        type: path
  long_transaction_s:
    description: Transactions open longer than this are listed as long.
    type: int
    default: 300
  redis:
    description: Redis instances whose C(INFO) is collected.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the instance in the bundle (C(redis/<name>-info.txt)); its position when omitted.
        type: str
      login_host:
        description: Host name or address.
        type: str
        default: 127.0.0.1
      login_port:
        description: Port.
        type: int
        default: 6379
      login_unix_socket:
        description: Unix socket path; wins over O(redis[].login_host).
        type: str
      login_user:
        description: ACL user name (Redis 6 and later).
        type: str
      login_password:
        description: Password (C(AUTH)).
        type: str
  containers:
    description: Collect the containers' states and last log lines from the Docker engine.
    type: bool
    default: true
  docker_host:
    description: The Docker engine's address.
    type: str
    default: unix:///var/run/docker.sock
  container_log_lines:
    description: Last log lines kept per container.
    type: int
    default: 50
  log_paths:
    description: Log files and globs whose last error lines are collected.
    type: list
    elements: str
    default: []
  error_patterns:
    description: Case-insensitive substrings that make a log line an error line.
    type: list
    elements: str
    default: [ERROR, CRITICAL, FATAL, Traceback, panic]
  error_lines:
    description: Last error lines kept per log file, and last journal entries at priority C(err) or worse.
    type: int
    default: 50
  journal:
    description: Collect the last error entries of journald (C(journalctl -p err)).
    type: bool
    default: true
  journal_units:
    description: Restrict the journal entries to these systemd units.
    type: list
    elements: str
    default: []
  maintenance_log:
    description: The maintenance log (C(maintenance.jsonl)) whose last entries are collected.
    type: path
  maintenance_log_lines:
    description: Last maintenance-log entries kept.
    type: int
    default: 50
  lock_file:
    description: The maintenance lock file (M(engineroom.maintenance.maintenance_lock)'s O(engineroom.maintenance.maintenance_lock#module:lock_file)).
    type: path
    default: /var/lib/engineroom/maintenance.json
  secrets:
    description: More strings that must never appear in the bundle.
    type: list
    elements: str
    default: []
'''

EXAMPLES = r'''
- name: Gather a triage bundle
  engineroom.maintenance.triage_bundle:
    postgres: "{{ engineroom_postgres }}"
    redis: [{name: cache, login_port: 6379}]
    log_paths: [/srv/app/logs/*.log]
    journal_units: [app.service]
  register: triage
'''

RETURN = r'''
bundle:
  description: Path of the bundle; null when no directory took it (the module then fails).
  returned: always
  type: str
  sample: /var/tmp/engineroom-triage/triage-db1-20261205T120000Z.tar.zst
manifest:
  description: Path of the manifest written beside the bundle.
  returned: when a bundle was written
  type: str
sections:
  description: Each section with C(name), C(status) (V(ok), V(failed), V(skipped)), C(reason), C(files), C(duration_ms).
  returned: always
  type: list
  elements: dict
not_collected:
  description: The sections that were not collected, with C(section), C(status) and C(reason).
  returned: always
  type: list
  elements: dict
attempts:
  description: Directories that refused the bundle before it was written, with C(directory) and C(error).
  returned: always
  type: list
  elements: dict
fallback_used:
  description: Whether the bundle went to one of O(fallback_dirs).
  returned: always
  type: bool
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
metrics:
  description: C(duration_ms), C(sections_collected), C(sections_not_collected), C(secrets_masked), C(bytes_collected).
  returned: always
  type: dict
executed_commands:
  description: Every program run and every query family sent.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import postgres_argument_spec
from ansible_collections.engineroom.maintenance.plugins.module_utils.triage.run import triage

REDIS_SPEC = dict(name=dict(type='str'), login_host=dict(type='str', default='127.0.0.1'),
                  login_port=dict(type='int', default=6379), login_unix_socket=dict(type='str'),
                  login_user=dict(type='str'), login_password=dict(type='str', no_log=True))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', default='/var/tmp/engineroom-triage'),
            fallback_dirs=dict(type='list', elements='path',
                               default=['/dev/shm/engineroom-triage', '/tmp/engineroom-triage']),
            time_bound_s=dict(type='int', default=60),
            step_timeout_s=dict(type='int', default=15),
            postgres=dict(type='dict', options=postgres_argument_spec()),
            long_transaction_s=dict(type='int', default=300),
            redis=dict(type='list', elements='dict', options=REDIS_SPEC, default=[]),
            containers=dict(type='bool', default=True),
            docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
            container_log_lines=dict(type='int', default=50),
            log_paths=dict(type='list', elements='str', default=[]),
            error_patterns=dict(type='list', elements='str', default=['ERROR', 'CRITICAL', 'FATAL', 'Traceback', 'panic']),
            error_lines=dict(type='int', default=50),
            journal=dict(type='bool', default=True),
            journal_units=dict(type='list', elements='str', default=[]),
            maintenance_log=dict(type='path'),
            maintenance_log_lines=dict(type='int', default=50),
            lock_file=dict(type='path', default='/var/lib/engineroom/maintenance.json'),
            secrets=dict(type='list', elements='str', default=[], no_log=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for name in ('time_bound_s', 'step_timeout_s', 'error_lines', 'container_log_lines', 'maintenance_log_lines'):
        if params[name] < 1:
            module.fail_json(msg='%s must be at least 1, got %d' % (name, params[name]))
    directories = [params['dest']] + params['fallback_dirs']
    if module.check_mode:
        module.exit_json(changed=True, bundle=None, sections=[], not_collected=[], attempts=[], fallback_used=False,
                         summary='triage would collect into the first of %s that takes it' % ', '.join(directories),
                         metrics={}, executed_commands=[])
    result, error = triage(params)
    if error is not None:
        module.fail_json(msg='%s: free space there, or give dest/fallback_dirs on a filesystem with room '
                             '(a tmpfs such as /dev/shm); the collection itself succeeded: %s'
                             % (error, result['summary']), **result)
    if result['fallback_used']:
        module.warn('the triage bundle went to a fallback directory: %s' % '; '.join(
            '%s: %s' % (a['directory'], a['error']) for a in result['attempts']))
    module.exit_json(changed=True, **result)


if __name__ == '__main__':
    main()

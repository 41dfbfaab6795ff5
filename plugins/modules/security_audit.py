#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: security_audit
short_description: Audit an application server's secrets, file modes, Docker exposure and database access
version_added: 0.1.0
description:
  - Runs the security checks of the maintenance calendar and returns one list of RV(findings), each with a
    RV(findings[].code), a RV(findings[].severity), a RV(findings[].path) or RV(findings[].object) and a message
    that says what to do.
  - V(secret_files) - files named like secrets (O(secret_file_patterns), for example C(.env), C(*.pem)) under
    O(app_root) must have mode C(0600) or C(0400); a world-readable one is RV(findings[].code=secret_file_world_readable),
    any other mode RV(findings[].code=secret_file_mode).
  - V(world_writable_dirs) - directories under O(app_root) (the root included) that every user may write to.
  - V(secret_scan) - hard-coded secrets in the other files under O(app_root) - AWS keys, private key headers,
    C(password = "...") style assignments, generic high-entropy quoted tokens, and O(scan_patterns).
    Files larger than O(scan_max_file_bytes) and binary files (a NUL byte in the first 8 KiB) are skipped and counted.
    A secret is never returned; a finding holds the file, the line, the pattern name and a masked RV(findings[].excerpt).
  - V(docker_socket) - O(docker_socket) must not be world-writable and must belong to O(docker_socket_group).
  - V(docker_ports) - running containers must not publish ports on every interface (C(0.0.0.0), C(::)) except
    O(allowed_public_ports); asked through the Docker engine API at O(docker_host).
  - V(superusers) - PostgreSQL superusers not in O(expected_superusers).
  - V(stale_logins) - application users that never logged in or not for O(stale_days) days. PostgreSQL records no
    login time for its roles, so this needs the application's own users table (O(last_login_table) with
    O(last_login_user_column) and O(last_login_column)) or a query (O(last_login_query)).
  - Checks that cannot run are skipped with a note in RV(notes), never silently - no O(app_root) for the file checks,
    no Docker socket or Docker SDK for the Docker checks, no connection option given for the database checks,
    no last-login source for V(stale_logins).
  - With O(fix=true) the safe fixes are applied - C(chmod) of secret files to C(0600) (C(0400) when the owner could
    not write), and removal of the world-write bit of directories under O(app_root). Nothing else is ever changed,
    contents never are, symbolic links are never followed, and files with several hard links are left to the operator.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.postgres
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - All checks run in check mode; with O(fix=true) the fixes are listed with RV(findings[].status=planned) and not applied.
  diff_mode:
    support: full
    details:
      - With O(fix=true) the diff lists the modes before and after, one line per path.
  idempotent:
    support: full
    details:
      - Once fixed, a path no longer yields a finding, so a second run with O(fix=true) returns RV(ignore:changed=false).
options:
  app_root:
    description:
      - The application's directory, for example C(/srv/app). Symbolic links below it are not followed.
      - Empty or unset skips the file checks (V(secret_files), V(world_writable_dirs), V(secret_scan)) with a note.
      - It must be an existing directory other than C(/).
    type: path
  checks:
    description:
      - The checks to run; leave one out to switch it off.
    type: list
    elements: str
    choices: [secret_files, world_writable_dirs, secret_scan, docker_socket, docker_ports, superusers, stale_logins]
    default: [secret_files, world_writable_dirs, secret_scan, docker_socket, docker_ports, superusers, stale_logins]
  fix:
    description:
      - Apply the safe fixes (modes of secret files, world-write bit of directories). V(false) only reports.
    type: bool
    default: false
  secret_file_patterns:
    description:
      - Shell patterns of file names (not paths) that hold secrets and must be C(0600) or C(0400).
      - These files are not content-scanned, since holding secrets is their purpose.
    type: list
    elements: str
    default: ['.env', '.env.*', '*.env', '*.pem', '*.key', id_rsa, id_dsa, id_ecdsa, id_ed25519, '*.p12', '*.pfx',
              .pgpass, .netrc, .htpasswd]
  secret_file_exclude:
    description:
      - Shell patterns of file names that are not secret files even though they match O(secret_file_patterns)
        (templates such as C(.env.example)); they are content-scanned like other files.
    type: list
    elements: str
    default: ['*.example', '*.sample', '*.dist', '*.template']
  builtin_patterns:
    description:
      - Built-in scan patterns to use. V(aws_access_key_id) (C(AKIA)/C(ASIA) key IDs), V(aws_secret_access_key),
        V(private_key) (C(-----BEGIN ... PRIVATE KEY-----)), V(password_assignment) (a quoted literal assigned to
        a name containing password, passwd, pwd or secret; C(${...}), C({{...}}) and C(%(...)) placeholders are not
        secrets), V(high_entropy_token) (a quoted token of 32 or more base64/URL-safe characters mixing letters and
        digits, whose entropy reaches O(entropy_threshold)).
    type: list
    elements: str
    choices: [aws_access_key_id, aws_secret_access_key, private_key, password_assignment, high_entropy_token]
    default: [aws_access_key_id, aws_secret_access_key, private_key, password_assignment, high_entropy_token]
  scan_patterns:
    description:
      - Extra scan patterns. A named group C(secret) marks what the excerpt masks; without one the whole match is masked.
      - When several patterns match one line, one finding names the first (specific built-ins, then these,
        then V(high_entropy_token)), and every match on the line is masked.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the pattern, reported in RV(findings[].pattern); unique, and not a built-in's name.
        type: str
        required: true
      regex:
        description: Python regular expression, applied to the whole text of each file.
        type: str
        required: true
  scan_exclude_dirs:
    description:
      - Names of directories whose files are not content-scanned (their modes are still checked).
    type: list
    elements: str
    default: [.git, .hg, .svn, node_modules, __pycache__, .venv, venv, .tox]
  scan_exclude_files:
    description:
      - Shell patterns of file names that are not content-scanned (lock files and minified assets hold
        random-looking hashes).
    type: list
    elements: str
    default: ['*.lock', package-lock.json, '*.min.js', '*.map', '*.svg']
  scan_max_file_bytes:
    description:
      - Files larger than this are not content-scanned; C(metrics.files_skipped_large) in RV(metrics) counts them.
    type: int
    default: 1048576
  entropy_threshold:
    description:
      - Bits per character from which a V(high_entropy_token) candidate counts. Random base64 scores about 4.5,
        hexadecimal at most 4, words and identifiers less.
    type: float
    default: 4.0
  docker_socket:
    description:
      - Path of the Docker engine's socket for the V(docker_socket) check.
    type: path
    default: /var/run/docker.sock
  docker_socket_group:
    description:
      - Group the Docker socket must belong to.
    type: str
    default: docker
  docker_host:
    description:
      - Docker engine API address for the V(docker_ports) check.
    type: str
    default: unix:///var/run/docker.sock
  allowed_public_ports:
    description:
      - Host ports that containers may publish on every interface (the web gateway's).
    type: list
    elements: int
    default: [80, 443]
  expected_superusers:
    description:
      - PostgreSQL superusers that are expected and yield no finding (they are still listed in RV(access.superusers)).
    type: list
    elements: str
    default: [postgres]
  stale_days:
    description:
      - Days without a login after which an application user is reported by V(stale_logins).
    type: int
    default: 90
  last_login_query:
    description:
      - A read-only query on O(login_db) returning two columns, the login name and its last login time
        (C(timestamp), C(timestamptz) or C(date); NULL means never). Run as given in a read-only session.
      - Mutually exclusive with O(last_login_table).
    type: str
  last_login_table:
    description:
      - The application's users table, C(table) or C(schema.table), read with O(last_login_user_column) and
        O(last_login_column) (quoted as identifiers, never pasted into SQL).
    type: str
  last_login_user_column:
    description: Column of O(last_login_table) holding the login name.
    type: str
  last_login_column:
    description: Column of O(last_login_table) holding the last login time (NULL means never).
    type: str
notes:
  - The database checks run when at least one connection option differs from its default
    (O(login_host), O(login_port), O(login_user), O(login_password), O(login_db), O(login_unix_socket));
    a configured database that cannot be reached fails the task before anything is fixed.
  - Docker checks need the Docker SDK for Python only for V(docker_ports).
requirements:
  - the docker Python SDK on the managed host for the V(docker_ports) check
seealso:
  - name: Security audit
    description: What each finding means and how to act on it (docs/security-audit.md in the collection).
    link: https://github.com/engineroom/maintenance/blob/main/docs/security-audit.md
'''

EXAMPLES = r'''
- name: Audit the application and report
  engineroom.maintenance.security_audit:
    app_root: /srv/app
  register: audit

- name: Fix the modes of secret files and world-writable directories
  engineroom.maintenance.security_audit:
    app_root: /srv/app
    fix: true
    checks: [secret_files, world_writable_dirs]

- name: Access review against the application's users table
  engineroom.maintenance.security_audit:
    checks: [superusers, stale_logins]
    login_host: 127.0.0.1
    login_user: auditor
    login_password: "{{ vault_auditor_password }}"
    login_db: app
    last_login_table: public.users
    last_login_user_column: email
    last_login_column: last_login_at
    stale_days: 90

- name: Extra scan pattern with its secret masked
  engineroom.maintenance.security_audit:
    app_root: /srv/app
    checks: [secret_scan]
    scan_patterns:
      - name: stripe_key
        regex: 'sk_live_(?P<secret>[0-9a-zA-Z]{24,})'
'''

RETURN = r'''
findings:
  description: Everything found, in check order (files, docker, database).
  returned: always
  type: list
  elements: dict
  contains:
    code:
      description:
        - V(secret_file_world_readable), V(secret_file_mode), V(world_writable_dir), V(hardcoded_secret),
          V(docker_socket_world_writable), V(docker_socket_group), V(container_port_public), V(pg_superuser),
          V(stale_login).
      type: str
    severity:
      description: V(critical), V(high), V(medium), V(low) or V(info).
      type: str
    path:
      description: The file, directory or socket, for filesystem findings.
      type: str
    object:
      description: What else the finding is about, such as C(container:web), C(role:admin), C(user:alice@example.com).
      type: str
    message:
      description: What was found and what to do.
      type: str
    status:
      description: V(open), or for fixable findings with O(fix=true) V(fixed), V(planned) (check mode) or V(failed).
      type: str
    fix:
      description: The safe fix for this finding (for example C(chmod 0600)), or V(null) when there is none.
      type: str
    mode:
      description: Octal mode found, for mode findings.
      type: str
    line:
      description: Line number, for V(hardcoded_secret).
      type: int
    pattern:
      description: Name of the scan pattern, for V(hardcoded_secret).
      type: str
    excerpt:
      description: The line with every secret replaced by C(********), cut to 120 characters, for V(hardcoded_secret).
      type: str
    error:
      description: Why a fix failed (status V(failed)).
      type: str
  sample:
    - {code: secret_file_world_readable, severity: high, path: /srv/app/.env, mode: '0644', status: fixed, fix: chmod 0600,
       message: "secret file /srv/app/.env has mode 0644 and is readable by every user: it must be 0600 or 0400 (fix: chmod 0600)"}
    - {code: hardcoded_secret, severity: high, path: /srv/app/config/settings.py, line: 12, pattern: aws_access_key_id,
       excerpt: "AWS_KEY = 'AKIA********'", status: open, fix: null,
       message: "/srv/app/config/settings.py:12: aws_access_key_id found in the file, which every user can read: ..."}
counts:
  description: Number of findings per severity.
  returned: always
  type: dict
  sample: {critical: 0, high: 3, medium: 1, low: 2, info: 0}
checks:
  description: Each check asked for, with V(ran) or V(skipped).
  returned: always
  type: dict
  sample: {secret_files: ran, world_writable_dirs: ran, secret_scan: ran, docker_socket: ran, docker_ports: skipped,
           superusers: ran, stale_logins: skipped}
notes:
  description: Why checks were skipped, and paths that could not be read.
  returned: always
  type: list
  elements: str
  sample: ["docker socket /var/run/docker.sock absent: container checks skipped"]
access:
  description: The access review.
  returned: always
  type: dict
  contains:
    superusers:
      description: Every superuser role with C(name), C(can_login) and C(expected).
      type: list
      elements: dict
    logins:
      description: Every row of the last-login source with C(name), C(last_login) (UTC, ISO 8601), C(days_since), C(stale).
      type: list
      elements: dict
  sample:
    superusers: [{name: postgres, can_login: true, expected: true}]
    logins: [{name: bob, last_login: '2026-01-02T10:00:00Z', days_since: 325, stale: true}]
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "security audit: 4 findings (3 high, 1 low), 2 fixed; 57 files scanned (1.2 MB) under /srv/app; skipped: docker_ports"
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 41.3, findings_total: 4, findings_critical: 0, findings_high: 3, findings_medium: 0,
           findings_low: 1, findings_info: 0, fixes_applied_count: 2, dirs_checked: 12, files_checked: 60,
           files_scanned: 57, bytes_scanned: 1210000, files_skipped_binary: 2, files_skipped_large: 1}
executed_commands:
  description: SQL statements and Docker engine calls run, and the chmods applied.
  returned: always
  type: list
  elements: str
  sample: ["SELECT rolname, rolcanlogin FROM pg_catalog.pg_roles WHERE rolsuper ORDER BY rolname", "docker ps",
           "chmod 0600 /srv/app/.env"]
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    connect_or_fail,
    postgres_argument_spec,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.access import access_review
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.audit import (
    DEFAULT_SCAN_EXCLUDE_DIRS,
    DEFAULT_SCAN_EXCLUDE_FILES,
    DEFAULT_SECRET_FILE_EXCLUDE,
    DEFAULT_SECRET_FILE_PATTERNS,
    apply_fixes,
    check_options,
    file_checks,
    metrics_of,
    summarize,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.content import BUILTIN_PATTERNS
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.exposure import (
    docker_port_findings,
    docker_socket_findings,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import (
    CHECKS,
    SEVERITIES,
    AuditConfigError,
    AuditFailure,
)


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        app_root=dict(type='path'),
        checks=dict(type='list', elements='str', choices=list(CHECKS), default=list(CHECKS)),
        fix=dict(type='bool', default=False),
        secret_file_patterns=dict(type='list', elements='str', default=list(DEFAULT_SECRET_FILE_PATTERNS), no_log=False),
        secret_file_exclude=dict(type='list', elements='str', default=list(DEFAULT_SECRET_FILE_EXCLUDE), no_log=False),
        builtin_patterns=dict(type='list', elements='str', choices=list(BUILTIN_PATTERNS), default=list(BUILTIN_PATTERNS)),
        scan_patterns=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            regex=dict(type='str', required=True),
        )),
        scan_exclude_dirs=dict(type='list', elements='str', default=list(DEFAULT_SCAN_EXCLUDE_DIRS)),
        scan_exclude_files=dict(type='list', elements='str', default=list(DEFAULT_SCAN_EXCLUDE_FILES)),
        scan_max_file_bytes=dict(type='int', default=1048576),
        entropy_threshold=dict(type='float', default=4.0),
        docker_socket=dict(type='path', default='/var/run/docker.sock'),
        docker_socket_group=dict(type='str', default='docker'),
        docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
        allowed_public_ports=dict(type='list', elements='int', default=[80, 443]),
        expected_superusers=dict(type='list', elements='str', default=['postgres']),
        stale_days=dict(type='int', default=90),
        last_login_query=dict(type='str'),
        last_login_table=dict(type='str'),
        last_login_user_column=dict(type='str'),
        last_login_column=dict(type='str'),
    )
    return spec


def docker_checks(params, checks, status, notes, executed):
    """Findings of the Docker checks asked for; a check that cannot run is skipped with a note."""
    found = []
    if 'docker_socket' in checks:
        more, note = docker_socket_findings(params['docker_socket'], params['docker_socket_group'])
        found.extend(more)
        if note:
            status['docker_socket'] = 'skipped'
            notes.append(note)
    if 'docker_ports' in checks:
        more, note = docker_port_findings(params['docker_host'], params['allowed_public_ports'], executed)
        found.extend(more)
        if note:
            status['docker_ports'] = 'skipped'
            notes.append(note)
    return found


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('last_login_query', 'last_login_table')],
        required_together=[('last_login_table', 'last_login_user_column', 'last_login_column')],
        supports_check_mode=True,
    )
    params = module.params
    try:
        patterns = check_options(params)
    except AuditConfigError as exc:
        module.fail_json(msg=str(exc))
    checks = [name for name in CHECKS if name in params['checks']]
    started = time.monotonic()
    status = dict((name, 'ran') for name in checks)
    notes = []
    executed = []
    # The database first: an unreachable configured database fails the task before anything is fixed.
    try:
        access, db_findings = access_review(params, checks, status, notes, executed, lambda: connect_or_fail(module))
    except AuditFailure as exc:
        module.fail_json(msg=str(exc), executed_commands=exc.executed)
    findings, stats = file_checks(params, checks, patterns, status, notes)
    findings.extend(docker_checks(params, checks, status, notes, executed))
    findings.extend(db_findings)

    changed, diff, failures = apply_fixes(findings, params, module.check_mode, executed)
    counts = dict((severity, sum(1 for f in findings if f['severity'] == severity)) for severity in SEVERITIES)
    result = dict(changed=changed, findings=findings, counts=counts, checks=status, notes=notes, access=access,
                  summary=summarize(params, findings, counts, stats, status),
                  metrics=metrics_of(findings, counts, stats, elapsed_ms(started)), executed_commands=executed)
    if module._diff and params['fix']:
        result['diff'] = diff
    if failures:
        module.fail_json(msg='%d fix%s failed: %s' % (failures, '' if failures == 1 else 'es', '; '.join(
            f['error'] for f in findings if f['status'] == 'failed')), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

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
    O(app_root) must give no access to their group or others, judged by the bits (C(0600), C(0400), C(0700) and
    C(0000) are fine); a world-readable one is RV(findings[].code=secret_file_world_readable), any other group or other
    bit RV(findings[].code=secret_file_mode).
  - V(world_writable_dirs) - directories under O(app_root) (the root included) that every user may write to (the sticky
    bit noted).
  - V(file_permissions) - world-writable files, setuid and setgid files, files and directories owned by a user not in
    O(expected_owners), symbolic links leaving O(app_root) (reported, never followed), FIFOs and device files.
  - V(secret_scan) - hard-coded secrets in the other files under O(app_root), found by detect-secrets' plugins and
    filters plus the collection's rules for database URLs with a password, C(.pgpass) lines and PEM private keys
    written inline with escaped C(\n), and O(scan_patterns); documentation example keys, placeholders, password
    hashes, integrity digests, inline images and CSRF tokens are not reported. Without detect-secrets on the host a
    RV(findings[].code=secret_scanner_unavailable) finding says so.
  - Text or binary is decided from the first 8 KiB; files above O(scan_max_file_bytes) are not read; the run stops
    scanning at O(scan_max_total_bytes) or O(scan_max_seconds), a file at O(scan_max_file_seconds); all are counted
    in RV(metrics) and named in RV(notes).
  - A secret value is never returned, not even in part; a finding holds the file, the line, the kind and a
    RV(findings[].fingerprint). O(baseline) accepts known findings by fingerprint.
  - V(docker_socket) - O(docker_socket) must not be world-writable and must belong to O(docker_socket_group).
  - V(docker_ports) - running containers must not publish ports on every interface (C(0.0.0.0), C(::)) except
    O(allowed_public_ports); asked through the Docker engine API at O(docker_host).
  - V(superusers) - PostgreSQL superusers not in O(expected_superusers).
  - V(stale_logins) - application users that never logged in or not for O(stale_days) days. PostgreSQL records no
    login time for its roles, so this needs the application's own users table (O(last_login_table) with
    O(last_login_user_column) and O(last_login_column)) or a query (O(last_login_query)).
  - O(app_root) given as a symbolic link is resolved once and the resolved directory audited, with a note.
  - Checks that cannot run are skipped with a note in RV(notes), never silently - no O(app_root) for the file checks,
    no Docker socket or Docker SDK for the Docker checks, no connection option given for the database checks,
    no last-login source for V(stale_logins).
  - With O(fix=true) the safe fixes are applied - removal of the group and other bits of secret files, and of the
    world-write bit of files and directories under O(app_root). A fix only ever removes access. Nothing else is ever
    changed, contents never are, symbolic links are never followed, and files with several hard links (or, for a
    non-root user, of another owner) are reported with RV(findings[].status=skipped), never failed.
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
    choices: [secret_files, world_writable_dirs, file_permissions, secret_scan, docker_socket, docker_ports, superusers,
              stale_logins]
    default: [secret_files, world_writable_dirs, file_permissions, secret_scan, docker_socket, docker_ports, superusers,
              stale_logins]
  fix:
    description:
      - Apply the safe fixes (group and other bits of secret files, world-write bit of files and directories).
        V(false) only reports.
    type: bool
    default: false
  secret_file_patterns:
    description:
      - Shell patterns of file names (not paths) that hold secrets and must give no access to group or others.
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
  scan_patterns:
    description:
      - Extra scan patterns, run besides detect-secrets and the collection's rules. A named group C(secret) marks
        what the fingerprint is taken of; without one the whole match.
      - When several rules find the same value on a line, one finding names the most specific.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the pattern, reported in RV(findings[].kind); unique, and not a built-in kind.
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
  scan_max_total_bytes:
    description:
      - Bytes the whole run reads for the secret scan; files beyond are counted in C(metrics.files_skipped_budget).
    type: int
    default: 268435456
  scan_max_file_seconds:
    description:
      - Seconds one file may be scanned; a file cut short is counted in C(metrics.files_cut_short) and named in RV(notes).
    type: float
    default: 10.0
  scan_max_seconds:
    description:
      - Seconds the whole secret scan may take; files beyond are counted in C(metrics.files_skipped_budget).
    type: float
    default: 300.0
  baseline:
    description:
      - 'A JSON file of accepted findings - a list of RV(findings[].fingerprint) values, an object with a C(fingerprints)
        list whose items are fingerprints or objects with a C(fingerprint) (and a C(reason)), or a detect-secrets
        C(.secrets.baseline) (matched by its C(hashed_secret)). Accepted findings are counted in
        C(metrics.findings_accepted), not listed.'
      - A baseline that cannot be read or parsed fails the task before anything is changed.
    type: path
  expected_owners:
    description:
      - Users (names or uids) that may own files under O(app_root) for V(file_permissions); empty means C(root) and
        the owner of O(app_root).
    type: list
    elements: str
    default: []
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
  - detect-secrets (1.5) on the managed host for the V(secret_scan) check (without it only the collection's own rules run,
    and a finding says so)
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

- name: Secret scan, accepting two known test fixtures by fingerprint
  engineroom.maintenance.security_audit:
    app_root: /srv/app
    checks: [secret_scan]
    baseline: /etc/engineroom/secrets-baseline.json

- name: Extra scan pattern
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
        - V(secret_file_world_readable), V(secret_file_mode), V(world_writable_dir), V(world_writable_file),
          V(setuid_file), V(setgid_file), V(unexpected_owner), V(symlink_outside_root), V(special_file),
          V(hardcoded_secret), V(secret_scanner_unavailable), V(docker_socket_world_writable), V(docker_socket_group),
          V(container_port_public), V(pg_superuser), V(stale_login).
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
      description:
        - V(open), or for fixable findings with O(fix=true) V(fixed), V(planned) (check mode), V(skipped) (left to the
          operator, RV(findings[].reason) says why) or V(failed).
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
    kind:
      description: What kind of secret, for V(hardcoded_secret) - a detect-secrets plugin (V(github_token), V(keyword),
        V(high_entropy_base64), ...), a collection rule (V(database_url), V(pgpass_line), V(private_key_inline),
        V(private_key)) or the name of one of O(scan_patterns).
      type: str
    fingerprint:
      description: First 16 hex digits of the SHA-256 of the secret, for V(hardcoded_secret) - to recognise it and accept
        it in O(baseline); the value itself is never returned.
      type: str
    reason:
      description: Why a fix was left to the operator (status V(skipped)).
      type: str
    error:
      description: Why a fix failed (status V(failed)).
      type: str
  sample:
    - {code: secret_file_world_readable, severity: high, path: /srv/app/.env, mode: '0644', status: fixed, fix: chmod 0600,
       message: "secret file /srv/app/.env has mode 0644 (group read, other read): only its owner may have access (fix: chmod 0600)"}
    - {code: hardcoded_secret, severity: high, path: /srv/app/config/settings.py, line: 12, kind: database_url,
       fingerprint: 9f2c41d07be3a815, status: open, fix: null,
       message: "/srv/app/config/settings.py:12: database_url found in the file, which every user can read (fingerprint ..."}
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
  sample: "security audit: 4 findings (3 high, 1 low), 2 fixed; 57 files scanned (1.2 MiB) under /srv/app; skipped: docker_ports"
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 41.3, findings_total: 4, findings_critical: 0, findings_high: 3, findings_medium: 0,
           findings_low: 1, findings_info: 0, fixes_applied_count: 2, dirs_checked: 12, files_checked: 60,
           files_scanned: 57, bytes_scanned: 1210000, files_skipped_binary: 2, files_skipped_large: 1,
           files_skipped_budget: 0, files_cut_short: 0, special_files: 0, links_checked: 3, findings_accepted: 1,
           scan_seconds: 0.41, slowest_file_ms: 35.2}
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
        scan_patterns=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            regex=dict(type='str', required=True),
        )),
        scan_exclude_dirs=dict(type='list', elements='str', default=list(DEFAULT_SCAN_EXCLUDE_DIRS)),
        scan_exclude_files=dict(type='list', elements='str', default=list(DEFAULT_SCAN_EXCLUDE_FILES)),
        scan_max_file_bytes=dict(type='int', default=1048576),
        scan_max_total_bytes=dict(type='int', default=268435456),
        scan_max_file_seconds=dict(type='float', default=10.0),
        scan_max_seconds=dict(type='float', default=300.0),
        baseline=dict(type='path'),
        expected_owners=dict(type='list', elements='str', default=[]),
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
        root, notes = check_options(params)
    except AuditConfigError as exc:
        module.fail_json(msg=str(exc))
    checks = [name for name in CHECKS if name in params['checks']]
    started = time.monotonic()
    status = dict((name, 'ran') for name in checks)
    executed = []
    # The database first: an unreachable configured database fails the task before anything is fixed.
    try:
        access, db_findings = access_review(params, checks, status, notes, executed, lambda: connect_or_fail(module))
    except AuditFailure as exc:
        module.fail_json(msg=str(exc), executed_commands=exc.executed)
    try:
        findings, stats = file_checks(params, root, checks, status, notes)
    except AuditConfigError as exc:  # a baseline or owner option that turns out bad
        module.fail_json(msg=str(exc), executed_commands=executed)
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

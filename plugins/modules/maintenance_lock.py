#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: maintenance_lock
short_description: Enter and leave maintenance mode with a host-wide master lock
version_added: 0.1.0
description:
  - Maintenance mode is a lock file on the host (O(lock_file)); while it exists, maintenance is on. It holds a JSON
    record saying why (O(reason)), by whom (O(owner), O(run_id), O(controller)), since when and until when
    (C(started_at), C(expires_at) after O(ttl_s)), and which PostgreSQL roles were made read-only with their
    previous settings.
  - The lock is exclusive, so two maintenance runs never overlap on one host. Acquiring a lock held by another
    owner fails with the holder's record, unless O(wait_s) is given (poll until it is free) or the lock has
    expired and O(steal_expired=true).
  - A run that crashes while holding the lock leaves it behind with its expiry, visible to
    M(engineroom.maintenance.health_probe) (kind V(maintenance)) and recoverable with O(steal_expired) or
    O(force).
  - The record appears atomically (a complete, fsynced temporary file hard-linked to O(lock_file), which fails
    when a lock exists, like C(O_CREAT|O_EXCL)), and every read-decide-write step runs under an exclusive
    C(flock) of the lock file's directory, so concurrent runs never see an empty or half-written record.
  - With O(readonly_roles), the PostgreSQL roles the application logs in as become read-only by default
    (C(default_transaction_read_only = on), role-wide and in every database where the role has its own value);
    releasing the lock restores each previous setting exactly (C(RESET) where there was none).
  - O(flag_file) is a plain file for the web gateway (nginx C(if (-f ...))); see the C(maintenance_window) role's
    nginx snippet, which answers writes with 503 while it exists.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.postgres
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would happen (lock taken, roles changed, sessions that would be terminated) and changes nothing.
        O(wait_s) still waits, since waiting only reads.
  diff_mode:
    support: full
    details:
      - Shows the lock record before and after.
  idempotent:
    support: full
    details:
      - Acquiring a lock the same O(owner) already holds, or releasing a lock that is not there, changes nothing.
options:
  state:
    description:
      - V(present) enters maintenance (acquires the lock), V(absent) leaves it (releases the lock),
        V(query) only reports and never changes anything.
    type: str
    choices: [present, absent, query]
    default: present
  lock_file:
    description:
      - Path of the lock record. Its existence means maintenance is on. Written with mode C(0644).
      - Its directory must exist and be writable (root-owned, C(0755)) unless O(create_dirs=true).
    type: path
    default: /var/lib/engineroom/maintenance.json
  create_dirs:
    description: Create the directory of O(lock_file) (mode C(0755)) when it does not exist.
    type: bool
    default: false
  flag_file:
    description:
      - A plain file written while maintenance is on and removed when it ends, for a web server to test
        (nginx C(if (-f ...))). Its path is kept in the record, so the release removes it even when not given again.
      - A file at that path that this module did not write is never removed (a warning says so).
    type: path
  owner:
    description:
      - Who holds the lock (a person or a pipeline). Required for V(present) and V(absent).
      - The same owner acquiring again changes nothing; another owner is refused while the lock is held.
    type: str
  reason:
    description: Why maintenance is on; kept in the record and the flag file.
    type: str
    default: maintenance
  run_id:
    description:
      - Identifier of the run holding the lock, for the record. Defaults to a random UUID.
      - When given, the lock belongs to this run, not only to O(owner), for a playbook that enters and leaves
        in one run. V(present) then refuses a lock that another run of the same owner holds, like one of another
        owner (or takes it over when it expired and O(steal_expired=true)), and V(absent) releases only the lock
        this run holds (unless O(force=true)). Without it, every run of an owner shares the lock, as a manual
        window left in a later run needs.
    type: str
  controller:
    description:
      - Name of the Ansible controller, for the record. Defaults to the SSH client address when the module runs
        over SSH, else this host's name.
    type: str
  ttl_s:
    description:
      - Seconds after which the lock counts as expired (a run that crashed or forgot to release). An expired lock
        stays in force until released or taken with O(steal_expired).
    type: int
    default: 14400
  extend:
    description: When the same O(owner) already holds the lock, move C(expires_at) to now + O(ttl_s).
    type: bool
    default: false
  wait_s:
    description: Seconds to wait for a lock held by another owner to be released, polling, before failing.
    type: int
    default: 0
  steal_expired:
    description:
      - Take over a lock of another owner that has expired. The previous holder's record is reported, and its
        recorded role settings are kept so the release still restores the original values.
    type: bool
    default: false
  force:
    description:
      - With V(absent), release a lock held by another owner (reported as forced). The release is the owner's
        release otherwise. The recorded role settings are restored first, and when they cannot be (PostgreSQL
        unreachable, an ALTER ROLE refused) the task fails and the lock file is kept, so O(force) never leaves roles
        read-only without a lock record.
      - With V(present) or V(absent), replace or remove a lock file that is corrupt (not a lock record). Role
        settings recorded in a corrupt file cannot be restored; check O(readonly_roles) by hand afterwards.
      - Never takes a valid lock of another owner with V(present); use O(steal_expired) for expired ones.
    type: bool
    default: false
  readonly_roles:
    description:
      - PostgreSQL roles (the ones the application logs in as) made read-only by default while maintenance is on.
      - Each role's C(default_transaction_read_only) (role-wide and per database) is recorded, then set to C(on);
        the release restores the recorded values, whatever this option says at release time.
      - The release restores in one read-write transaction (even if the login role's own default became
        read-only). A per-database entry whose database was dropped during maintenance is skipped with a warning
        (dropping the database removed that setting); everything else is restored.
      - Superusers, roles in O(admin_roles) and the role the module logs in as (O(login_user)) are refused, since
        a read-only login role could not run the release's C(ALTER ROLE). A role that cannot log in gets a warning,
        since its settings do not reach the roles that log in as its members.
      - This is a session default, which any client can undo with C(SET default_transaction_read_only = off).
        It stops the application's writes, not a deliberate user.
    type: list
    elements: str
    default: []
  admin_roles:
    description: PostgreSQL roles that keep full access; they must exist and may not appear in O(readonly_roles).
    type: list
    elements: str
    default: []
  terminate_sessions:
    description:
      - After making roles read-only, terminate their open sessions so that new sessions pick the setting up
        (open sessions keep the value they started with). Waits up to O(grace_s) for them to end by themselves.
    type: bool
    default: false
  grace_s:
    description: Seconds to let sessions end by themselves before O(terminate_sessions) terminates them.
    type: int
    default: 10
notes:
  - The PostgreSQL connection is only opened when O(readonly_roles) or O(admin_roles) are given, or when releasing
    a lock whose record lists roles.
  - When PostgreSQL cannot be reached during a release, the lock file is kept (and the flag file too), so the
    release can simply be retried.
seealso:
  - module: engineroom.maintenance.health_probe
    description: The V(maintenance) probe reports degraded while maintenance is on and unhealthy once the lock expired.
'''

EXAMPLES = r'''
- name: Enter maintenance, application read-only
  engineroom.maintenance.maintenance_lock:
    owner: "{{ lookup('env', 'USER') }}"
    reason: PostgreSQL minor upgrade
    ttl_s: 7200
    flag_file: /var/lib/engineroom/maintenance.flag
    readonly_roles: [app]
    admin_roles: [app_admin]
    terminate_sessions: true
    grace_s: 15
    login_user: postgres
    login_db: app
  register: maintenance

- name: Wait up to 10 minutes for another run to finish, then take the lock
  engineroom.maintenance.maintenance_lock:
    owner: nightly-backup
    wait_s: 600

- name: Leave maintenance (restores the roles' previous settings)
  engineroom.maintenance.maintenance_lock:
    state: absent
    owner: "{{ lookup('env', 'USER') }}"
    login_user: postgres
    login_db: app

- name: Who holds the lock?
  engineroom.maintenance.maintenance_lock:
    state: query
  register: lock

- name: Take over a lock whose run crashed hours ago
  engineroom.maintenance.maintenance_lock:
    owner: ops-oncall
    steal_expired: true
'''

RETURN = r'''
locked:
  description: Whether maintenance is on (the lock file exists) after the task.
  returned: always
  type: bool
  sample: true
holder:
  description:
    - The lock record in force after the task, or V(null) when there is none.
    - When an acquisition fails because another owner holds the lock, that owner's record.
  returned: always
  type: dict
  sample:
    schema_version: 1
    reason: PostgreSQL minor upgrade
    owner: alice
    run_id: 2f9c0c6e4b7a4f0e9d7e0a51c3d1b0aa
    controller: ops-laptop
    host: app1
    started_at: "2026-11-23T20:00:00Z"
    expires_at: "2026-11-23T22:00:00Z"
    ttl_s: 7200
    readonly_roles: [{role: app, settings: [{database: null, value: null}, {database: app, value: "off"}]}]
    flag_file: /var/lib/engineroom/maintenance.flag
    database: postgres@local socket:5432/app
previous_holder:
  description: The record that was released, replaced (stolen, extended, corrupt-overwritten) or found, else V(null).
  returned: always
  type: dict
acquired:
  description: Whether this task took the lock (V(false) when the same owner already held it).
  returned: always
  type: bool
released:
  description: Whether this task removed the lock.
  returned: always
  type: bool
forced:
  description: Whether O(force) was needed (another owner's lock released, or a corrupt file replaced or removed).
  returned: always
  type: bool
stolen:
  description: Whether an expired lock of another owner was taken over.
  returned: always
  type: bool
expired:
  description: Whether the lock found (before the task) had expired.
  returned: always
  type: bool
roles_changed:
  description: Roles whose settings were made read-only or restored (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [app]
sessions_terminated:
  description: Sessions of O(readonly_roles) terminated (in check mode, the number that would be).
  returned: always
  type: int
  sample: 3
lock_file:
  description: Path of the lock file.
  returned: always
  type: str
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "maintenance on: lock taken by alice (PostgreSQL minor upgrade) until 2026-11-23T22:00:00Z; 1 role(s) read-only"
metrics:
  description: Flat numbers; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 12.5, wait_ms: 0, roles_changed: 1, sessions_terminated: 0, lock_expires_in_s: 7200}
executed_commands:
  description: SQL statements run (role settings, sessions).
  returned: always
  type: list
  elements: str
  sample: ["ALTER ROLE \"app\" SET \"default_transaction_read_only\" = 'on'"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.lock.record import DEFAULT_LOCK_FILE
from ansible_collections.engineroom.maintenance.plugins.module_utils.lock.task import LockTask, LockTaskError
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import postgres_argument_spec


def main():
    argument_spec = dict(
        state=dict(type='str', default='present', choices=['present', 'absent', 'query']),
        lock_file=dict(type='path', default=DEFAULT_LOCK_FILE),
        create_dirs=dict(type='bool', default=False),
        flag_file=dict(type='path'),
        owner=dict(type='str'),
        reason=dict(type='str', default='maintenance'),
        run_id=dict(type='str'),
        controller=dict(type='str'),
        ttl_s=dict(type='int', default=14400),
        extend=dict(type='bool', default=False),
        wait_s=dict(type='int', default=0),
        steal_expired=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
        readonly_roles=dict(type='list', elements='str', default=[]),
        admin_roles=dict(type='list', elements='str', default=[]),
        terminate_sessions=dict(type='bool', default=False),
        grace_s=dict(type='int', default=10),
    )
    argument_spec.update(postgres_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    task = LockTask(module.params, check_mode=module.check_mode, diff=module._diff, warn=module.warn)
    try:
        result = task.run()
    except LockTaskError as exc:
        extra = dict(exception=exc.exception) if exc.exception else {}
        module.fail_json(msg=exc.msg, **dict(exc.result or {}, **extra))
    module.exit_json(**result)


if __name__ == '__main__':
    main()

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

import contextlib
import os
import socket
import time
import uuid

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import check_writable_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.lock.record import (
    DEFAULT_LOCK_FILE,
    LockCorrupt,
    acquire_outcome,
    create_record,
    describe_holder,
    flag_current,
    flag_state,
    guarded,
    is_expired,
    lock_dir_problem,
    lock_dir_warning,
    new_record,
    read_record,
    remove_file,
    replace_record,
    seconds_left,
    write_flag,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    HAS_PSYCOPG2,
    PSYCOPG2_IMPORT_ERROR,
    PostgresError,
    connect,
    describe_target,
    postgres_argument_spec,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.readonly_roles import (
    RoleProblem,
    Runner,
    check_roles,
    count_sessions,
    is_read_only,
    make_read_only,
    merge_snapshot,
    restore,
    snapshot,
    terminate_sessions,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms

WAIT_POLL_S = 0.5
try:
    import psycopg2
    DB_ERRORS = (psycopg2.Error,)
except ImportError:
    DB_ERRORS = ()  # without psycopg2 no statement runs: connect() reports the missing library first


class LockTask:
    """One run of the module: the parameters, the database (when needed) and the result being built."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.path = module.params['lock_file']
        self.started = time.monotonic()
        self.runner = None
        self.result = dict(changed=False, locked=False, holder=None, previous_holder=None, acquired=False,
                           released=False, forced=False, stolen=False, expired=False, roles_changed=[],
                           sessions_terminated=0, lock_file=self.path, executed_commands=[])
        self.wait_ms = 0.0

    # -- helpers --------------------------------------------------------------------------
    def fail(self, msg, **extra):
        self.result.update(extra)
        self.collect_commands()
        self.module.fail_json(msg=msg, **self.result)

    def collect_commands(self):
        if self.runner is not None:
            self.result['executed_commands'] = list(self.runner.executed)

    def database(self, purpose):
        """A statement runner on the configured server, or raise PostgresError (connection message)."""
        if self.runner is None:
            if not HAS_PSYCOPG2:
                self.module.fail_json(msg=missing_required_lib('psycopg2') + ' (needed to %s)' % purpose,
                                      exception=PSYCOPG2_IMPORT_ERROR)
            self.runner = Runner(connect(self.params))
        return self.runner

    def read(self, allow_corrupt):
        """The current record; a corrupt file fails unless ``allow_corrupt`` (then the string ``corrupt``)."""
        try:
            return read_record(self.path)
        except LockCorrupt as exc:
            if allow_corrupt:
                self.module.warn('%s; replacing it because force is true' % exc)
                return 'corrupt'
            self.fail('%s: inspect it, then remove it or rerun with force: true to replace it '
                      '(nothing was changed)' % exc)
        except OSError as exc:
            self.fail('cannot read lock file %s: %s' % (self.path, exc.strerror or exc))
        return None  # not reached

    def finish(self, summary):
        self.collect_commands()
        holder = self.result['holder']
        metrics = dict(duration_ms=elapsed_ms(self.started), wait_ms=round(self.wait_ms, 1),
                       roles_changed=len(self.result['roles_changed']),
                       sessions_terminated=self.result['sessions_terminated'])
        if holder:
            metrics['lock_expires_in_s'] = seconds_left(holder, utc_now())
        if self.module.check_mode and self.result['changed']:
            summary = '(check mode) would: ' + summary
        self.module.exit_json(summary=summary, metrics=metrics, **self.result)

    def other_run(self, record):
        """True when this task names its run (O(run_id)) and ``record`` is another run's lock."""
        return bool(self.params['run_id']) and isinstance(record, dict) and record.get('run_id') != self.params['run_id']

    def lock_dir_exists(self):
        return os.path.isdir(os.path.dirname(os.path.abspath(self.path)))

    def guard(self):
        """The directory flock; nothing to lock when the directory does not exist (check mode, or no lock)."""
        return guarded(self.path) if self.lock_dir_exists() else contextlib.nullcontext()

    def diff(self, before, after):
        if self.module._diff:
            self.result['diff'] = dict(before=before if isinstance(before, dict) else {},
                                       after=after or {}, before_header=self.path, after_header=self.path)

    # -- validation -----------------------------------------------------------------------
    def validate(self):
        params = self.params
        state = params['state']
        if state in ('present', 'absent') and not (params['owner'] or '').strip():
            self.module.fail_json(msg='owner is required with state=%s: name who holds the maintenance lock (a person '
                                      'or a pipeline), e.g. owner: "{{ lookup(\'env\', \'USER\') }}"' % state)
        if params['ttl_s'] <= 0:
            self.module.fail_json(msg='ttl_s must be a positive number of seconds (got %d): it says when a forgotten '
                                      'lock counts as expired' % params['ttl_s'])
        for name in ('wait_s', 'grace_s'):
            if params[name] < 0:
                self.module.fail_json(msg='%s must not be negative (got %d)' % (name, params[name]))
        if state == 'query' or (state == 'absent' and not self.lock_dir_exists()):
            return  # nothing can be locked in a directory that does not exist
        problem = lock_dir_problem(self.path, params['create_dirs'] and state == 'present'
                                   and not self.module.check_mode)
        if problem and not (self.module.check_mode and params['create_dirs'] and not self.lock_dir_exists()):
            self.module.fail_json(msg='lock_file %s cannot be used: %s (nothing was changed)' % (self.path, problem))
        warning = lock_dir_warning(self.path)
        if warning:
            self.module.warn(warning)
        if state == 'present' and params['flag_file']:
            problem = check_writable_dir(os.path.dirname(os.path.abspath(params['flag_file'])))
            if problem:
                self.module.fail_json(msg='flag_file %s cannot be written: %s (nothing was changed)'
                                          % (params['flag_file'], problem))

    def check_roles(self):
        """Validate readonly_roles/admin_roles on the server before anything changes."""
        params = self.params
        if not (params['readonly_roles'] or params['admin_roles']):
            return
        try:
            runner = self.database('check readonly_roles and admin_roles')
            no_login = check_roles(runner, params['readonly_roles'], params['admin_roles'])
        except (PostgresError, RoleProblem) as exc:
            self.fail('%s (nothing was changed)' % exc)
        except DB_ERRORS as exc:
            self.fail('cannot check the roles on %s: %s (nothing was changed)'
                      % (describe_target(params), str(exc).strip()))
        for name in no_login:
            self.module.warn('role %s cannot log in: its default_transaction_read_only does not apply to the roles '
                             'that log in as its members; list the login roles in readonly_roles' % name)

    # -- state=query -----------------------------------------------------------------------
    def query(self):
        if not self.lock_dir_exists():
            self.finish('maintenance off: no lock at %s (its directory does not exist)' % self.path)
        record = self.read(allow_corrupt=False)
        if record is None:
            self.finish('maintenance off: no lock at %s' % self.path)
        now = utc_now()
        self.result.update(locked=True, holder=record, expired=is_expired(record, now))
        state = 'maintenance on (lock EXPIRED, forgotten?)' if self.result['expired'] else 'maintenance on'
        self.finish('%s: held by %s' % (state, describe_holder(record, now)))

    # -- state=present ----------------------------------------------------------------------
    def acquire(self):
        params = self.params
        self.check_roles()
        deadline = time.monotonic() + params['wait_s']
        while True:
            with self.guard():
                now = utc_now()
                current = self.read(allow_corrupt=params['force'])
                outcome = 'overwrite' if current == 'corrupt' else acquire_outcome(
                    current, params['owner'], now, params['steal_expired'])
                if outcome == 'own' and self.other_run(current):
                    outcome = 'steal' if params['steal_expired'] and is_expired(current, now) else 'busy'
                if outcome != 'busy':
                    summary = self.take(outcome, current, now)
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.refuse(current, now)
            pause = min(WAIT_POLL_S, remaining)
            time.sleep(pause)
            self.wait_ms += pause * 1000.0
        summary += self.terminate()
        self.finish(summary)

    def refuse(self, current, now):
        expired = is_expired(current, now)
        if expired:
            hint = 'the lock expired: rerun with steal_expired: true to take it over'
        else:
            hint = 'wait for it to be released (wait_s), or ask its owner'
        if current.get('owner') == self.params['owner'] and self.other_run(current):
            hint = 'another run of %s (run_id %s) is in maintenance, not this one (run_id %s): %s' % (
                current.get('owner'), current.get('run_id'), self.params['run_id'], hint)
        waited = ' after waiting %d s' % self.params['wait_s'] if self.params['wait_s'] else ''
        self.fail('maintenance lock %s is held by %s%s: %s' % (self.path, describe_holder(current, now), waited, hint),
                  locked=True, holder=current, expired=expired)

    def base_record(self, outcome, current, now):
        params = self.params
        if outcome == 'own':
            record = dict(current)
            if params['extend']:
                extended = new_record(params['owner'], record['reason'], record['run_id'], record['controller'],
                                      record['host'], params['ttl_s'], now)
                record.update(expires_at=extended['expires_at'], ttl_s=params['ttl_s'])
            if params['flag_file']:
                record['flag_file'] = params['flag_file']
            return record
        database = describe_target(params) if params['readonly_roles'] else None
        record = new_record(params['owner'], params['reason'], params['run_id'] or uuid.uuid4().hex,
                            params['controller'] or default_controller(), socket.gethostname(), params['ttl_s'], now,
                            flag_file=params['flag_file'], database=database)
        if outcome == 'steal':
            # The crashed run's recorded settings are the true originals: the roles are read-only now.
            record['readonly_roles'] = list(current.get('readonly_roles') or [])
            record['database'] = current.get('database') or database
        return record

    def plan_roles(self, record):
        """Snapshots of listed roles that are not read-only yet; records new roles' previous settings."""
        if not self.params['readonly_roles']:
            return []
        runner = self.database('snapshot readonly_roles')
        recorded = dict((entry['role'], index) for index, entry in enumerate(record['readonly_roles']))
        entries = list(record['readonly_roles'])
        to_change = []
        for role in self.params['readonly_roles']:
            current = snapshot(runner, role)
            if role in recorded:
                entries[recorded[role]] = merge_snapshot(entries[recorded[role]], current)
            else:
                entries.append(current)
            if not is_read_only(current):
                to_change.append(current)
        record['readonly_roles'] = entries
        return to_change

    def take(self, outcome, current, now):
        params = self.params
        record = self.base_record(outcome, current, now)
        try:
            to_change = self.plan_roles(record)
        except (PostgresError,) + DB_ERRORS as exc:
            self.fail('cannot read the settings of readonly_roles on %s: %s (nothing was changed)'
                      % (describe_target(params), str(exc).strip()))
        old_flag = current.get('flag_file') if isinstance(current, dict) else None
        flag = record.get('flag_file')
        needs_flag = bool(flag) and not flag_current(flag, record)
        changed = outcome != 'own' or record != current or bool(to_change) or needs_flag
        self.result.update(changed=changed, locked=True, holder=record, acquired=outcome != 'own',
                           stolen=outcome == 'steal', forced=outcome == 'overwrite',
                           expired=isinstance(current, dict) and is_expired(current, now),
                           previous_holder=current if isinstance(current, dict) and changed else None,
                           roles_changed=[entry['role'] for entry in to_change])
        self.diff(current, record)
        if changed and not self.module.check_mode:
            self.write(outcome, current, record, to_change)
            if flag and needs_flag:
                self.write_flag_file(flag, record)
            if old_flag and old_flag != flag:
                self.remove_flag_file(old_flag)
        return self.describe_take(outcome, current, record, now)

    def write(self, outcome, current, record, to_change):
        """Write the record first (so a crash leaves the previous settings on disk), then change the roles."""
        if outcome == 'create':
            if not create_record(self.path, record):
                self.fail('lock file %s appeared while this run held the directory lock: another program writes it '
                          'without locking; nothing was changed' % self.path)
        else:
            replace_record(self.path, record)
        if not to_change:
            return
        try:
            make_read_only(self.runner, to_change)
        except DB_ERRORS as exc:
            if isinstance(current, dict):
                replace_record(self.path, current)
            else:
                remove_file(self.path)
            self.fail('cannot make %s read-only on %s: %s; the lock was put back as it was and no role changed'
                      % (', '.join(e['role'] for e in to_change), describe_target(self.params), str(exc).strip()),
                      changed=False, acquired=False, locked=isinstance(current, dict),
                      holder=current if isinstance(current, dict) else None, roles_changed=[])

    def describe_take(self, outcome, current, record, now):
        roles = self.result['roles_changed']
        tail = '; %d role(s) made read-only: %s' % (len(roles), ', '.join(roles)) if roles else ''
        until = 'until %s' % record['expires_at']
        if outcome == 'own':
            if not self.result['changed']:
                expired = ' (EXPIRED: extend: true renews it)' if is_expired(record, now) else ''
                return 'maintenance already on for %s %s%s; nothing changed' % (record['owner'], until, expired)
            return 'maintenance on for %s, lock refreshed %s%s' % (record['owner'], until, tail)
        if outcome == 'steal':
            return 'maintenance on: expired lock of %s taken over by %s %s%s' % (
                current.get('owner'), record['owner'], until, tail)
        verb = 'corrupt lock file replaced, lock taken' if outcome == 'overwrite' else 'lock taken'
        return 'maintenance on: %s by %s (%s) %s%s' % (verb, record['owner'], record['reason'], until, tail)

    def terminate(self):
        """Terminate sessions of the roles just made read-only (or count them in check mode)."""
        roles = self.result['roles_changed']
        if not (self.params['terminate_sessions'] and roles):
            return ''
        try:
            if self.module.check_mode:
                count = count_sessions(self.runner, roles)
            else:
                count = terminate_sessions(self.runner, roles, self.params['grace_s'])
        except DB_ERRORS as exc:
            self.module.warn('roles are read-only, but their sessions could not be terminated: %s; open sessions keep '
                             'writing until they reconnect' % str(exc).strip())
            return '; sessions NOT terminated'
        self.result['sessions_terminated'] = count
        return '; %d session(s) terminated' % count

    # -- flag file ----------------------------------------------------------------------------
    def write_flag_file(self, flag, record):
        if flag_state(flag) == 'foreign':
            self.module.warn('flag_file %s exists and was not written by maintenance_lock: it is left as it is'
                             % flag)
            return
        try:
            write_flag(flag, record)
        except OSError as exc:
            self.module.warn('maintenance is on, but flag_file %s could not be written (%s): the gateway does not '
                             'block writes' % (flag, exc.strerror or exc))

    def remove_flag_file(self, flag):
        """Remove a flag this module wrote; True when one was removed."""
        state = flag_state(flag)
        if state == 'foreign':
            self.module.warn('flag_file %s was not written by maintenance_lock: it is left in place' % flag)
            return False
        if state == 'absent' or self.module.check_mode:
            return state == 'ours'
        return remove_file(flag)

    # -- state=absent -------------------------------------------------------------------------
    def release(self):
        params = self.params
        with self.guard():
            now = utc_now()
            current = self.read(allow_corrupt=params['force'])
            if current is None:
                removed = bool(params['flag_file']) and self.remove_flag_file(params['flag_file'])
                self.result['changed'] = removed
                self.finish('maintenance off: no lock at %s%s' % (
                    self.path, '; stale flag file %s removed' % params['flag_file'] if removed else ''))
            if current == 'corrupt':
                return self.release_corrupt()
            self.result.update(previous_holder=current, expired=is_expired(current, now))
            other_run = current.get('owner') == params['owner'] and self.other_run(current)
            if other_run and not params['force']:
                self.fail('maintenance lock %s is held by another run of %s: %s, not by this run (run_id %s): only that '
                          'run releases it; release it without run_id (playbooks/maintenance_off.yml) or with force: '
                          'true once that run is gone (nothing was changed)'
                          % (self.path, params['owner'], describe_holder(current, now), params['run_id']),
                          locked=True, holder=current)
            if current.get('owner') != params['owner']:
                if not params['force']:
                    self.fail('maintenance lock %s is held by %s, not by %s: only its owner releases it; rerun with '
                              'force: true to release it anyway (nothing was changed)'
                              % (self.path, describe_holder(current, now), params['owner']),
                              locked=True, holder=current)
                self.result['forced'] = True
                self.module.warn('releasing the maintenance lock of %s by force (as %s)'
                                 % (current.get('owner'), params['owner']))
            elif other_run:
                self.result['forced'] = True
                self.module.warn('releasing the maintenance lock of another run of %s (run_id %s) by force'
                                 % (current.get('owner'), current.get('run_id')))
            entries = current.get('readonly_roles') or []
            self.result.update(changed=True, released=True, roles_changed=[e['role'] for e in entries])
            self.diff(current, None)
            if not self.module.check_mode:
                self.restore_roles(current, entries)
                for flag in sorted(set(f for f in (current.get('flag_file'), params['flag_file']) if f)):
                    self.remove_flag_file(flag)
                remove_file(self.path)
        forced = ' by force (%s released it)' % params['owner'] if self.result['forced'] else ''
        roles = self.result['roles_changed']
        tail = '; %d role(s) restored: %s' % (len(roles), ', '.join(roles)) if roles else ''
        return self.finish('maintenance off: lock of %s released%s%s' % (current.get('owner'), forced, tail))

    def restore_roles(self, current, entries):
        if not entries:
            return
        recorded_target = current.get('database')
        if recorded_target and recorded_target != describe_target(self.params):
            self.module.warn('the roles were made read-only through %s, this release connects to %s'
                             % (recorded_target, describe_target(self.params)))
        try:
            skipped = restore(self.database('restore the roles\' settings'), entries)
        except (PostgresError,) + DB_ERRORS as exc:
            self.fail('cannot restore the settings of %s: %s; the lock file %s is kept (maintenance stays on) so the '
                      'release can be retried once PostgreSQL answers (state=absent, owner %s: '
                      'playbooks/maintenance_off.yml -e maintenance_owner=%s)'
                      % (', '.join(e['role'] for e in entries), str(exc).strip(), self.path, current.get('owner'),
                         current.get('owner')),
                      changed=False, released=False, locked=True, holder=current, roles_changed=[])
        for role, database in skipped:
            self.module.warn('role %s: its recorded default_transaction_read_only in database %s was not restored '
                             'because that database no longer exists (dropping it removed the setting too); its other '
                             'settings were restored' % (role, database))

    def release_corrupt(self):
        self.result.update(changed=True, released=True, forced=True)
        if not self.module.check_mode:
            if self.params['flag_file']:
                self.remove_flag_file(self.params['flag_file'])
            remove_file(self.path)
        self.module.warn('the corrupt lock file %s was removed by force: role settings it may have recorded were not '
                         'restored; check the roles by hand' % self.path)
        self.finish('maintenance off: corrupt lock file %s removed by force' % self.path)


def default_controller():
    """The SSH client's address when the module runs over SSH, else this host (a local connection)."""
    ssh_client = os.environ.get('SSH_CLIENT', '').split()
    return ssh_client[0] if ssh_client else socket.gethostname()


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
    task = LockTask(module)
    task.validate()
    try:
        if module.params['state'] == 'query':
            task.query()
        elif module.params['state'] == 'present':
            task.acquire()
        else:
            task.release()
    except OSError as exc:
        task.fail('lock file %s: %s (%s)' % (task.path, exc.strerror or exc, getattr(exc, 'filename', '') or ''))
    finally:
        if task.runner is not None:
            task.runner.conn.close()


if __name__ == '__main__':
    main()

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of the maintenance_lock module: enter, leave or query maintenance mode.

The lock record itself (format, atomic create/replace, the directory flock)
lives in :mod:`lock.record`; the PostgreSQL roles made read-only during
maintenance in :mod:`postgres.readonly_roles`. This module decides: which
outcome an acquire or release has, in which order the record, the roles and
the flag file change, and what the operator reads. It knows nothing of
AnsibleModule: it takes the module's parameters, warns through a callback,
returns the result dict and raises :class:`LockTaskError` (carrying the
result so far) for every failure.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import check_writable_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.lock.record import (
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
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    HAS_PSYCOPG2,
    PSYCOPG2_IMPORT_ERROR,
    PostgresError,
    StatementRunner,
    connect,
    describe_target,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.readonly_roles import (
    RoleProblem,
    check_roles,
    count_sessions,
    is_read_only,
    make_read_only,
    merge_snapshot,
    restore,
    snapshot,
    terminate_sessions,
)

WAIT_POLL_S = 0.5
try:
    import psycopg2
    DB_ERRORS = (psycopg2.Error,)
except ImportError:
    DB_ERRORS = ()  # without psycopg2 no statement runs: connect() reports the missing library first


class LockTaskError(Exception):
    """A failure phrased for the operator; ``result`` is the module result so far (None: the message alone)."""

    def __init__(self, msg, result=None, exception=None):
        super().__init__(msg)
        self.msg = msg
        self.result = result
        self.exception = exception


class LockTask:
    """One run of the module: the parameters, the database (when needed) and the result being built."""

    def __init__(self, params, check_mode=False, diff=False, warn=None):
        self.params = params
        self.check_mode = check_mode
        self.diff_wanted = diff
        self.warn = warn or (lambda message: None)
        self.path = params['lock_file']
        self.started = time.monotonic()
        self.runner = None
        self.result = dict(changed=False, locked=False, holder=None, previous_holder=None, acquired=False,
                           released=False, forced=False, stolen=False, expired=False, roles_changed=[],
                           sessions_terminated=0, lock_file=self.path, executed_commands=[])
        self.wait_ms = 0.0

    # -- helpers --------------------------------------------------------------------------
    def run(self):
        """Validate, then do what O(state) asks; the module result, or raise :class:`LockTaskError`."""
        self.validate()
        try:
            state = self.params['state']
            if state == 'query':
                summary = self.query()
            elif state == 'present':
                summary = self.acquire()
            else:
                summary = self.release()
        except OSError as exc:
            self.fail('lock file %s: %s (%s)' % (self.path, exc.strerror or exc, getattr(exc, 'filename', '') or ''))
        finally:
            if self.runner is not None:
                self.runner.conn.close()
        return self.finish(summary)

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.collect_commands()
        raise LockTaskError(msg, result=self.result)

    def collect_commands(self):
        if self.runner is not None:
            self.result['executed_commands'] = list(self.runner.executed)

    def database(self, purpose):
        """A statement runner on the configured server, or raise PostgresError (connection message)."""
        if self.runner is None:
            if not HAS_PSYCOPG2:
                raise LockTaskError(missing_required_lib('psycopg2') + ' (needed to %s)' % purpose,
                                    exception=PSYCOPG2_IMPORT_ERROR)
            self.runner = StatementRunner(connect(self.params))
        return self.runner

    def read(self, allow_corrupt):
        """The current record; a corrupt file fails unless ``allow_corrupt`` (then the string ``corrupt``)."""
        try:
            return read_record(self.path)
        except LockCorrupt as exc:
            if allow_corrupt:
                self.warn('%s; replacing it because force is true' % exc)
                return 'corrupt'
            self.fail('%s: inspect it, then remove it or rerun with force: true to replace it '
                      '(nothing was changed)' % exc)
        except OSError as exc:
            self.fail('cannot read lock file %s: %s' % (self.path, exc.strerror or exc))
        return None  # not reached

    def finish(self, summary):
        """The module result with ``summary`` and the metrics."""
        self.collect_commands()
        holder = self.result['holder']
        metrics = dict(duration_ms=elapsed_ms(self.started), wait_ms=round(self.wait_ms, 1),
                       roles_changed=len(self.result['roles_changed']),
                       sessions_terminated=self.result['sessions_terminated'])
        if holder:
            metrics['lock_expires_in_s'] = seconds_left(holder, utc_now())
        if self.check_mode and self.result['changed']:
            summary = '(check mode) would: ' + summary
        return dict(self.result, summary=summary, metrics=metrics)

    def other_run(self, record):
        """True when this task names its run (O(run_id)) and ``record`` is another run's lock."""
        return bool(self.params['run_id']) and isinstance(record, dict) and record.get('run_id') != self.params['run_id']

    def lock_dir_exists(self):
        return os.path.isdir(os.path.dirname(os.path.abspath(self.path)))

    def guard(self):
        """The directory flock; nothing to lock when the directory does not exist (check mode, or no lock)."""
        return guarded(self.path) if self.lock_dir_exists() else contextlib.nullcontext()

    def diff(self, before, after):
        if self.diff_wanted:
            self.result['diff'] = dict(before=before if isinstance(before, dict) else {},
                                       after=after or {}, before_header=self.path, after_header=self.path)

    # -- validation -----------------------------------------------------------------------
    def validate(self):
        params = self.params
        state = params['state']
        if state in ('present', 'absent') and not (params['owner'] or '').strip():
            raise LockTaskError('owner is required with state=%s: name who holds the maintenance lock (a person '
                                'or a pipeline), e.g. owner: "{{ lookup(\'env\', \'USER\') }}"' % state)
        if params['ttl_s'] <= 0:
            raise LockTaskError('ttl_s must be a positive number of seconds (got %d): it says when a forgotten '
                                'lock counts as expired' % params['ttl_s'])
        for name in ('wait_s', 'grace_s'):
            if params[name] < 0:
                raise LockTaskError('%s must not be negative (got %d)' % (name, params[name]))
        if state == 'query' or (state == 'absent' and not self.lock_dir_exists()):
            return  # nothing can be locked in a directory that does not exist
        problem = lock_dir_problem(self.path, params['create_dirs'] and state == 'present'
                                   and not self.check_mode)
        if problem and not (self.check_mode and params['create_dirs'] and not self.lock_dir_exists()):
            raise LockTaskError('lock_file %s cannot be used: %s (nothing was changed)' % (self.path, problem))
        warning = lock_dir_warning(self.path)
        if warning:
            self.warn(warning)
        if state == 'present' and params['flag_file']:
            problem = check_writable_dir(os.path.dirname(os.path.abspath(params['flag_file'])))
            if problem:
                raise LockTaskError('flag_file %s cannot be written: %s (nothing was changed)'
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
            self.warn('role %s cannot log in: its default_transaction_read_only does not apply to the roles '
                      'that log in as its members; list the login roles in readonly_roles' % name)

    # -- state=query -----------------------------------------------------------------------
    def query(self):
        if not self.lock_dir_exists():
            return 'maintenance off: no lock at %s (its directory does not exist)' % self.path
        record = self.read(allow_corrupt=False)
        if record is None:
            return 'maintenance off: no lock at %s' % self.path
        now = utc_now()
        self.result.update(locked=True, holder=record, expired=is_expired(record, now))
        state = 'maintenance on (lock EXPIRED, forgotten?)' if self.result['expired'] else 'maintenance on'
        return '%s: held by %s' % (state, describe_holder(record, now))

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
        return summary + self.terminate()

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
        if changed and not self.check_mode:
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
            if self.check_mode:
                count = count_sessions(self.runner, roles)
            else:
                count = terminate_sessions(self.runner, roles, self.params['grace_s'])
        except DB_ERRORS as exc:
            self.warn('roles are read-only, but their sessions could not be terminated: %s; open sessions keep '
                      'writing until they reconnect' % str(exc).strip())
            return '; sessions NOT terminated'
        self.result['sessions_terminated'] = count
        return '; %d session(s) terminated' % count

    # -- flag file ----------------------------------------------------------------------------
    def write_flag_file(self, flag, record):
        if flag_state(flag) == 'foreign':
            self.warn('flag_file %s exists and was not written by maintenance_lock: it is left as it is'
                      % flag)
            return
        try:
            write_flag(flag, record)
        except OSError as exc:
            self.warn('maintenance is on, but flag_file %s could not be written (%s): the gateway does not '
                      'block writes' % (flag, exc.strerror or exc))

    def remove_flag_file(self, flag):
        """Remove a flag this module wrote; True when one was removed."""
        state = flag_state(flag)
        if state == 'foreign':
            self.warn('flag_file %s was not written by maintenance_lock: it is left in place' % flag)
            return False
        if state == 'absent' or self.check_mode:
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
                return 'maintenance off: no lock at %s%s' % (
                    self.path, '; stale flag file %s removed' % params['flag_file'] if removed else '')
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
                self.warn('releasing the maintenance lock of %s by force (as %s)'
                          % (current.get('owner'), params['owner']))
            elif other_run:
                self.result['forced'] = True
                self.warn('releasing the maintenance lock of another run of %s (run_id %s) by force'
                          % (current.get('owner'), current.get('run_id')))
            entries = current.get('readonly_roles') or []
            self.result.update(changed=True, released=True, roles_changed=[e['role'] for e in entries])
            self.diff(current, None)
            if not self.check_mode:
                self.restore_roles(current, entries)
                for flag in sorted(set(f for f in (current.get('flag_file'), params['flag_file']) if f)):
                    self.remove_flag_file(flag)
                remove_file(self.path)
        forced = ' by force (%s released it)' % params['owner'] if self.result['forced'] else ''
        roles = self.result['roles_changed']
        tail = '; %d role(s) restored: %s' % (len(roles), ', '.join(roles)) if roles else ''
        return 'maintenance off: lock of %s released%s%s' % (current.get('owner'), forced, tail)

    def restore_roles(self, current, entries):
        if not entries:
            return
        recorded_target = current.get('database')
        if recorded_target and recorded_target != describe_target(self.params):
            self.warn('the roles were made read-only through %s, this release connects to %s'
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
            self.warn('role %s: its recorded default_transaction_read_only in database %s was not restored '
                      'because that database no longer exists (dropping it removed the setting too); its other '
                      'settings were restored' % (role, database))

    def release_corrupt(self):
        self.result.update(changed=True, released=True, forced=True)
        if not self.check_mode:
            if self.params['flag_file']:
                self.remove_flag_file(self.params['flag_file'])
            remove_file(self.path)
        self.warn('the corrupt lock file %s was removed by force: role settings it may have recorded were not '
                  'restored; check the roles by hand' % self.path)
        return 'maintenance off: corrupt lock file %s removed by force' % self.path


def default_controller():
    """The SSH client's address when the module runs over SSH, else this host (a local connection)."""
    ssh_client = os.environ.get('SSH_CLIENT', '').split()
    return ssh_client[0] if ssh_client else socket.gethostname()

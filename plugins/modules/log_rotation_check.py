#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: log_rotation_check
short_description: Audit log files against a rotation policy, find ghost handles, review errors, enforce the policy
version_added: 0.1.0
description:
  - Audits each log named by O(paths) against O(policy) (size, number of rotated versions, compression, age)
    and against the logrotate stanza that covers it in O(logrotate_dir). Read-only; this is the default.
  - Finds ghost handles, log files deleted while a process still holds them open (link count 0 seen through
    C(/proc/PID/fd)), which keep filling the disk until the process restarts; O(ghost_action=truncate) reclaims
    their space without a restart.
  - With O(scan=true), reviews errors like C(grep -i error | sort | uniq -c | sort -rn | head) done right;
    counts per pattern equal C(grep -ci), a Python traceback is one event, messages are normalised before counting,
    and with O(state_file) each run reads only the bytes written since the last one, across rotation and truncation.
  - With O(enforce=true), rotates oversized logs (through logrotate with the stanza covering the log), compresses old
    versions and deletes versions beyond O(policy.keep) or older than O(policy.max_age_days). Only the configured logs
    and files matching their rotated pattern are touched.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - The audit, the ghost handle search and the scan run in check mode; nothing is rotated, compressed, deleted
        or truncated, RV(actions) lists what would be done with RV(actions[].status=planned), and O(state_file) is
        not written.
  diff_mode:
    support: full
    details:
      - Shows each enforced log's rotated versions before and after, and each truncated ghost handle's bytes.
  idempotent:
    support: full
    details:
      - Once the logs are in policy, a second run with O(enforce=true) does nothing and reports RV(ignore:changed=false).
        Advancing the O(state_file) cursors is bookkeeping and does not count as a change.
options:
  paths:
    description:
      - Log files and globs, for example V(/srv/app/data/logs/*.log).
      - A glob that matches nothing is reported in RV(unmatched_paths), not fatal. A literal path that is a directory
        or a symlink loop fails the task before anything is read.
      - Rotated versions matched by a glob (V(app.log.1)) are treated as versions of their log, not as logs.
    type: list
    elements: str
    required: true
  policy:
    description: The rotation policy the logs must follow.
    type: dict
    default: {}
    suboptions:
      max_size:
        description:
          - Largest size an active log may have, in bytes or with a binary unit (V(5M), V(512K), V(1G)).
          - Unset means size is not checked (and not enforced).
        type: str
      keep:
        description: How many rotated versions to keep at most.
        type: int
        default: 10
      compress:
        description: Rotated versions (after the first one when O(policy.delay_compress=true)) must be compressed.
        type: bool
        default: true
      delay_compress:
        description: The newest rotated version may stay uncompressed (logrotate's C(delaycompress)).
        type: bool
        default: false
      max_age_days:
        description: Rotated versions older than this many days (by modification time) are violations and are deleted by O(enforce).
        type: int
      rotated_pattern:
        description:
          - How rotated versions are named, each optionally followed by C(.gz), C(.zst), C(.xz) or C(.bz2).
          - V(numbered) is C(name.N), V(dateext) is C(name-YYYYMMDD) (up to C(YYYYMMDDHHMMSS)), V(auto) accepts both.
          - Enforcement rotates to C(name.1) (shifting the others) unless the pattern is V(dateext) or, with V(auto),
            all existing versions are dated.
        type: str
        choices: [auto, numbered, dateext]
        default: auto
  logrotate_dir:
    description:
      - Directory of logrotate stanzas; each log must be covered by one whose C(size)/C(maxsize), C(rotate),
        C(compress), C(delaycompress) and C(maxage) agree with O(policy) (violations V(no_logrotate_policy),
        V(invalid_logrotate_policy) and V(policy_mismatch)).
      - The configuration is read by the installed logrotate itself (C(logrotate -d) with a private state file), so
        include, global scope, taboo names, size forms and rejected stanzas are exactly as logrotate reads them.
        Where logrotate is not installed, the collection's own parser is used and RV(notes) says V(logrotate_missing).
      - Added to the arguments of logrotate only when O(logrotate_conf) does not include it.
    type: path
    default: /etc/logrotate.d
  logrotate_conf:
    description: The main logrotate configuration, read for its global defaults and stanzas. An empty string reads none.
    type: path
    default: /etc/logrotate.conf
  check_logrotate:
    description: Compare the logs with the logrotate configuration at all.
    type: bool
    default: true
  ghost_scope:
    description:
      - Where to look for ghost handles. V(logs) reports deleted files whose path was in a directory of O(paths),
        V(all) every deleted regular file still held open (including anonymous C(O_TMPFILE) files, marked
        C(anonymous)), V(none) skips the search.
    type: str
    choices: [logs, all, none]
    default: logs
  ghost_action:
    description:
      - V(report) only lists ghost handles. V(truncate) truncates each held file to 0 bytes through
        C(/proc/PID/fd/N), which gives the space back at once; the holder keeps writing to its (now empty) file.
      - Only files whose former path matches O(paths) (or a rotated version of it) are truncated, never an
        anonymous C(O_TMPFILE) file or another deleted file; a file that holds no blocks is left alone, so a second
        run reports no change.
    type: str
    choices: [report, truncate]
    default: report
  scan:
    description: Review the errors in the logs (see O(patterns), O(state_file), O(since)).
    type: bool
    default: false
  format:
    description:
      - How the logs are written. V(text) searches O(patterns) in every line. V(json) (JSON lines), V(syslog)
        (lines with a C(<PRI>) priority), V(postgresql) (PostgreSQL's stderr log) and V(nginx_error) (nginx's
        error log) count the records whose own level is an error (JSON C(level)/C(severity)/C(levelname)/C(lvl),
        pino's 50 and 60; syslog severity 0-3; C(ERROR)/C(FATAL)/C(PANIC); C([error])/C([crit])/C([alert])/C([emerg]))
        in RV(errors.levels), whatever words the messages contain.
      - V(auto) decides per file from its first lines.
    type: str
    choices: [auto, text, json, syslog, postgresql, nginx_error]
    default: auto
  patterns:
    description: Fixed strings (not regular expressions) searched case-insensitively, as C(grep -i -F) does.
    type: list
    elements: str
    default: [ERROR, CRITICAL, FATAL, Traceback]
  top_n:
    description: How many of the most frequent normalised messages to return.
    type: int
    default: 10
  state_file:
    description:
      - File holding the scan cursors (device, inode, offset, fingerprint per log); with it each run reads only new
        bytes, and a line still being written is left for the next run. Its directory is created when missing.
      - A corrupt state file is reported in RV(state) and rebuilt; the logs are then scanned from the start and the
        result says that the counts may repeat earlier ones.
      - Suggested place V(/var/lib/engineroom/log_rotation_check.json).
    type: path
  journal_units:
    description:
      - systemd units whose journal entries join the error review (C(journalctl -o json --after-cursor)), counted
        by their C(PRIORITY) in RV(errors.journal). Needs O(scan).
      - With O(state_file) the journal cursor is kept there beside the file cursors, so each run reads only new
        entries. A cursor of another journal (another machine, a journal deleted since) is not used; the last day is
        read again and the result says so.
    type: list
    elements: str
    default: []
  journal_directory:
    description: A journal directory to read instead of the local journal (C(journalctl --directory)).
    type: path
  journal_max_priority:
    description: Journal entries of this priority or more urgent count as errors (V(3) is C(err), V(4) C(warning)).
    type: int
    choices: [0, 1, 2, 3, 4, 5, 6, 7]
    default: 3
  since:
    description:
      - Only count lines logged at or after this time, an ISO 8601 UTC timestamp (V(2026-11-20T00:00:00Z)) or a
        duration back from now (V(24h), V(7d)).
      - Lines carry their time at their start (V(2026-11-20T10:00:00Z), V(2026-11-20 10:00:00,123)); a line
        without one takes the time of the matching line before it. Logs not modified since then are not read.
    type: str
  enforce:
    description:
      - Bring the logs into policy (rotate, compress, delete versions); see O(method).
      - An oversized log that a logrotate stanza covers is rotated by logrotate itself (C(logrotate -f) with a private
        copy of that stanza and the state file O(logrotate_state)), after checking that logrotate reads the copy as it
        reads the real stanza. The module's own rotation (O(method)) only serves logs that no stanza covers, or hosts
        without logrotate (said in RV(notes)). Deleting and compressing versions beyond the policy without a rotation
        is the module's, since logrotate only does it while rotating.
    type: bool
    default: false
  method:
    description:
      - How an oversized log is rotated. V(copytruncate) copies it to its first version and truncates it in place,
        which never creates a ghost handle (lines written during the final instant of the copy can be lost, as with
        logrotate). V(rename) renames it and creates an empty file with the same mode and owner; use
        O(postrotate_command) to make the program reopen its log.
    type: str
    choices: [copytruncate, rename]
    default: copytruncate
  logrotate_state:
    description:
      - The state file of the module's own C(logrotate -f) runs (O(enforce=true) on an oversized log that a logrotate
        stanza covers), so the host's logrotate state (C(/var/lib/logrotate/status)) is never touched.
    type: path
    default: /var/lib/engineroom/log_rotation_check.logrotate.status
  logrotate_path:
    description:
      - The logrotate program that reads the configuration and rotates. By default C(logrotate) on E(PATH), then
        C(/usr/sbin/logrotate), C(/sbin/logrotate), C(/usr/bin/logrotate).
      - When it is not an executable file (or no logrotate is found), the audit reads the configuration with the
        collection's own parser, enforcement rotates with the module's own code, and RV(notes) says V(logrotate_missing).
    type: path
  postrotate_command:
    description: Program and arguments (no shell) run after a V(rename) rotation, for example V([systemctl, kill, -s, HUP, app.service]).
    type: list
    elements: str
requirements:
  - Linux (C(/proc)) for ghost handles; GNU grep for the fast error scan (a slower built-in scanner is used without it)
seealso:
  - module: community.general.logrotate
  - name: Log oversight
    description: docs/log-oversight.md in the collection.
    link: https://github.com/engineroom/maintenance/blob/main/docs/log-oversight.md
'''

EXAMPLES = r'''
- name: Audit the application logs against 5 MB x 10, compressed, 30 days
  engineroom.maintenance.log_rotation_check:
    paths: [/srv/app/data/logs/*.log]
    policy: {max_size: 5M, keep: 10, compress: true, max_age_days: 30}
  register: logs

- name: Daily error review, reading only what was written since yesterday's run
  engineroom.maintenance.log_rotation_check:
    paths: [/srv/app/data/logs/audit.log, /srv/app/data/logs/system.log]
    scan: true
    top_n: 5
    state_file: /var/lib/engineroom/log_rotation_check.json
    check_logrotate: false

- name: Enforce the policy and reclaim space held by deleted logs
  engineroom.maintenance.log_rotation_check:
    paths: [/srv/app/data/logs/*.log]
    policy: {max_size: 5M, keep: 10, compress: true, max_age_days: 30}
    enforce: true
    ghost_action: truncate
'''

RETURN = r'''
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: >-
    2 logs, 3 violations (oversized 1, too_many_versions 1, uncompressed_version 1); 1 ghost handle holding 10.0 MiB
    (pid 4242 python3 fd 3: /srv/app/data/logs/app.log 10.0 MiB); 412 error events (7 tracebacks) in 52.3 MiB read;
    3 actions done
logs:
  description: One entry per log file, as found at the start of the run.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Path of the log.
      type: str
    size_bytes:
      description: Size of the active log, V(null) when unreadable.
      type: int
    rotated_versions:
      description: Number of rotated versions found.
      type: int
    versions:
      description: The rotated versions, newest first, with C(name), C(size_bytes), C(age_days).
      type: list
      elements: dict
    versions_bytes:
      description: Bytes taken by the rotated versions.
      type: int
    oldest_version_age_days:
      description: Age in days of the oldest version (by modification time), V(null) without versions.
      type: float
    logrotate_config:
      description: The logrotate file whose stanza covers the log, V(null) when none does or the check is off.
      type: str
    logrotate:
      description:
        - What logrotate applies to the log, as it reads its configuration (C(criterion) V(size), V(daily),
          V(weekly), V(monthly), V(yearly) or V(hourly); C(rotate), C(size), C(maxsize), C(minsize), C(olddir),
          C(compress), C(delaycompress), C(maxage)).
      type: dict
      returned: when a stanza logrotate accepts covers the log
    violations:
      description:
        - What is out of policy, each with a C(code) (V(oversized), V(too_many_versions), V(uncompressed_version),
          V(expired_version), V(no_logrotate_policy), V(invalid_logrotate_policy), V(policy_mismatch), V(unreadable))
          and a C(message).
      type: list
      elements: dict
    violations_after:
      description: Violations left after enforcement (only when O(enforce=true) outside check mode).
      type: list
      elements: dict
      returned: when enforcement ran
  sample:
    - path: /srv/app/data/logs/audit.log
      size_bytes: 7340032
      rotated_versions: 2
      versions: [{name: audit.log.1, size_bytes: 5242880, age_days: 1.0}, {name: audit.log.2.gz, size_bytes: 401234, age_days: 2.0}]
      versions_bytes: 5644114
      oldest_version_age_days: 2.0
      logrotate_config: /etc/logrotate.d/app
      violations:
        - {code: oversized, message: "/srv/app/data/logs/audit.log is 7340032 bytes, over max_size 5M (5242880 bytes)"}
        - {code: uncompressed_version, message: "not compressed: audit.log.1"}
unmatched_paths:
  description: Entries of O(paths) that matched no file.
  returned: always
  type: list
  elements: str
skipped_paths:
  description: Glob matches that are not regular files (directories, symlink loops), with C(path) and C(reason).
  returned: always
  type: list
  elements: dict
ghost_handles:
  description: Deleted files still held open, one entry per file (device and inode) with all its holders.
  returned: always
  type: list
  elements: dict
  contains:
    pid:
      description: The first process holding the file (the one used to truncate it).
      type: int
    process:
      description: Its name (C(/proc/PID/comm)).
      type: str
    fd:
      description: Its descriptor number.
      type: int
    holders:
      description: Every process and descriptor holding the file (C(pid), C(process), C(fd)).
      type: list
      elements: dict
    path:
      description: The path the file had before it was deleted (C(/dir/#inode) for an C(O_TMPFILE) file).
      type: str
    bytes_held:
      description: Disk space the held file occupies (allocated blocks), what truncating it gives back.
      type: int
    size_bytes:
      description: Its apparent size, larger than RV(ghost_handles[].bytes_held) for a sparse file.
      type: int
    anonymous:
      description: True for a file created with C(O_TMPFILE), which never had a name and is never truncated.
      type: bool
    truncatable:
      description: True when its former path matches O(paths) (or a rotated version), so O(ghost_action=truncate) may truncate it.
      type: bool
    status:
      description: V(reported), V(planned) (truncate in check mode), V(truncated) or V(failed).
      type: str
  sample: [{pid: 4242, process: python3, fd: 3, holders: [{pid: 4242, process: python3, fd: 3}], path: /srv/app/data/logs/app.log,
            bytes_held: 10485760, size_bytes: 10485760, anonymous: false, truncatable: true, status: reported}]
errors:
  description: The error review of the bytes read by this run (empty dict without O(scan)).
  returned: always
  type: dict
  contains:
    counts:
      description:
        - Matching lines per pattern in plain-text logs (what C(grep -aci PATTERN) counts; a file with NUL bytes
          is read as text, like C(grep -a)).
      type: dict
    levels:
      description: Error records of structured logs (see O(format)) by their own level (V(error), V(fatal), V(critical), ...).
      type: dict
    lines_matched:
      description: Lines that contain at least one pattern, plus error records of structured logs.
      type: int
    journal:
      description:
        - With O(journal_units), the journal's review since the last run - C(entries_read), C(errors) (entries at
          O(journal_max_priority) or more urgent), C(by_priority), the most frequent normalised messages in C(top)
          (unit, message, priority, count), C(cursor_rebuilt) and C(cursor_note), C(started_from) (V(cursor) or
          V(window)).
      type: dict
      returned: when O(journal_units) is set
    events:
      description: Events, where a whole traceback is one event and every other matching line is one.
      type: int
    tracebacks:
      description: Python tracebacks found (chained ones count once).
      type: int
    undecodable_lines:
      description: Matching lines that are not valid UTF-8 (shown with replacement characters).
      type: int
    lines_before_since:
      description: Matching lines skipped because they are older than O(since).
      type: int
    distinct_messages:
      description: Different normalised messages.
      type: int
    top_messages:
      description: The O(top_n) most frequent normalised messages with C(message), C(count), C(first_seen), C(last_seen), C(sample).
      type: list
      elements: dict
    files:
      description:
        - Per log what was read (C(segments) with C(path), C(start), C(end), C(scanner)), its C(format) and any C(note)
          (a lost generation, a compressed file read decompressed, ...).
        - C(lost_generation) is null, or when the generation holding the cursor was deleted before it was read (and no
          process holds it open any more) C(device), C(inode), C(read_to), C(size_at_last_scan), C(unread_bytes) (null,
          unknowable once the file is gone) and C(unread_bytes_at_least) (what it had past the cursor at the last scan).
      type: list
      elements: dict
  sample:
    counts: {ERROR: 412, CRITICAL: 0, FATAL: 2, Traceback: 7}
    lines_matched: 421
    events: 414
    tracebacks: 7
    top_messages:
      - {message: "ERROR payment gateway timeout after <n> ms for order <n>", count: 201,
         first_seen: "2026-11-20T00:01:14Z", last_seen: "2026-11-20T23:58:02Z",
         sample: "2026-11-20T00:01:14Z ERROR payment gateway timeout after 3000 ms for order 7781"}
state:
  description:
    - The cursor file with C(path), C(status) (V(not_used), V(new), V(loaded), V(rebuilt) when it was corrupt),
      C(problem) and C(written).
  returned: always
  type: dict
  sample: {path: /var/lib/engineroom/log_rotation_check.json, status: loaded, problem: null, written: true}
actions:
  description:
    - What enforcement and ghost truncation did or would do, in order, each with C(action) (V(logrotate), V(rotate), V(delete),
      V(compress), V(truncate_ghost)), C(path), C(status) (V(planned), V(done), V(failed)) and details.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: V(logrotate) (C(logrotate -f) with the covering stanza), V(rotate), V(delete), V(compress) or V(truncate_ghost).
      type: str
    path:
      description: The file acted on (the log for V(rotate), the version for V(delete) and V(compress)).
      type: str
    log:
      description: The configured log the action belongs to (not for V(truncate_ghost)).
      type: str
    target:
      description: The new name for V(rotate) and V(compress).
      type: str
    size_bytes:
      description: Size of the file acted on when planned.
      type: int
    status:
      description: V(planned) (check mode), V(done), V(failed), or V(skipped) after an earlier failure on the same log.
      type: str
    error:
      description: Why a V(failed) action failed.
      type: str
  sample: [{action: compress, log: /srv/app/data/logs/audit.log, path: /srv/app/data/logs/audit.log.1,
            target: /srv/app/data/logs/audit.log.1.gz, size_bytes: 5242880, status: done}]
bytes_scanned:
  description: Bytes read by the error scan in this run.
  returned: always
  type: int
bytes_skipped_by_cursor:
  description: Bytes not read again thanks to the cursors in O(state_file).
  returned: always
  type: int
duration_ms:
  description: How long the module ran.
  returned: always
  type: float
notes:
  description: Things the operator should know that are not violations (a grep fallback, a rotated tail not found, a corrupt state file).
  returned: always
  type: list
  elements: str
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 812.4, cpu_ms: 1020.5, logs_total: 2, violations_total: 3, ghost_handles: 1, ghost_bytes_held: 10485760,
           bytes_scanned: 54843392, bytes_skipped_by_cursor: 0, error_events: 412, actions_done: 3}
executed_commands:
  description: Programs run (the grep fast path, postrotate commands).
  returned: always
  type: list
  elements: str
'''

import datetime
import os
import shutil
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import check_writable_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import cpu_ms, elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import parse_duration
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.audit import PolicyError, audit_log, resolve_policy, summarize
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.enforcement import enforce
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.ghosts import handle_ghosts
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_config import load_logrotate
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_reading import (
    LogrotateMissing,
    LogrotateReading,
    find_logrotate,
    read_logrotate,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.journald import JournalError, review_units
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.scan import (
    Scanner,
    grep_command_line,
    load_journal_state,
    load_state,
    save_state,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.versions import LogPathError, expand_paths

POLICY_SPEC = dict(
    max_size=dict(type='str'),
    keep=dict(type='int', default=10),
    compress=dict(type='bool', default=True),
    delay_compress=dict(type='bool', default=False),
    max_age_days=dict(type='int'),
    rotated_pattern=dict(type='str', default='auto', choices=['auto', 'numbered', 'dateext']),
)

ARGUMENT_SPEC = dict(
    paths=dict(type='list', elements='str', required=True),
    policy=dict(type='dict', default={}, options=POLICY_SPEC),
    logrotate_dir=dict(type='path', default='/etc/logrotate.d'),
    logrotate_conf=dict(type='path', default='/etc/logrotate.conf'),
    check_logrotate=dict(type='bool', default=True),
    ghost_scope=dict(type='str', default='logs', choices=['logs', 'all', 'none']),
    ghost_action=dict(type='str', default='report', choices=['report', 'truncate']),
    scan=dict(type='bool', default=False),
    patterns=dict(type='list', elements='str', default=['ERROR', 'CRITICAL', 'FATAL', 'Traceback']),
    format=dict(type='str', default='auto', choices=['auto', 'text', 'json', 'syslog', 'postgresql', 'nginx_error']),
    top_n=dict(type='int', default=10),
    state_file=dict(type='path'),
    journal_units=dict(type='list', elements='str', default=[]),
    journal_directory=dict(type='path'),
    journal_max_priority=dict(type='int', default=3, choices=list(range(8))),
    since=dict(type='str'),
    enforce=dict(type='bool', default=False),
    method=dict(type='str', default='copytruncate', choices=['copytruncate', 'rename']),
    postrotate_command=dict(type='list', elements='str'),
    logrotate_state=dict(type='path', default='/var/lib/engineroom/log_rotation_check.logrotate.status'),
    logrotate_path=dict(type='path'),
)


def resolve_since(module):
    """``since`` as a UTC ISO timestamp, or None."""
    since = module.params['since']
    if not since:
        return None
    if since[:1].isdigit() and len(since) >= 10 and since[4:5] == '-':
        try:
            moment = datetime.datetime.strptime(since.replace('Z', ''), '%Y-%m-%dT%H:%M:%S')
        except ValueError:
            module.fail_json(msg='since %r is not a time: use 2026-11-20T00:00:00Z (UTC) or a duration like 24h' % since)
        return moment.strftime('%Y-%m-%dT%H:%M:%SZ')
    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        module.fail_json(msg='since: %s, or a UTC time like 2026-11-20T00:00:00Z' % exc)
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() - seconds))


def check_state_file(module):
    """Fail before reading anything when the cursors could not be saved afterwards."""
    state_file = module.params['state_file']
    if not state_file:
        return
    if os.path.isdir(state_file):
        module.fail_json(msg='state_file %s is a directory: give a file path such as %s/log_rotation_check.json; '
                             'nothing was read or changed' % (state_file, state_file.rstrip('/')))
    directory = os.path.dirname(os.path.abspath(state_file))
    if os.path.isdir(directory) and not module.check_mode:
        problem = check_writable_dir(directory)
        if problem:
            module.fail_json(msg='state_file %s cannot be written: %s; nothing was read or changed' % (state_file, problem))


def review_journal(module, previous, executed, notes):
    """The journald part of the error review: (result or None, state to keep)."""
    units = module.params['journal_units']
    if not units:
        return None, previous
    try:
        journal, state, commands = review_units(units, previous, module.params['journal_directory'],
                                                module.params['journal_max_priority'], module.params['top_n'])
    except JournalError as exc:
        module.fail_json(msg='journal_units %s: %s; nothing was changed' % (', '.join(units), exc))
    executed.extend(commands)
    if journal['cursor_rebuilt']:
        notes.append(journal['cursor_note'])
        module.warn(journal['cursor_note'])
    return journal, state


def run_scan(module, logs, executed, notes):
    """Error review of the logs; returns (errors dict, state dict, bytes scanned, bytes skipped)."""
    state_file = module.params['state_file']
    state = dict(path=state_file, status='not_used', problem=None, written=False)
    cursors = {}
    if state_file:
        cursors, state['status'], state['problem'] = load_state(state_file)
        if state['status'] == 'rebuilt':
            message = ('state_file %s was corrupt (%s): rebuilt, every log was scanned from the start, so these '
                       'counts may repeat lines reported by earlier runs' % (state_file, state['problem']))
            notes.append(message)
            module.warn(message)
    state_dir = os.path.dirname(os.path.abspath(state_file or '.'))  # gzipped rotated tails are unpacked there
    grep_path = shutil.which('grep')
    if not grep_path:
        notes.append('grep not found: the built-in scanner was used (slower)')
    scanner = Scanner(module.params['patterns'], since=resolve_since(module), grep_path=grep_path,
                      incremental=bool(state_file), fmt=module.params['format'],
                      temp_dir=state_dir if state_file and os.path.isdir(state_dir) else None)
    jobs = []
    for entry in logs:
        if entry['size_bytes'] is None:
            continue  # unreadable: already a violation
        path = entry['path']
        versions = entry.get('_version_paths', []) if path in cursors else []
        jobs.append((path, cursors.get(path), versions))
    new_cursors = dict((job[0], cursor) for job, cursor in zip(jobs, scanner.scan(jobs)) if cursor is not None)
    if any(s['scanner'] == 'grep' for f in scanner.files for s in f['segments']):
        executed.append(grep_command_line(grep_path, module.params['patterns']))
    notes.extend(scanner.notes)
    notes.extend('%s: %s' % (f['path'], f['note']) for f in scanner.files if f['note'])
    journal, journal_state = review_journal(module, load_journal_state(state_file) if state_file else {}, executed, notes)
    if state_file and not module.check_mode:
        try:
            save_state(state_file, new_cursors, journal_state)
            state['written'] = True
        except OSError as exc:
            module.fail_json(msg='state_file %s could not be written: %s; check its directory and permissions'
                             % (state_file, exc.strerror or exc))
    errors = scanner.review.result(module.params['top_n'])
    errors['files'] = scanner.files
    if journal:
        errors['journal'] = journal
    return errors, state, scanner.bytes_scanned, scanner.bytes_skipped


def read_configuration(module, notes):
    """logrotate's own reading of its configuration; the collection's parser where logrotate is not installed."""
    stanzas, dummy, problems = load_logrotate(module.params['logrotate_conf'], module.params['logrotate_dir'])
    try:
        reading = read_logrotate(module.params['logrotate_conf'], module.params['logrotate_dir'], stanzas,
                                 module.params['logrotate_path'])
    except LogrotateMissing as exc:
        notes.extend(problems)
        notes.append('logrotate_missing: %s; the configuration was read by the collection\'s own parser' % exc)
        return stanzas
    except (OSError, subprocess.SubprocessError) as exc:
        module.fail_json(msg='logrotate -d could not read %s: %s; nothing was read or changed'
                         % (module.params['logrotate_conf'] or module.params['logrotate_dir'], exc))
    for message in reading.messages:
        if 'logrotate: ' + message not in notes:
            notes.append('logrotate: ' + message)
    return reading


def check_params(module):
    """Fail on every bad option before anything is read; returns the resolved policy."""
    params = module.params
    if not params['paths']:
        module.fail_json(msg='paths is empty: give the log files or globs to check (for example /srv/app/data/logs/*.log)')
    if params['scan'] and (not params['patterns'] or not all(params['patterns'])):
        module.fail_json(msg='patterns must be non-empty strings when scan is true (default ERROR, CRITICAL, FATAL, Traceback)')
    if params['top_n'] < 0:
        module.fail_json(msg='top_n is %d: give 0 or more' % params['top_n'])
    if params['postrotate_command'] and params['method'] != 'rename':
        module.fail_json(msg='postrotate_command only runs with method: rename (copytruncate needs no reopen)')
    if params['postrotate_command'] == []:
        module.fail_json(msg='postrotate_command is empty: give the program and its arguments, or leave it unset')
    try:
        policy = resolve_policy(module.params['policy'], POLICY_SPEC)
    except PolicyError as exc:
        module.fail_json(msg=str(exc))
    if params['scan']:
        resolve_since(module)  # validate before anything is read
        check_state_file(module)
    return policy


def build_result(module, result, started, cpu_started):
    """The module result around ``result`` (the findings): changed, summary, duration and metrics."""
    logs, ghosts, errors, actions = result['logs'], result['ghost_handles'], result['errors'], result['actions']
    for entry in logs:
        entry.pop('_version_paths', None)
    unmatched, bytes_scanned, bytes_skipped = result['unmatched_paths'], result['bytes_scanned'], result['bytes_skipped_by_cursor']
    duration = elapsed_ms(started)
    violations_total = sum(len(e['violations']) for e in logs)
    result.update(
        changed=any(a['status'] in ('done', 'planned', 'failed') for a in actions),
        summary=summarize(logs, unmatched, ghosts, errors, actions, bytes_scanned, module.check_mode),
        duration_ms=duration,
        metrics=dict(duration_ms=duration, cpu_ms=round(cpu_ms() - cpu_started, 1), logs_total=len(logs), violations_total=violations_total,
                     ghost_handles=len(ghosts), ghost_bytes_held=sum(g['bytes_held'] for g in ghosts),
                     bytes_scanned=bytes_scanned, bytes_skipped_by_cursor=bytes_skipped,
                     error_events=errors.get('events', 0), error_lines_matched=errors.get('lines_matched', 0),
                     actions_done=sum(1 for a in actions if a['status'] == 'done'),
                     actions_planned=sum(1 for a in actions if a['status'] == 'planned')),
    )
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    started = time.monotonic()
    cpu_started = cpu_ms()
    params = module.params
    policy = check_params(module)
    try:
        paths, unmatched, skipped = expand_paths(params['paths'])
    except LogPathError as exc:
        module.fail_json(msg='%s; nothing was read or changed' % exc)
    for pattern in unmatched:
        module.warn('paths: %s matched no file' % pattern)

    notes, executed, actions, diff = [], [], [], []
    stanzas = read_configuration(module, notes) if params['check_logrotate'] else None
    logs = [audit_log(path, policy, stanzas) for path in paths]
    ghosts = handle_ghosts(params['ghost_scope'], params['ghost_action'], module.check_mode, params['paths'], paths, actions, diff)
    errors, state, bytes_scanned, bytes_skipped = {}, dict(path=params['state_file'], status='not_used', problem=None,
                                                           written=False), 0, 0
    if params['scan']:
        errors, state, bytes_scanned, bytes_skipped = run_scan(module, logs, executed, notes)
    if params['enforce']:
        notes.extend(enforce(logs, policy, dict(
            method=params['method'], postrotate_command=params['postrotate_command'], check_mode=module.check_mode,
            reading=stanzas if isinstance(stanzas, LogrotateReading) else None, logrotate=find_logrotate(params['logrotate_path']),
            logrotate_conf=params['logrotate_conf'], logrotate_state=params['logrotate_state']), actions, diff, executed))
        if not module.check_mode:
            for entry in logs:
                entry['violations_after'] = audit_log(entry['path'], policy, stanzas)['violations']

    result = build_result(module, dict(logs=logs, unmatched_paths=unmatched, skipped_paths=skipped, ghost_handles=ghosts,
                                       errors=errors, state=state, actions=actions, bytes_scanned=bytes_scanned,
                                       bytes_skipped_by_cursor=bytes_skipped, notes=notes, executed_commands=executed),
                          started, cpu_started)
    if diff:
        result['diff'] = diff
    failed = [a for a in actions if a['status'] == 'failed']
    if failed:
        module.fail_json(msg='%d action(s) failed, first: %s %s: %s; the other logs were handled, see actions'
                         % (len(failed), failed[0]['action'], failed[0]['path'], failed[0]['error']), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

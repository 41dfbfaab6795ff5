# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bringing a log into policy: plan (rotate, delete, compress) and carry out the plan.

Enforcement only ever touches a configured log and the files that match its
rotated pattern (``name.N[.gz|.zst]`` or ``name-YYYYMMDD[.gz|.zst]``), so a
foreign file in a log directory is never renamed, compressed or deleted.
"""

from __future__ import annotations

import datetime
import errno
import gzip
import os
import shutil
import stat
import subprocess
import tempfile
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import fsync_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import format_argv
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_reading import directives_source
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_run import RotationError, force_rotate
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.versions import list_versions

COPY_CHUNK_BYTES = 1024 * 1024
POSTROTATE_TIMEOUT_S = 120


def plan_log(path, policy, method, now=None):
    """(actions, before names, after names) that bring one log into policy; nothing is touched.

    Order: rotate (if oversized), then delete versions beyond keep or older
    than max_age_days, then compress what stays. Actions carry everything
    needed to execute them.
    """
    now = time.time() if now is None else now
    versions = list_versions(path, policy['rotated_pattern'], now)
    before = [v['name'] for v in versions]
    actions = []
    current = [dict(v) for v in versions]
    size = os.stat(path).st_size
    if policy['max_size_bytes'] is not None and size > policy['max_size_bytes']:
        rotate, current = _plan_rotation(path, policy, method, versions, size, now)
        actions.append(rotate)
    for index, version in enumerate(current):
        too_many = index >= policy['keep']
        expired = policy['max_age_days'] is not None and version['age_days'] > policy['max_age_days']
        if too_many or expired:
            version['deleted'] = True
            actions.append(dict(action='delete', log=path, path=version['path'], size_bytes=version['size_bytes'],
                                reason='beyond keep %d' % policy['keep'] if too_many
                                else 'older than %d days' % policy['max_age_days']))
    kept = [v for v in current if not v.get('deleted')]
    for index, version in enumerate(kept):
        if policy['compress'] and not version['compressed'] and not (policy['delay_compress'] and index == 0):
            actions.append(dict(action='compress', log=path, path=version['path'], target=version['path'] + '.gz',
                                size_bytes=version['size_bytes']))
            version['name'] += '.gz'
    return actions, before, [v['name'] for v in kept]


def _plan_rotation(path, policy, method, versions, size, now):
    """The rotate action and the version list as it will be right after it (newest first)."""
    dated = policy['rotated_pattern'] == 'dateext' or (
        policy['rotated_pattern'] == 'auto' and versions and all(v['number'] is None for v in versions))
    directory, base = os.path.split(path)
    renames = []
    if dated:
        stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        target = '%s-%s' % (base, stamp.strftime('%Y%m%d'))
        if any(v['name'].startswith(target) for v in versions):
            target = '%s-%s' % (base, stamp.strftime('%Y%m%d%H%M%S'))
        shifted = [dict(v) for v in versions]
    else:
        target = base + '.1'
        shifted = []
        for version in versions:
            version = dict(version)
            if version['number'] is not None:
                new_name = '%s.%d%s' % (base, version['number'] + 1, version['compressed'] or '')
                renames.append((version['path'], os.path.join(directory, new_name)))
                version.update(name=new_name, path=os.path.join(directory, new_name))
            shifted.append(version)
        renames.reverse()  # highest number first, so no rename overwrites the next one
    new_version = dict(path=os.path.join(directory, target), name=target, number=None if dated else 1, date=None,
                       compressed=None, size_bytes=size, mtime=now, age_days=0.0)
    after = [new_version] + shifted
    action = dict(action='rotate', log=path, method=method, path=path, target=new_version['path'],
                  size_bytes=size, renames=[dict(source=s, target=t) for s, t in renames])
    return action, after


def execute(action, postrotate_command=None):
    """Carry out one planned action. Raises OSError (or RuntimeError for postrotate) on failure."""
    kind = action['action']
    if kind == 'rotate':
        for rename in action['renames']:
            _rename_no_clobber(rename['source'], rename['target'])
        if action['method'] == 'copytruncate':
            _copy_truncate(action['path'], action['target'])
        else:
            _rename_and_recreate(action['path'], action['target'])
            if postrotate_command:
                completed = subprocess.run(postrotate_command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, timeout=POSTROTATE_TIMEOUT_S, check=False)
                if completed.returncode != 0:
                    raise RuntimeError('postrotate_command exited with %d: %s' % (
                        completed.returncode, completed.stdout.decode('utf-8', 'replace').strip()[-500:]))
    elif kind == 'delete':
        os.unlink(action['path'])
    elif kind == 'compress':
        gzip_file(action['path'], action['target'])


def _rename_no_clobber(source, target):
    if os.path.lexists(target):
        raise OSError(errno.EEXIST, 'would overwrite %s' % target)
    os.rename(source, target)


def _copy_truncate(path, target):
    """Copy the log to its first version, then truncate it in place: the writer's handle stays valid.

    Bytes appended while copying are copied too (the loop reads to the end
    again right before truncating); only what is written between that last
    read and the truncate can be lost, as with logrotate's copytruncate.
    """
    if os.path.lexists(target):
        raise OSError(errno.EEXIST, 'would overwrite %s' % target)
    directory = os.path.dirname(target)
    fd, temp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(target), suffix='.tmp', dir=directory)
    try:
        with open(path, 'r+b') as source, os.fdopen(fd, 'wb') as copy:
            st = os.fstat(source.fileno())
            while True:
                chunk = source.read(COPY_CHUNK_BYTES)
                if not chunk:
                    break
                copy.write(chunk)
            copy.flush()
            os.fchmod(copy.fileno(), stat.S_IMODE(st.st_mode))
            _chown_like(copy.fileno(), st)
            os.fsync(copy.fileno())
            os.rename(temp, target)
            source.truncate(0)
        os.utime(target, (st.st_atime, st.st_mtime))
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    fsync_dir(directory)


def _rename_and_recreate(path, target):
    if os.path.lexists(target):
        raise OSError(errno.EEXIST, 'would overwrite %s' % target)
    st = os.stat(path)
    os.rename(path, target)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(st.st_mode))
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        _chown_like(fd, st)
    finally:
        os.close(fd)
    fsync_dir(os.path.dirname(path))


def _chown_like(fd, st):
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except PermissionError:
        pass  # not root: the file keeps our owner, which the writer already shares


def gzip_file(path, target):
    """Compress ``path`` to ``target`` (temp file, fsync, rename), keep mode/owner/mtime, remove ``path``."""
    if os.path.lexists(target):
        raise OSError(errno.EEXIST, 'would overwrite %s' % target)
    directory = os.path.dirname(target)
    st = os.stat(path)
    fd, temp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(target), suffix='.tmp', dir=directory)
    try:
        with open(path, 'rb') as source, os.fdopen(fd, 'wb') as raw:
            with gzip.GzipFile(filename=os.path.basename(path), mode='wb', fileobj=raw, mtime=int(st.st_mtime)) as packed:
                shutil.copyfileobj(source, packed, COPY_CHUNK_BYTES)
            raw.flush()
            os.fchmod(raw.fileno(), stat.S_IMODE(st.st_mode))
            _chown_like(raw.fileno(), st)
            os.fsync(raw.fileno())
        os.rename(temp, target)
        os.utime(target, (st.st_atime, st.st_mtime))
        os.unlink(path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    fsync_dir(directory)


def enforce(logs, policy, options, actions, diff, executed):
    """Plan (and outside check mode do) what brings each log into policy; failed actions stop that log.

    ``options``: method, postrotate_command, check_mode, and for rotation by
    logrotate: reading (a LogrotateReading, or None), logrotate (its path),
    logrotate_conf, logrotate_state. An oversized log that a stanza covers is
    force-rotated by logrotate with that stanza; the module's own rotation
    only serves logs no stanza covers (or hosts without logrotate). Returns notes.
    """
    notes = []
    for entry in logs:
        if entry['size_bytes'] is None:
            continue
        planned, before, after = plan_log(entry['path'], policy, options['method'])
        covering = _covering(options, entry['path'])
        if covering is not None and planned and planned[0]['action'] == 'rotate':
            actions.append(_logrotate_action(entry, covering, options))
            continue
        if covering is None and planned and planned[0]['action'] == 'rotate' and options.get('reading') is not None:
            notes.append('%s: no logrotate stanza covers it: rotated by the module itself (%s)'
                         % (entry['path'], options['method']))
        if not planned:
            continue
        diff.append(dict(before_header='%s versions' % entry['path'], after_header='%s versions' % entry['path'],
                         before=''.join(n + '\n' for n in before), after=''.join(n + '\n' for n in after)))
        _carry_out(planned, options, actions, executed)
    return notes


def _covering(options, path):
    reading = options.get('reading')
    if reading is None or not options.get('logrotate'):
        return None
    log_set, dummy = reading.covering(path)
    if log_set is None:
        return None
    return log_set, reading


def _logrotate_action(entry, covering, options):
    log_set, reading = covering
    source = directives_source(reading, entry['path'])
    if source is None:
        return dict(action='logrotate', log=entry['path'], path=entry['path'], config=None, status='failed',
                    error='logrotate covers %s but its stanza was not found in logrotate_conf or logrotate_dir: '
                          'rotate it with logrotate -f and the file that holds it' % entry['path'])
    try:
        return force_rotate(options['logrotate'], entry['path'], source, options['logrotate_conf'],
                            options['logrotate_state'], log_set, options['check_mode'])
    except (RotationError, OSError, subprocess.SubprocessError) as exc:
        return dict(action='logrotate', log=entry['path'], path=entry['path'], config=source, status='failed',
                    error=getattr(exc, 'strerror', None) or str(exc))


def _carry_out(planned, options, actions, executed):
    failed = False
    for action in planned:
        actions.append(action)
        if options['check_mode'] or failed:
            action['status'] = 'planned' if options['check_mode'] else 'skipped'
            continue
        try:
            execute(action, options['postrotate_command'])
            action['status'] = 'done'
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            action['status'] = 'failed'
            action['error'] = getattr(exc, 'strerror', None) or str(exc)
            failed = True
        if action['action'] == 'rotate' and options['method'] == 'rename' and options['postrotate_command']:
            executed.append(format_argv(options['postrotate_command']))

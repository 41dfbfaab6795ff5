# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Log files against their rotation policy: audit, logrotate stanzas, ghost handles, enforcement.

The audit only stats files and reads logrotate configuration. Enforcement
only ever touches a configured log and the files that match its rotated
pattern (``name.N[.gz|.zst]`` or ``name-YYYYMMDD[.gz|.zst]``), so a foreign
file in a log directory is never renamed, compressed or deleted.
"""

from __future__ import annotations

import datetime
import errno
import glob
import gzip
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import fsync_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import parse_size

COMPRESSED = ('.gz', '.zst', '.xz', '.bz2')
COPY_CHUNK_BYTES = 1024 * 1024
DAY_SECONDS = 86400.0
POSTROTATE_TIMEOUT_S = 120


class LogPathError(Exception):
    """A configured path cannot be a log file (a directory, a symlink loop)."""


# --- which files ---------------------------------------------------------------------------

def expand_paths(paths):
    """(logs, unmatched, skipped): regular files named by ``paths``, globs that matched nothing,
    and glob matches that are not regular files. A literal path that is a directory or a
    symlink loop raises LogPathError: that is a configuration mistake, not a finding."""
    logs, unmatched, skipped = [], [], []
    for pattern in paths:
        literal = not glob.has_magic(pattern)
        matches = [pattern] if literal and os.path.lexists(pattern) else sorted(glob.glob(pattern))
        if not matches:
            unmatched.append(pattern)
            continue
        for path in matches:
            problem = _not_a_file(path)
            if problem and literal:
                raise LogPathError('paths: %s %s: give log files (for example %s/*.log)'
                                   % (path, problem, path.rstrip('/') if problem == 'is a directory' else os.path.dirname(path)))
            if problem:
                skipped.append(dict(path=path, reason=problem))
            elif path not in logs:
                logs.append(path)
    # a glob like /var/log/app/* also matches the rotated versions: they are versions, not logs
    names = set(logs)
    logs = [p for p in logs if not any(version_of(p, other) for other in names if other != p)]
    return logs, unmatched, skipped


def _not_a_file(path):
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return 'is a symlink loop'
        if exc.errno == errno.ENOENT:
            return 'is a dangling symlink'
        return None  # unreadable is reported by the audit as a violation, not here
    if stat.S_ISDIR(st.st_mode):
        return 'is a directory'
    if not stat.S_ISREG(st.st_mode):
        return 'is not a regular file'
    return None


_NUMBERED = r'\.(\d+)'
_DATEEXT = r'-(\d{8}(?:\d{2}){0,3})'
_COMPRESS_SUFFIX = r'(\.gz|\.zst|\.xz|\.bz2)?'


def version_regex(log_path, rotated_pattern):
    name = re.escape(os.path.basename(log_path))
    kinds = dict(numbered=_NUMBERED, dateext=_DATEEXT, auto='(?:%s|%s)' % (_NUMBERED, _DATEEXT))
    return re.compile('^%s%s%s$' % (name, kinds[rotated_pattern], _COMPRESS_SUFFIX))


def version_of(candidate, log_path, rotated_pattern='auto'):
    """True when ``candidate`` is a rotated version of ``log_path``."""
    return (os.path.dirname(candidate) == os.path.dirname(log_path)
            and bool(version_regex(log_path, rotated_pattern).match(os.path.basename(candidate))))


def list_versions(log_path, rotated_pattern, now=None):
    """Rotated versions of a log, newest first: numbered by N, then dated ones by date descending."""
    now = time.time() if now is None else now
    regex = version_regex(log_path, rotated_pattern)
    directory = os.path.dirname(log_path) or '.'
    versions = []
    for name in os.listdir(directory):
        match = regex.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        groups = match.groups()
        number = groups[0] if rotated_pattern != 'dateext' else None
        date = groups[1] if rotated_pattern == 'auto' else (groups[0] if rotated_pattern == 'dateext' else None)
        versions.append(dict(path=path, name=name, number=int(number) if number else None, date=date,
                             compressed=groups[-1], size_bytes=st.st_size, mtime=st.st_mtime,
                             age_days=round(max(0.0, now - st.st_mtime) / DAY_SECONDS, 2)))
    versions.sort(key=lambda v: (0, v['number'], '') if v['number'] is not None else (1, 0, _descending(v['date'])))
    return versions


def _descending(digits):
    return ''.join(chr(ord('9') - ord(c) + ord('0')) for c in digits.ljust(14, '0'))


# --- logrotate configuration -----------------------------------------------------------------

_SIZE_DIRECTIVES = ('size', 'maxsize')


def parse_logrotate(text, defaults=None):
    """(globals, stanzas) of a logrotate config: stanzas are (patterns, directives) with globals merged.

    Understands what the audit compares: size, maxsize, rotate, compress,
    nocompress, delaycompress, nodelaycompress, maxage; scripts
    (postrotate ... endscript) are skipped.
    """
    settings = dict(defaults or {})
    stanzas = []
    current = None
    in_script = False
    pending = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        if in_script:
            in_script = line != 'endscript'
            continue
        if line.split()[0] in ('postrotate', 'prerotate', 'firstaction', 'lastaction', 'preremove'):
            in_script = True
            continue
        if current is None and '{' in line:
            head = line.split('{', 1)[0]
            current = (_split_patterns(' '.join(pending) + ' ' + head), dict(settings))
            pending = []
            line = line.split('{', 1)[1].strip()
            if not line:
                continue
        if '}' in line and current is not None:
            directive = line.split('}', 1)[0].strip()
            if directive:
                _apply_directive(current[1], directive)
            stanzas.append(current)
            current = None
            continue
        if current is None and line[0] in '/"\'':
            pending.append(line)  # file names before a "{" on a later line
            continue
        _apply_directive(current[1] if current is not None else settings, line)
    return settings, stanzas


def _split_patterns(text):
    return [p.strip('"\'') for p in re.findall(r'"[^"]*"|\'[^\']*\'|\S+', text)]


def _apply_directive(target, line):
    """Record the directives the audit compares; others (create, su, dateext, ...) do not matter here."""
    words = line.split()
    key = words[0]
    if key in _SIZE_DIRECTIVES and len(words) > 1:
        try:
            target[key] = parse_size(words[1])
        except ValueError:
            target[key] = words[1]
        return
    if key in ('rotate', 'maxage') and len(words) > 1 and words[1].lstrip('-').isdigit():
        target[key] = int(words[1])
    if key in ('compress', 'nocompress'):
        target['compress'] = key == 'compress'
    if key in ('delaycompress', 'nodelaycompress'):
        target['delaycompress'] = key == 'delaycompress'


def load_logrotate(conf_path, conf_dir):
    """(stanzas, sources, problems): every stanza of ``conf_path`` and the files in ``conf_dir``."""
    problems, sources, stanzas = [], [], []
    defaults = {}
    files = [conf_path] if conf_path and os.path.isfile(conf_path) else []
    if conf_dir and os.path.isdir(conf_dir):
        files += sorted(os.path.join(conf_dir, n) for n in os.listdir(conf_dir)
                        if not n.startswith('.') and not n.endswith(('~', '.dpkg-old', '.dpkg-dist', '.disabled')))
    elif conf_dir:
        problems.append('logrotate_dir %s does not exist' % conf_dir)
    for index, path in enumerate(files):
        try:
            with open(path, encoding='utf-8', errors='replace') as handle:
                text = handle.read()
        except OSError as exc:
            problems.append('%s: %s' % (path, exc.strerror or exc))
            continue
        settings, found = parse_logrotate(text, defaults)
        if index == 0 and path == conf_path:
            defaults = settings  # logrotate.conf's globals apply to the included directory
        stanzas += [(patterns, directives, path) for patterns, directives in found]
        sources.append(path)
    return stanzas, sources, problems


def stanza_for(log_path, stanzas):
    """(directives, config file) of the first stanza whose patterns match ``log_path``, or (None, None)."""
    real = os.path.realpath(log_path)
    for patterns, directives, source in stanzas:
        for pattern in patterns:
            if real in (os.path.realpath(p) for p in glob.glob(pattern)):
                return directives, source
    return None, None


def policy_differences(directives, policy):
    """What a stanza says differently from the policy, in operator words."""
    differences = []
    if policy['max_size_bytes'] is not None:
        limit = directives.get('maxsize', directives.get('size'))
        if limit is None:
            differences.append('no size/maxsize (policy max_size %s)' % policy['max_size'])
        elif limit != policy['max_size_bytes']:
            differences.append('size %s, policy max_size %s' % (limit, policy['max_size']))
    rotate = directives.get('rotate', 0)
    if rotate != policy['keep']:
        differences.append('rotate %d, policy keep %d' % (rotate, policy['keep']))
    if directives.get('compress', False) != policy['compress']:
        differences.append('%s, policy compress %s'
                           % ('compress' if directives.get('compress') else 'nocompress', policy['compress']))
    if policy['compress'] and directives.get('delaycompress', False) != policy['delay_compress']:
        differences.append('%s, policy delay_compress %s' % (
            'delaycompress' if directives.get('delaycompress') else 'no delaycompress', policy['delay_compress']))
    if policy['max_age_days'] is not None and directives.get('maxage') != policy['max_age_days']:
        differences.append('maxage %s, policy max_age_days %d' % (directives.get('maxage', 'unset'), policy['max_age_days']))
    return differences


# --- audit -----------------------------------------------------------------------------------

def violation(code, message):
    return dict(code=code, message=message)


def audit_log(path, policy, stanzas=None, now=None):
    """One entry of ``logs``: sizes, versions and violations of one log against ``policy``."""
    entry = dict(path=path, size_bytes=None, rotated_versions=0, versions=[], versions_bytes=0,
                 oldest_version_age_days=None, logrotate_config=None, violations=[])
    try:
        st = os.stat(path)
        with open(path, 'rb'):
            pass
    except OSError as exc:
        entry['violations'].append(violation('unreadable', '%s cannot be read: %s; check its permissions and owner'
                                             % (path, exc.strerror or exc)))
        return entry
    entry['size_bytes'] = st.st_size
    try:
        versions = list_versions(path, policy['rotated_pattern'], now)
    except OSError as exc:
        entry['violations'].append(violation('unreadable', 'directory of %s cannot be listed: %s'
                                             % (path, exc.strerror or exc)))
        versions = []
    entry['versions'] = [dict((k, v[k]) for k in ('name', 'size_bytes', 'age_days')) for v in versions]
    entry['rotated_versions'] = len(versions)
    entry['versions_bytes'] = sum(v['size_bytes'] for v in versions)
    if versions:
        entry['oldest_version_age_days'] = max(v['age_days'] for v in versions)
    limit = policy['max_size_bytes']
    if limit is not None and st.st_size > limit:
        entry['violations'].append(violation('oversized', '%s is %d bytes, over max_size %s (%d bytes)'
                                             % (path, st.st_size, policy['max_size'], limit)))
    if len(versions) > policy['keep']:
        extra = [v['name'] for v in versions[policy['keep']:]]
        entry['violations'].append(violation('too_many_versions', '%d rotated versions, keep is %d: %s'
                                             % (len(versions), policy['keep'], ', '.join(extra))))
    if policy['compress']:
        skip = 1 if policy['delay_compress'] else 0
        plain = [v['name'] for v in versions[skip:] if not v['compressed']]
        if plain:
            entry['violations'].append(violation('uncompressed_version', 'not compressed: %s' % ', '.join(plain)))
    if policy['max_age_days'] is not None:
        old = [v['name'] for v in versions if v['age_days'] > policy['max_age_days']]
        if old:
            entry['violations'].append(violation('expired_version', 'older than %d days: %s'
                                                 % (policy['max_age_days'], ', '.join(old))))
    if stanzas is not None:
        directives, source = stanza_for(path, stanzas)
        entry['logrotate_config'] = source
        if directives is None:
            entry['violations'].append(violation('no_logrotate_policy', 'no logrotate stanza covers %s' % path))
        else:
            differences = policy_differences(directives, policy)
            if differences:
                entry['violations'].append(violation('policy_mismatch', '%s: %s' % (source, '; '.join(differences))))
    return entry


# --- ghost handles ---------------------------------------------------------------------------

def find_ghost_handles(scope_dirs=None):
    """Open files with link count 0 held by any process, optionally only those under ``scope_dirs``.

    The link count comes from stat() through /proc/<pid>/fd/<n> (the open
    file itself), not from the "(deleted)" text of the link; the text is only
    used to recover the path the file had.
    """
    me = os.getpid()
    found = []
    for pid_name in os.listdir('/proc'):
        if not pid_name.isdigit() or int(pid_name) == me:
            continue
        fd_dir = '/proc/%s/fd' % pid_name
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # the process ended, or is not ours to look into
        for fd_name in fds:
            link = os.path.join(fd_dir, fd_name)
            try:
                st = os.stat(link)
                target = os.readlink(link)
            except OSError:
                continue
            if st.st_nlink != 0 or not stat.S_ISREG(st.st_mode):
                continue
            original = target[:-len(' (deleted)')] if target.endswith(' (deleted)') else target
            if not original.startswith('/') or original.startswith('/memfd:'):
                continue  # anonymous memory files, not files that were on a disk
            if scope_dirs is not None and not any(_under(original, d) for d in scope_dirs):
                continue
            found.append(dict(pid=int(pid_name), process=_process_name(pid_name), fd=int(fd_name), path=original,
                              bytes_held=st.st_size, device=st.st_dev, inode=st.st_ino))
    found.sort(key=lambda g: (g['path'], g['pid'], g['fd']))
    return found


def _under(path, directory):
    directory = directory.rstrip('/') + '/'
    return path.startswith(directory)


def _process_name(pid):
    try:
        with open('/proc/%s/comm' % pid) as handle:
            return handle.read().strip()
    except OSError:
        return '?'


def truncate_ghost(ghost):
    """Truncate a deleted-but-open file to 0 through its holder's descriptor: the space comes back now."""
    os.truncate('/proc/%d/fd/%d' % (ghost['pid'], ghost['fd']), 0)


# --- enforcement -----------------------------------------------------------------------------

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

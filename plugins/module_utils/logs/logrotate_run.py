# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation is logrotate's job: force-rotate one log with the stanza that covers it.

logrotate has no "rotate only this log" option, and ``logrotate -f FILE``
rotates every log of FILE. So the stanza that covers the log is copied into a
private configuration of its own, its patterns replaced by the one log, with
the global directives that precede it (those of the main configuration before
its first ``include``, those of the drop-ins read before the stanza's file,
which logrotate 3.21 carries from one drop-in into the next, and those of the
stanza's file before the stanza).
Before anything is rotated, ``logrotate -d`` must read that private
configuration exactly as it reads the real one for this log (rotate count,
criterion, olddir, the name of the next version); otherwise nothing is done
and the reason is said. The rotation runs ``logrotate -f -s STATE`` with a
state file of the module's own, so the host's logrotate state is untouched.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import format_argv
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_reading import (
    LOGROTATE_TIMEOUT_S,
    pattern_matches,
    parse_debug,
    run_debug,
)

SCRIPTS = ('postrotate', 'prerotate', 'firstaction', 'lastaction', 'preremove')
# logrotate 3.21's built-in taboo list: files of an included directory with these endings are not read
TABOO_EXTENSIONS = (',v', '.cfsaved', '.disabled', '.dpkg-bak', '.dpkg-del', '.dpkg-dist', '.dpkg-new', '.dpkg-old',
                    '.dpkg-tmp', '.rpmnew', '.rpmorig', '.rpmsave', '.swp', '.ucf-dist', '.ucf-new', '.ucf-old', '~')


class RotationError(Exception):
    """logrotate could not (or would not faithfully) rotate the log; said in operator words."""


def _read(path):
    with open(path, encoding='utf-8', errors='replace') as handle:
        return handle.read().replace('\r\n', '\n').split('\n')


def _walk(source, log_path):
    """(global lines, body lines of the stanza naming ``log_path`` or None): the globals are those before that stanza,
    or every global of the file when ``log_path`` is None or no stanza names it."""
    real = os.path.realpath(log_path) if log_path else None
    globals_seen, pending, body, header = [], [], None, None
    in_script = False
    for line in _read(source):
        stripped = line.strip()
        if body is not None:
            if in_script:
                in_script = stripped != 'endscript'
                body.append(line)
                continue
            if stripped.split()[:1] and stripped.split()[0] in SCRIPTS:
                in_script = True
            if stripped.startswith('}') and not in_script:
                if real and pattern_matches(header, real):
                    return list(globals_seen), body
                body = None
                continue
            body.append(line)
            continue
        if not stripped or stripped.startswith('#'):
            continue
        if '{' in stripped:
            header = ' '.join(pending + [stripped.split('{', 1)[0]])
            pending, body = [], []
            rest = stripped.split('{', 1)[1].strip()
            if rest:
                body.append(rest)
            continue
        if stripped[0] in '/"\'' or re.match(r'^[\w.*?\[\]-]+/', stripped):
            pending.append(stripped)
            continue
        if not stripped.startswith(('include', 'tabooext', 'taboopat')):
            globals_seen.append(stripped)
    return globals_seen, None


def stanza_text(source, log_path):
    """(global lines before the stanza, stanza body lines) of the stanza of ``source`` that names ``log_path``, or None."""
    found_globals, body = _walk(source, log_path)
    return None if body is None else (found_globals, body)


def conf_globals(conf_path):
    """Global directive lines of the main configuration before its first include (they apply to the drop-ins)."""
    found = []
    if not conf_path or not os.path.isfile(conf_path):
        return found
    for line in _read(conf_path):
        stripped = line.strip()
        if stripped.startswith('include'):
            break
        if stripped and not stripped.startswith('#') and '{' not in stripped and stripped[0] not in '/"\'}':
            found.append(stripped)
    return found


def earlier_drop_in_globals(source):
    """Global lines of the drop-ins logrotate reads before ``source`` in the same directory.

    logrotate (3.21) reads the files of an included directory in name order
    (C locale), skipping its taboo names, and a global directive of one file
    stays in effect for the files read after it.
    """
    directory, name = os.path.split(os.path.abspath(source))
    found = []
    for other in sorted(os.listdir(directory)):
        path = os.path.join(directory, other)
        if other >= name:
            break
        if other.endswith(TABOO_EXTENSIONS) or not os.path.isfile(path):
            continue
        found.extend(_walk(path, None)[0])
    return found


def private_configs(log_path, source, conf_path):
    """Texts of configurations that rotate only ``log_path`` with its stanza from ``source``, the likeliest first.

    The globals in effect for the stanza are those of ``conf_path`` before its
    first include, those of the drop-ins logrotate read before ``source``
    (logrotate 3.21 carries them from one file into the next), and those of
    ``source`` before the stanza. The second text leaves out the other
    drop-ins' globals, for a directory logrotate reads differently (a file it
    skipped, an include nested in a drop-in); logrotate -d decides which one
    reads as the real configuration.
    """
    found = stanza_text(source, log_path)
    if found is None:
        raise RotationError('no stanza of %s names %s' % (source, log_path))
    file_globals, body = found
    main_globals, carried = [], []
    if os.path.realpath(source) != os.path.realpath(conf_path or ''):
        main_globals, carried = conf_globals(conf_path), earlier_drop_in_globals(source)
    quoted = '"%s"' % log_path.replace('"', '\\"')
    stanza = ['%s {' % quoted] + body + ['}', '']
    texts = ['\n'.join(main_globals + carried + file_globals + stanza)]
    if carried:
        texts.append('\n'.join(main_globals + file_globals + stanza))
    return texts


def _reading_of(logrotate, conf):
    sets, dummy, dummy = parse_debug(run_debug(logrotate, [conf]))
    forced, dummy, dummy = parse_debug(run_debug(logrotate, [conf], force=True))
    return sets, forced


def force_rotate(logrotate, log_path, source, conf_path, state_file, expected, check_mode):
    """Force-rotate ``log_path`` with its stanza; returns the action dict. Raises RotationError.

    ``expected``: the log set logrotate reads for the log in the real
    configuration (see logrotate_reading); the private configuration must read
    the same (rotate, criterion, olddir) or nothing is done.
    """
    compared = ('rotate', 'criterion', 'olddir', 'size_bytes')
    with tempfile.TemporaryDirectory(prefix='log-rotation-check-') as private:
        conf = os.path.join(private, 'rotate-one.conf')
        readings = []
        for text in private_configs(log_path, source, conf_path):
            with open(conf, 'w') as handle:
                handle.write(text)
            os.chmod(conf, 0o644)
            sets, dummy = _reading_of(logrotate, conf)
            mine = [s for s in sets if log_path in s['logs']]
            readings.append(', '.join('%s %s' % (k, mine[0][k]) for k in compared) if mine else 'not accepted')
            if mine and all(mine[0][key] == expected[key] for key in compared):
                break
        else:
            raise RotationError(
                'a private copy of the stanza of %s is not read by logrotate as the real configuration reads it (%s; '
                'the copy: %s): the global directives in effect for it could not be reproduced, so nothing was '
                'rotated; rotate it with logrotate -f and the real configuration' % (
                    log_path, ', '.join('%s %s' % (k, expected[k]) for k in compared), ' / '.join(readings)))
        argv = [logrotate, '-f', '-s', state_file, conf]
        action = dict(action='logrotate', log=log_path, path=log_path, config=source, state_file=state_file,
                      command=format_argv(argv[:-1] + ['<private copy of the stanza in %s>' % source]))
        if check_mode:
            action['status'] = 'planned'
            return action
        state_dir = os.path.dirname(os.path.abspath(state_file))
        if not os.path.isdir(state_dir):
            os.makedirs(state_dir, mode=0o755)
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=LOGROTATE_TIMEOUT_S * 10, check=False)
        output = completed.stdout.decode('utf-8', 'replace').strip()
        if completed.returncode != 0:
            raise RotationError('logrotate -f exited %d: %s' % (completed.returncode, output[-500:]))
        action['status'] = 'done'
        return action

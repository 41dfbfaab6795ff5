# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation is logrotate's job: force-rotate one log with the stanza that covers it.

logrotate has no "rotate only this log" option, and ``logrotate -f FILE``
rotates every log of FILE. So the stanza that covers the log is copied into a
private configuration of its own, its patterns replaced by the one log, with
the global directives that precede it (those of the main configuration before
its first ``include``, and those of the stanza's file before the stanza).
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


class RotationError(Exception):
    """logrotate could not (or would not faithfully) rotate the log; said in operator words."""


def _read(path):
    with open(path, encoding='utf-8', errors='replace') as handle:
        return handle.read().replace('\r\n', '\n').split('\n')


def stanza_text(source, log_path):
    """(global lines before the stanza, stanza body lines) of the stanza of ``source`` that names ``log_path``, or None."""
    real = os.path.realpath(log_path)
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
                if pattern_matches(header, real):
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
    return None


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


def private_config(log_path, source, conf_path):
    """Text of a configuration that rotates only ``log_path``, with its stanza from ``source``."""
    found = stanza_text(source, log_path)
    if found is None:
        raise RotationError('no stanza of %s names %s' % (source, log_path))
    file_globals, body = found
    globals_lines = (conf_globals(conf_path) if os.path.realpath(source) != os.path.realpath(conf_path or '') else [])
    quoted = '"%s"' % log_path.replace('"', '\\"')
    return '\n'.join(globals_lines + file_globals + ['%s {' % quoted] + body + ['}', ''])


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
    text = private_config(log_path, source, conf_path)
    with tempfile.TemporaryDirectory(prefix='log-rotation-check-') as private:
        conf = os.path.join(private, 'rotate-one.conf')
        with open(conf, 'w') as handle:
            handle.write(text)
        os.chmod(conf, 0o644)
        sets, dummy = _reading_of(logrotate, conf)
        mine = [s for s in sets if log_path in s['logs']]
        compared = ('rotate', 'criterion', 'olddir', 'size_bytes')
        if not mine or any(mine[0][key] != expected[key] for key in compared):
            raise RotationError('logrotate reads the stanza of %s differently on its own (%s); rotate it with '
                                'logrotate -f %s' % (log_path, ', '.join('%s %s' % (k, mine[0][k]) for k in compared)
                                                     if mine else 'not accepted', source))
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

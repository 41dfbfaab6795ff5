# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""logrotate configuration as the audit reads it: stanzas, the stanza covering a log, how it differs from the policy."""

from __future__ import annotations

import glob
import os
import re

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import parse_size


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

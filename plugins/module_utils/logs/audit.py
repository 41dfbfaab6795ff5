# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One log against its rotation policy: size, versions, age, compression, and the logrotate stanza covering it."""

from __future__ import annotations

import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import format_size, parse_size
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_config import policy_differences, stanza_for
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_reading import LogrotateReading, directives_for
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.versions import list_versions, version_rule


class PolicyError(ValueError):
    """A policy value that cannot be applied (said in the module's option names)."""


def resolve_policy(given, defaults):
    """Validated policy with max_size in bytes and ``defaults`` filled in; raises PolicyError."""
    policy = dict(given)
    for key, spec in defaults.items():
        if policy.get(key) is None and 'default' in spec:
            policy[key] = spec['default']
    try:
        policy['max_size_bytes'] = parse_size(policy['max_size']) if policy.get('max_size') is not None else None
    except ValueError as exc:
        raise PolicyError('policy.max_size: %s; nothing was read or changed' % exc) from exc
    if policy['keep'] < 0:
        raise PolicyError('policy.keep is %d: give how many rotated versions to keep (0 or more); nothing was read or changed'
                          % policy['keep'])
    if policy.get('max_age_days') is not None and policy['max_age_days'] < 0:
        raise PolicyError('policy.max_age_days is %d: give a number of days (0 or more); nothing was read or changed'
                          % policy['max_age_days'])
    return policy


def violation(code, message):
    return dict(code=code, message=message)


def audit_log(path, policy, logrotate=None, now=None):
    """One entry of ``logs``: sizes, versions and violations of one log against ``policy``.

    ``logrotate``: a :class:`LogrotateReading` (logrotate's own reading), a
    list of stanzas of the collection's parser (logrotate not installed), or
    None (not checked).
    """
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
    found, rule = _logrotate_findings(entry, path, policy, logrotate)
    try:
        versions = list_versions(path, policy['rotated_pattern'], now, rule)
    except OSError as exc:
        entry['violations'].append(violation('unreadable', 'directory of rotated versions of %s cannot be listed: %s'
                                             % (path, exc.strerror or exc)))
        versions = []
    entry['versions'] = [dict((k, v[k]) for k in ('name', 'size_bytes', 'age_days')) for v in versions]
    entry['_version_paths'] = [v['path'] for v in versions]  # newest first, for the scan; not in the result
    entry['rotated_versions'] = len(versions)
    entry['versions_bytes'] = sum(v['size_bytes'] for v in versions)
    if versions:
        entry['oldest_version_age_days'] = max(v['age_days'] for v in versions)
    limit = policy['max_size_bytes']
    if limit is not None and st.st_size > limit:
        entry['violations'].append(violation('oversized', '%s is %d bytes, over max_size %s (%d bytes)'
                                             % (path, st.st_size, policy['max_size'], limit)))
    entry['violations'] += _version_findings(versions, policy) + found
    return entry


def _version_findings(versions, policy):
    found = []
    if len(versions) > policy['keep']:
        extra = [v['name'] for v in versions[policy['keep']:]]
        found.append(violation('too_many_versions', '%d rotated versions, keep is %d: %s'
                               % (len(versions), policy['keep'], ', '.join(extra))))
    if policy['compress']:
        skip = 1 if policy['delay_compress'] else 0
        plain = [v['name'] for v in versions[skip:] if not v['compressed']]
        if plain:
            found.append(violation('uncompressed_version', 'not compressed: %s' % ', '.join(plain)))
    if policy['max_age_days'] is not None:
        old = [v['name'] for v in versions if v['age_days'] > policy['max_age_days']]
        if old:
            found.append(violation('expired_version', 'older than %d days: %s' % (policy['max_age_days'], ', '.join(old))))
    return found


def _logrotate_findings(entry, path, policy, logrotate):
    """(violations, version rule) of ``path`` against the logrotate configuration; sets logrotate_config."""
    if logrotate is None:
        return [], None
    if isinstance(logrotate, LogrotateReading):
        directives, source, plan, rejection = directives_for(logrotate, path)
    else:
        (directives, source), plan, rejection = stanza_for(path, logrotate), None, None
    entry['logrotate_config'] = source
    if directives is None and rejection:
        return [violation('invalid_logrotate_policy', 'logrotate rejects the stanza for %s: %s' % (path, rejection))], None
    if directives is None:
        return [violation('no_logrotate_policy', 'no logrotate stanza covers %s' % path)], None
    entry['logrotate'] = dict((k, v) for k, v in directives.items() if v is not None)
    differences = policy_differences(directives, policy)
    found = [violation('policy_mismatch', '%s: %s' % (source or 'logrotate', '; '.join(differences)))] if differences else []
    return found, version_rule(path, plan)


GHOSTS_NAMED = 3  # holders named in the summary, the largest first


def summarize(logs, unmatched, ghosts, errors, actions, bytes_scanned, check_mode):
    codes = {}
    for entry in logs:
        for item in entry['violations']:
            codes[item['code']] = codes.get(item['code'], 0) + 1
    parts = ['%d log%s' % (len(logs), '' if len(logs) == 1 else 's')]
    total = sum(codes.values())
    parts[0] += ', %d violation%s%s' % (total, '' if total == 1 else 's', ' (%s)' % ', '.join(
        '%s %d' % item for item in sorted(codes.items())) if codes else '')
    if unmatched:
        parts.append('%d path%s matched nothing' % (len(unmatched), '' if len(unmatched) == 1 else 's'))
    if ghosts:
        # The summary is what the maintenance log shows: name the holders, so the operator knows what to restart.
        named = sorted(ghosts, key=lambda g: -g['bytes_held'])[:GHOSTS_NAMED]
        holders = ', '.join('pid %d %s fd %d: %s %s' % (g['pid'], g['process'], g['fd'], g['path'],
                                                        format_size(g['bytes_held'])) for g in named)
        more = ' and %d more' % (len(ghosts) - len(named)) if len(ghosts) > len(named) else ''
        parts.append('%d ghost handle%s holding %s (%s%s)' % (len(ghosts), '' if len(ghosts) == 1 else 's',
                                                              format_size(sum(g['bytes_held'] for g in ghosts)),
                                                              holders, more))
    if errors:
        parts.append('%d error events (%d tracebacks) in %s read'
                     % (errors['events'], errors['tracebacks'], format_size(bytes_scanned)))
    if actions:
        done = sum(1 for a in actions if a['status'] == 'done')
        failed = sum(1 for a in actions if a['status'] == 'failed')
        parts.append('%d action%s %s%s' % (len(actions), '' if len(actions) == 1 else 's',
                                           'planned' if check_mode else 'done' if not failed else 'run: %d done' % done,
                                           ', %d FAILED' % failed if failed else ''))
    return '; '.join(parts)

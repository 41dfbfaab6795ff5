# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security audit run: options checked, file checks under the application root, fixes applied, summary.

The checks themselves live by concern: :mod:`.content` (secrets in files),
:mod:`.permissions` (modes and the safe fixes), :mod:`.exposure` (Docker),
:mod:`.access` (PostgreSQL roles and logins).
"""

from __future__ import annotations

import os
import stat

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import format_size
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.access import table_identifier
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.content import (
    compile_patterns,
    read_for_scan,
    scan_text,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import (
    FILE_CHECKS,
    SEVERITIES,
    AuditConfigError,
    finding,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.permissions import (
    SECRET_FILE_MODES,
    apply_fix,
    matches_any,
    secret_file_finding,
    walk,
    world_writable_finding,
)

DEFAULT_SECRET_FILE_PATTERNS = ['.env', '.env.*', '*.env', '*.pem', '*.key', 'id_rsa', 'id_dsa', 'id_ecdsa',
                                'id_ed25519', '*.p12', '*.pfx', '.pgpass', '.netrc', '.htpasswd']
DEFAULT_SECRET_FILE_EXCLUDE = ['*.example', '*.sample', '*.dist', '*.template']
DEFAULT_SCAN_EXCLUDE_DIRS = ['.git', '.hg', '.svn', 'node_modules', '__pycache__', '.venv', 'venv', '.tox']
DEFAULT_SCAN_EXCLUDE_FILES = ['*.lock', 'package-lock.json', '*.min.js', '*.map', '*.svg']


def check_options(params):
    """Reject bad values before any check runs (AuditConfigError); return the compiled scan patterns."""
    root = params['app_root']
    if root:
        if not os.path.exists(root):
            raise AuditConfigError('app_root %s does not exist: set app_root to the application directory' % root)
        if not os.path.isdir(root):
            raise AuditConfigError('app_root %s is not a directory: set app_root to the application directory' % root)
        if os.path.realpath(root) == '/':
            raise AuditConfigError('app_root %s is the root of the filesystem: set app_root to the application '
                                   'directory, the audit never walks (or fixes) the whole system' % root)
    if params['scan_max_file_bytes'] < 1:
        raise AuditConfigError('scan_max_file_bytes must be at least 1 (got %d)' % params['scan_max_file_bytes'])
    if not 0 < params['entropy_threshold'] <= 8:
        raise AuditConfigError('entropy_threshold must be above 0 and at most 8 bits per character (got %s)'
                               % params['entropy_threshold'])
    if params['stale_days'] < 1:
        raise AuditConfigError('stale_days must be at least 1 (got %d)' % params['stale_days'])
    if params['last_login_query'] is not None and not params['last_login_query'].strip():
        raise AuditConfigError('last_login_query is empty: give a query returning (login name, last login) '
                               'or leave the option out')
    if params['last_login_table']:
        table_identifier(params['last_login_table'])
    return compile_patterns(params['builtin_patterns'], params['scan_patterns'])


def audit_tree(root, checks, options, patterns):
    """Run the file checks under ``root``; return (findings, stats, errors)."""
    findings = []
    errors = []
    stats = dict(dirs_checked=0, files_checked=0, files_scanned=0, bytes_scanned=0,
                 files_skipped_binary=0, files_skipped_large=0)
    scan = 'secret_scan' in checks and patterns
    excluded_dirs = set()
    for path, info in walk(root, errors):
        if stat.S_ISDIR(info.st_mode):
            stats['dirs_checked'] += 1
            if path != root and (os.path.basename(path) in options['scan_exclude_dirs']
                                 or os.path.dirname(path) in excluded_dirs):
                excluded_dirs.add(path)
            if 'world_writable_dirs' in checks and info.st_mode & 0o002:
                findings.append(world_writable_finding(path, info))
            continue
        stats['files_checked'] += 1
        name = os.path.basename(path)
        if matches_any(name, options['secret_file_patterns']) and not matches_any(name, options['secret_file_exclude']):
            # Secret files are meant to hold secrets: their mode matters, not their content.
            if 'secret_files' in checks and stat.S_IMODE(info.st_mode) not in SECRET_FILE_MODES:
                findings.append(secret_file_finding(path, info))
            continue
        if not scan or os.path.dirname(path) in excluded_dirs or matches_any(name, options['scan_exclude_files']):
            continue
        if info.st_size > options['scan_max_file_bytes']:
            stats['files_skipped_large'] += 1
            continue
        try:
            text, size, skipped = read_for_scan(path, options['scan_max_file_bytes'])
        except OSError as exc:
            errors.append(dict(path=path, error=exc.strerror or str(exc)))
            continue
        if skipped:
            stats['files_skipped_' + skipped] += 1
            continue
        stats['files_scanned'] += 1
        stats['bytes_scanned'] += size
        readable = bool(info.st_mode & 0o004)
        for number, pattern, excerpt in scan_text(text, patterns, options['entropy_threshold']):
            findings.append(finding(
                'hardcoded_secret', 'high',
                '%s:%d: %s found in the file%s: move it to a secret file (0600) or a vault and rotate it'
                % (path, number, pattern, ', which every user can read' if readable else ''),
                path=path, line=number, pattern=pattern, excerpt=excerpt, world_readable=readable))
    return findings, stats, errors


def file_checks(params, checks, patterns, status, notes):
    """(findings, stats) of the file checks asked for, or a note when there is no app_root."""
    wanted = [name for name in FILE_CHECKS if name in checks]
    if not wanted:
        return [], {}
    if not params['app_root']:
        for name in wanted:
            status[name] = 'skipped'
        notes.append('no app_root given: %s skipped' % ', '.join(wanted))
        return [], {}
    found, stats, errors = audit_tree(params['app_root'], wanted, params, patterns)
    notes.extend('%s cannot be read: %s' % (e['path'], e['error']) for e in errors)
    return found, stats


def apply_fixes(findings, params, check_mode, executed):
    """Apply (or plan, in check mode) the fix of every fixable finding; return (changed, diff, failures)."""
    before, after = [], []
    changed = False
    failures = 0
    for entry in findings:
        fix = entry.pop('_fix', None)
        if fix is None or not params['fix']:
            continue
        before.append('%s %04o\n' % (fix['path'], fix['mode']))
        after.append('%s %04o\n' % (fix['path'], fix['target']))
        if check_mode:
            entry['status'] = 'planned'
            changed = True
            continue
        error = apply_fix(fix)
        if error:
            entry['status'] = 'failed'
            entry['error'] = error
            failures += 1
        else:
            entry['status'] = 'fixed'
            changed = True
            executed.append('chmod %04o %s' % (fix['target'], fix['path']))
    header = 'modes under %s' % params['app_root']
    return changed, dict(before=''.join(before), after=''.join(after), before_header=header, after_header=header), failures


def summarize(params, findings, counts, stats, status):
    """The one-line summary for the maintenance log."""
    total = len(findings)
    parts = ['security audit: %d finding%s%s' % (
        total, '' if total == 1 else 's',
        ' (%s)' % ', '.join('%d %s' % (counts[s], s) for s in SEVERITIES if counts[s]) if total else '')]
    for state in ('fixed', 'planned', 'failed'):
        number = sum(1 for f in findings if f['status'] == state)
        if number:
            parts[0] += ', %d %s' % (number, 'fix FAILED' if state == 'failed' else 'fix planned' if state == 'planned'
                                     else state)
    if stats:
        parts.append('%d files scanned (%s) under %s' % (stats['files_scanned'], format_size(stats['bytes_scanned']),
                                                         params['app_root']))
    skipped = [name for name, state in status.items() if state == 'skipped']
    if skipped:
        parts.append('skipped: %s' % ', '.join(skipped))
    return '; '.join(parts)


def metrics_of(findings, counts, stats, duration_ms):
    """Flat numbers for the report."""
    metrics = dict(duration_ms=duration_ms, findings_total=len(findings),
                   fixes_applied_count=sum(1 for f in findings if f['status'] == 'fixed'))
    metrics.update(('findings_%s' % severity, counts[severity]) for severity in SEVERITIES)
    metrics.update(stats)
    return metrics

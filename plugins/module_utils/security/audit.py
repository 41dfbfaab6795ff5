# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security audit run: options checked, file checks under the application root, fixes applied, summary.

The checks themselves live by concern: :mod:`.content` (secrets in files),
:mod:`.permissions` (modes and the safe fixes), :mod:`.exposure` (Docker),
:mod:`.access` (PostgreSQL roles and logins).
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import format_size
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.access import table_identifier
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.content import (
    DETECT_SECRETS_REQUIREMENT,
    SecretScanner,
    compile_patterns,
    read_for_scan,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import (
    FILE_CHECKS,
    SEVERITIES,
    AuditConfigError,
    finding,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.permissions import (
    apply_fix,
    fix_refusal,
    matches_any,
    outside_link_finding,
    owner_finding,
    secret_file_finding,
    special_bit_findings,
    special_file_finding,
    walk,
    world_writable_finding,
)

DEFAULT_SECRET_FILE_PATTERNS = ['.env', '.env.*', '*.env', '*.pem', '*.key', 'id_rsa', 'id_dsa', 'id_ecdsa',
                                'id_ed25519', '*.p12', '*.pfx', '.pgpass', '.netrc', '.htpasswd']
DEFAULT_SECRET_FILE_EXCLUDE = ['*.example', '*.sample', '*.dist', '*.template']
DEFAULT_SCAN_EXCLUDE_DIRS = ['.git', '.hg', '.svn', 'node_modules', '__pycache__', '.venv', 'venv', '.tox']
DEFAULT_SCAN_EXCLUDE_FILES = ['*.lock', 'package-lock.json', '*.min.js', '*.map', '*.svg']


def check_options(params):
    """Reject bad values before any check runs (AuditConfigError); return (app root resolved, notes)."""
    root = params['app_root']
    notes = []
    if root:
        if not os.path.lexists(root):
            raise AuditConfigError('app_root %s does not exist: set app_root to the application directory' % root)
        if not os.path.isdir(root):
            raise AuditConfigError('app_root %s is not a directory: set app_root to the application directory' % root)
        resolved = os.path.realpath(root)
        if resolved == '/':
            raise AuditConfigError('app_root %s is the root of the filesystem: set app_root to the application '
                                   'directory, the audit never walks (or fixes) the whole system' % root)
        if resolved != os.path.abspath(root):
            notes.append('app_root %s is a symbolic link (or lies under one): %s audited' % (root, resolved))
        root = resolved
    for name in ('scan_max_file_bytes', 'scan_max_total_bytes'):
        if params[name] < 1:
            raise AuditConfigError('%s must be at least 1 (got %d)' % (name, params[name]))
    for name in ('scan_max_seconds', 'scan_max_file_seconds'):
        if params[name] <= 0:
            raise AuditConfigError('%s must be above 0 seconds (got %s)' % (name, params[name]))
    if params['stale_days'] < 1:
        raise AuditConfigError('stale_days must be at least 1 (got %d)' % params['stale_days'])
    if params['last_login_query'] is not None and not params['last_login_query'].strip():
        raise AuditConfigError('last_login_query is empty: give a query returning (login name, last login) '
                               'or leave the option out')
    if params['last_login_table']:
        table_identifier(params['last_login_table'])
    compile_patterns(params['scan_patterns'])
    load_baseline(params['baseline'])
    return root, notes


def expected_uids(names, root):
    """uids allowed to own files: ``names`` (user names or numbers), or root and the owner of the app root."""
    if not names:
        return set((0, os.stat(root).st_uid))
    uids = set()
    for name in names:
        if str(name).isdigit():
            uids.add(int(name))
            continue
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            raise AuditConfigError('expected_owners: no user %r on this host: give existing user names or uids' % name) from None
    return uids


class TreeAudit:
    """The file checks over one walk of the tree, within the per-file and per-run bounds."""

    def __init__(self, root, checks, options, scanner, baseline):
        self.root = root
        self.checks = checks
        self.options = options
        self.scanner = scanner
        self.baseline = baseline
        self.findings = []
        self.errors = []
        self.excluded_dirs = set()
        self.owners = expected_uids(options['expected_owners'], root) if 'file_permissions' in checks else set()
        self.stats = dict(dirs_checked=0, files_checked=0, files_scanned=0, bytes_scanned=0, files_skipped_binary=0,
                          files_skipped_large=0, files_skipped_budget=0, files_cut_short=0, special_files=0,
                          links_checked=0, findings_accepted=0, scan_seconds=0.0, slowest_file_ms=0.0)
        self.deadline = time.monotonic() + options['scan_max_seconds']

    def run(self):
        for path, info in walk(self.root, self.errors):
            if stat.S_ISLNK(info.st_mode):
                self.stats['links_checked'] += 1
                self.add('file_permissions', outside_link_finding(path, self.root))
            elif stat.S_ISDIR(info.st_mode):
                self.directory(path, info)
            elif stat.S_ISREG(info.st_mode):
                self.regular_file(path, info)
            else:
                self.stats['special_files'] += 1
                self.add('file_permissions', special_file_finding(path, info))
        self.stats['scan_seconds'] = round(self.stats['scan_seconds'], 3)
        return self.findings, self.stats, self.errors

    def add(self, check, entry):
        if entry is not None and check in self.checks:
            self.findings.append(entry)

    def directory(self, path, info):
        self.stats['dirs_checked'] += 1
        if path != self.root and (os.path.basename(path) in self.options['scan_exclude_dirs']
                                  or os.path.dirname(path) in self.excluded_dirs):
            self.excluded_dirs.add(path)
        if info.st_mode & 0o002:
            self.add('world_writable_dirs', world_writable_finding(path, info, True))
        self.add('file_permissions', owner_finding(path, info, self.owners))

    def regular_file(self, path, info):
        self.stats['files_checked'] += 1
        name = os.path.basename(path)
        self.add('file_permissions', owner_finding(path, info, self.owners))
        for entry in special_bit_findings(path, info):
            self.add('file_permissions', entry)
        options = self.options
        if matches_any(name, options['secret_file_patterns']) and not matches_any(name, options['secret_file_exclude']):
            # Secret files are meant to hold secrets: their mode matters, not their content.
            self.add('secret_files', secret_file_finding(path, info))
            return
        if info.st_mode & 0o002:
            self.add('file_permissions', world_writable_finding(path, info, False))
        if ('secret_scan' not in self.checks or os.path.dirname(path) in self.excluded_dirs
                or matches_any(name, options['scan_exclude_files'])):
            return
        if info.st_size > options['scan_max_file_bytes']:
            self.stats['files_skipped_large'] += 1
            self.errors.append(dict(path=path, error='not scanned: %s, above scan_max_file_bytes (%s)' % (
                format_size(info.st_size), format_size(options['scan_max_file_bytes']))))
            return
        if time.monotonic() > self.deadline or self.stats['bytes_scanned'] + info.st_size > options['scan_max_total_bytes']:
            self.stats['files_skipped_budget'] += 1
            return
        self.scan(path, info)

    def scan(self, path, info):
        started = time.monotonic()
        try:
            text, size, skipped = read_regular_file(path, info, self.options['scan_max_file_bytes'])
        except OSError as exc:
            self.errors.append(dict(path=path, error=('vanished during the scan' if isinstance(exc, FileNotFoundError)
                                                      else exc.strerror or str(exc))))
            return
        if skipped:
            self.stats['files_skipped_' + skipped] += 1
            return
        self.stats['files_scanned'] += 1
        self.stats['bytes_scanned'] += size
        deadline = min(self.deadline, started + self.options['scan_max_file_seconds'])
        hits, complete = self.scanner.scan(path, text, deadline)
        if not complete:
            self.stats['files_cut_short'] += 1
            self.errors.append(dict(path=path, error='scan cut short by the time bound (scan_max_file_seconds %s, '
                                    'scan_max_seconds %s)' % (self.options['scan_max_file_seconds'],
                                                              self.options['scan_max_seconds'])))
        readable = bool(info.st_mode & 0o004)
        for hit in hits:
            if hit['fingerprint'] in self.baseline or hit['sha1'] in self.baseline:
                self.stats['findings_accepted'] += 1
                continue
            self.findings.append(finding(
                'hardcoded_secret', 'high',
                '%s:%d: %s found in the file%s (fingerprint %s): move it to a secret file (0600) or a vault and rotate '
                'it, or accept it in the baseline' % (path, hit['line'], hit['kind'],
                                                      ', which every user can read' if readable else '', hit['fingerprint']),
                path=path, line=hit['line'], kind=hit['kind'], fingerprint=hit['fingerprint'], world_readable=readable))
        spent = time.monotonic() - started
        self.stats['scan_seconds'] += spent
        self.stats['slowest_file_ms'] = max(self.stats['slowest_file_ms'], round(spent * 1000, 1))


def read_regular_file(path, info, max_bytes):
    """Open without following links or blocking (a FIFO swapped in), check it is the file the walk saw, read it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            raise FileNotFoundError(2, 'replaced during the scan')
        return read_for_scan(fd, max_bytes)
    finally:
        os.close(fd)


def load_baseline(path):
    """Accepted fingerprints from ``path``: a JSON list, {"fingerprints": [...]}, or a detect-secrets baseline."""
    if not path:
        return frozenset()
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (OSError, ValueError) as exc:
        raise AuditConfigError('baseline %s cannot be read: %s: give a JSON list of fingerprints, '
                               '{"fingerprints": [...]}, or a detect-secrets baseline' % (
                                   path, getattr(exc, 'strerror', None) or exc)) from None
    if isinstance(data, dict) and isinstance(data.get('results'), dict):
        entries = [item.get('hashed_secret') for items in data['results'].values() if isinstance(items, list)
                   for item in items if isinstance(item, dict)]
    else:
        entries = data.get('fingerprints') if isinstance(data, dict) else data
        if isinstance(entries, list):
            entries = [item.get('fingerprint') if isinstance(item, dict) else item for item in entries]
    if not isinstance(entries, list) or not all(isinstance(item, str) and item for item in entries):
        raise AuditConfigError('baseline %s is not a baseline: give a JSON list of fingerprints, {"fingerprints": '
                               '[...]} (strings, or objects with a "fingerprint"), or a detect-secrets baseline' % path)
    return frozenset(entries)


def file_checks(params, root, checks, status, notes):
    """(findings, stats) of the file checks asked for, or a note when there is no app_root."""
    wanted = [name for name in FILE_CHECKS if name in checks]
    if not wanted:
        return [], {}
    if not root:
        for name in wanted:
            status[name] = 'skipped'
        notes.append('no app_root given: %s skipped' % ', '.join(wanted))
        return [], {}
    baseline = load_baseline(params['baseline'])
    found = []
    with SecretScanner(params['scan_patterns']) as scanner:
        if 'secret_scan' in wanted and not scanner.available:
            found.append(finding('secret_scanner_unavailable', 'medium', 'detect-secrets is not installed on this host '
                                 '(pip install %s): only the collection\'s own rules (private keys, database URLs, '
                                 '.pgpass lines, scan_patterns) ran, most secret kinds were not looked for'
                                 % DETECT_SECRETS_REQUIREMENT, object='scanner:detect-secrets'))
        more, stats, errors = TreeAudit(root, wanted, params, scanner, baseline).run()
    notes.extend('%s: %s' % (e['path'], e['error']) for e in errors)
    if stats['files_skipped_budget']:
        notes.append('%d files not scanned: the run reached scan_max_total_bytes (%s) or scan_max_seconds (%s)' % (
            stats['files_skipped_budget'], format_size(params['scan_max_total_bytes']), params['scan_max_seconds']))
    return found + more, stats


def apply_fixes(findings, params, check_mode, executed):
    """Apply (or plan, in check mode) the fix of every fixable finding; return (changed, diff, failures).

    A fix the audit will not make (hard links, another owner) is reported with status ``skipped`` and its reason.
    """
    before, after = [], []
    changed = False
    failures = 0
    for entry in findings:
        fix = entry.pop('_fix', None)
        if fix is None or not params['fix']:
            continue
        refusal = fix_refusal(fix, os.geteuid())
        if not refusal:
            before.append('%s %04o\n' % (fix['path'], fix['mode']))
            after.append('%s %04o\n' % (fix['path'], fix['target']))
            if check_mode:
                entry['status'] = 'planned'
                changed = True
                continue
            error, refusal = apply_fix(fix)
            if error:
                entry.update(status='failed', error=error)
                failures += 1
                continue
        if refusal:
            entry.update(status='skipped', reason=refusal)
            continue
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
    for state in ('fixed', 'planned', 'skipped', 'failed'):
        number = sum(1 for f in findings if f['status'] == state)
        if number:
            parts[0] += ', %d %s' % (number, dict(failed='fix FAILED', planned='fix planned',
                                                  skipped='fix left to the operator').get(state, state))
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

"""The file checks on real trees: modes judged by their bits, fixes that only remove access, links, special files, bounds."""

from __future__ import annotations

import os
import pwd
import stat

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.security import audit as audit_module
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.audit import (
    TreeAudit,
    apply_fixes,
    check_options,
    load_baseline,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.content import SecretScanner
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import AuditConfigError
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.permissions import apply_fix, walk

ALL_FILE_CHECKS = ('secret_files', 'world_writable_dirs', 'file_permissions', 'secret_scan')
OPTIONS = dict(scan_exclude_dirs=['node_modules'], scan_exclude_files=['*.lock'], scan_max_file_bytes=1024,
               scan_max_total_bytes=1 << 30, scan_max_seconds=60.0, scan_max_file_seconds=10.0,
               secret_file_patterns=['.env', '*.pem'], secret_file_exclude=['*.example'], expected_owners=[],
               scan_patterns=[], fix=True, app_root=None)
PASSWORD_LINE = 'password = "Tr0ub4dor3xyzQ"\n'


def audit(root, checks=ALL_FILE_CHECKS, baseline=frozenset(), **options):
    with SecretScanner([]) as scanner:
        return TreeAudit(str(root), checks, dict(OPTIONS, **options), scanner, baseline).run()


def codes(findings, root):
    return [(f['code'], os.path.relpath(f.get('path', str(root)), str(root))) for f in findings]


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


@pytest.mark.parametrize('bits, code, target', [
    (0o644, 'secret_file_world_readable', '0600'),
    (0o444, 'secret_file_world_readable', '0400'),
    (0o640, 'secret_file_mode', '0600'),
    (0o602, 'secret_file_mode', '0600'),
    (0o660, 'secret_file_mode', '0600'),
    (0o751, 'secret_file_mode', '0700'),
])
def test_secret_file_open_to_group_or_others_loses_only_those_bits(tmp_path, bits, code, target):
    path = tmp_path / '.env'
    path.write_text('A=1\n')
    os.chmod(str(path), bits)
    (found,), dummy, dummy = audit(tmp_path, ('secret_files',))
    assert (found['code'], found['fix']) == (code, 'chmod %s' % target)
    assert apply_fix(found['_fix']) == (None, None)
    assert mode(path) == int(target, 8) and int(target, 8) & ~bits == 0     # nothing added
    assert audit(tmp_path, ('secret_files',))[0] == []                     # idempotent


@pytest.mark.parametrize('bits', [0o600, 0o400, 0o700, 0o200, 0o000, 0o500])
def test_secret_file_with_no_group_or_other_bit_is_not_open(tmp_path, bits):
    path = tmp_path / 'key.pem'
    path.write_text('x\n')
    os.chmod(str(path), bits)
    assert audit(tmp_path, ('secret_files',))[0] == []


def test_world_writable_files_and_dirs_setuid_setgid_and_sticky(tmp_path):
    (tmp_path / 'shared').mkdir()
    (tmp_path / 'tmp').mkdir()
    (tmp_path / 'run.sh').write_text('#!/bin/sh\n')
    (tmp_path / 'helper').write_text('x\n')
    (tmp_path / 'notes.txt').write_text('x\n')
    os.chmod(str(tmp_path / 'shared'), 0o777)
    os.chmod(str(tmp_path / 'tmp'), 0o1777)
    os.chmod(str(tmp_path / 'run.sh'), 0o4755)
    os.chmod(str(tmp_path / 'helper'), 0o2755)
    os.chmod(str(tmp_path / 'notes.txt'), 0o666)
    os.chmod(str(tmp_path), 0o755)
    findings, dummy, dummy = audit(tmp_path)
    assert sorted(codes(findings, tmp_path)) == [
        ('setgid_file', 'helper'), ('setuid_file', 'run.sh'), ('world_writable_dir', 'shared'),
        ('world_writable_dir', 'tmp'), ('world_writable_file', 'notes.txt')]
    by_path = dict((os.path.basename(f['path']), f) for f in findings)
    assert by_path['tmp']['sticky'] is True and by_path['tmp']['severity'] == 'medium' and 'sticky' in by_path['tmp']['message']
    assert by_path['shared']['severity'] == 'high' and by_path['shared']['fix'] == 'chmod 0775'
    assert by_path['notes.txt']['fix'] == 'chmod 0664'
    assert by_path['run.sh']['fix'] is None and '_fix' not in by_path['run.sh']   # reported, never changed


def test_unexpected_owner_reported(tmp_path):
    nobody = pwd.getpwnam('nobody')
    (tmp_path / 'mine').write_text('x\n')
    (tmp_path / 'theirs').write_text('x\n')
    os.chown(str(tmp_path / 'theirs'), nobody.pw_uid, -1)
    findings, dummy, dummy = audit(tmp_path, ('file_permissions',))
    assert codes(findings, tmp_path) == [('unexpected_owner', 'theirs')]
    assert findings[0]['owner'] == 'nobody'
    assert audit(tmp_path, ('file_permissions',), expected_owners=['root', 'nobody'])[0] == []
    with pytest.raises(AuditConfigError, match="expected_owners: no user 'no-such-user-here'"):
        audit(tmp_path, ('file_permissions',), expected_owners=['no-such-user-here'])


def test_hard_linked_and_foreign_secret_files_are_reported_not_failed(tmp_path):
    path = tmp_path / '.env'
    path.write_text('A=1\n')
    os.chmod(str(path), 0o644)
    os.link(str(path), str(tmp_path / 'elsewhere'))
    for check_mode in (True, False, False):
        findings, dummy, dummy = audit(tmp_path, ('secret_files',))
        executed = []
        changed, diff, failures = apply_fixes(findings, dict(fix=True, app_root=str(tmp_path)), check_mode, executed)
        assert (changed, failures, executed, diff['after']) == (False, 0, [], '')
        assert findings[0]['status'] == 'skipped' and 'has 2 hard links' in findings[0]['reason']
    assert mode(path) == 0o644
    fix = dict(path=str(path), nlink=1, uid=12345, directory=False)
    assert 'belongs to 12345' in audit_module.fix_refusal(fix, 1000)
    assert audit_module.fix_refusal(fix, 0) is None


def test_apply_fix_refuses_a_replaced_file_and_a_planted_symlink(tmp_path):
    path = tmp_path / '.env'
    path.write_text('A=1\n')
    os.chmod(str(path), 0o644)
    (found,), dummy, dummy = audit(tmp_path, ('secret_files',))
    replacement = tmp_path / 'new'
    replacement.write_text('B=2\n')
    os.chmod(str(replacement), 0o644)
    os.replace(str(replacement), str(path))
    assert 'changed since the audit' in apply_fix(found['_fix'])[0]
    (found,), dummy, dummy = audit(tmp_path, ('secret_files',))
    outside = tmp_path.parent / (tmp_path.name + '-outside')
    outside.write_text('x')
    os.chmod(str(outside), 0o644)
    os.unlink(str(path))
    os.symlink(str(outside), str(path))
    assert 'cannot open' in apply_fix(found['_fix'])[0]
    assert mode(outside) == 0o644


def test_links_leaving_the_tree_are_reported_never_followed(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'secret.env').write_text(PASSWORD_LINE)
    os.chmod(str(outside / 'secret.env'), 0o666)
    root = tmp_path / 'root'
    (root / 'sub').mkdir(parents=True)
    (root / 'sub' / 'file').write_text('x')
    os.symlink(str(outside), str(root / 'link-dir'))
    os.symlink('../outside/secret.env', str(root / '.env'))
    os.symlink('sub/file', str(root / 'inside'))
    findings, stats, errors = audit(root)
    assert sorted(codes(findings, root)) == [('symlink_outside_root', '.env'), ('symlink_outside_root', 'link-dir')]
    assert findings[0]['target'] == str(outside / 'secret.env')
    assert stats['links_checked'] == 3 and stats['files_scanned'] == 1 and errors == []


def test_app_root_given_as_a_symlink_is_resolved_once_and_reported(tmp_path):
    real = tmp_path / 'releases' / 'v2'
    real.mkdir(parents=True)
    os.chmod(str(real), 0o777)
    os.symlink(str(real), str(tmp_path / 'current'))
    params = dict(OPTIONS, app_root=str(tmp_path / 'current'), stale_days=90, last_login_query=None, last_login_table=None,
                  baseline=None)
    root, notes = check_options(params)
    assert root == str(real)
    assert notes == ['app_root %s is a symbolic link (or lies under one): %s audited' % (tmp_path / 'current', real)]
    findings, dummy, errors = audit(root)
    assert codes(findings, real) == [('world_writable_dir', '.')] and errors == []
    with pytest.raises(AuditConfigError, match='does not exist'):
        check_options(dict(params, app_root=str(tmp_path / 'missing')))


def test_fifo_and_device_are_reported_never_opened(tmp_path):
    os.mkfifo(str(tmp_path / 'pipe'))                      # opening it for reading would block the run
    os.mknod(str(tmp_path / 'null'), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    (tmp_path / 'ok.py').write_text(PASSWORD_LINE)
    findings, stats, dummy = audit(tmp_path)
    assert sorted((f['code'], f.get('file_type'), f['severity']) for f in findings if f['code'] == 'special_file') == [
        ('special_file', 'FIFO', 'info'), ('special_file', 'device', 'medium')]
    assert stats['special_files'] == 2 and stats['files_scanned'] == 1


def test_vanishing_file_and_unreadable_directory_are_notes(tmp_path, monkeypatch):
    (tmp_path / 'gone.py').write_text(PASSWORD_LINE)
    (tmp_path / 'locked').mkdir()
    (tmp_path / 'locked' / 'inner.py').write_text(PASSWORD_LINE)
    real_walk = audit_module.walk
    real_scandir = os.scandir

    def walk_then_delete(root, errors):
        for path, info in real_walk(root, errors):
            if path.endswith('gone.py'):
                os.unlink(path)                       # deleted between the walk and the read, as by a deploy
            yield path, info

    def scandir(path):
        # As root the kernel lets every directory be read: refuse this one as it would be for the app user.
        if str(path).endswith('locked'):
            raise PermissionError(13, 'Permission denied', str(path))
        return real_scandir(path)
    monkeypatch.setattr(audit_module, 'walk', walk_then_delete)
    monkeypatch.setattr(os, 'scandir', scandir)
    findings, stats, errors = audit(tmp_path)
    assert findings == []
    assert sorted((os.path.basename(e['path']), e['error']) for e in errors) == [
        ('gone.py', 'vanished during the scan'), ('locked', 'Permission denied')]


def test_binary_decided_from_the_first_block(tmp_path):
    (tmp_path / 'random.bin').write_bytes(bytes(range(1, 256)) * 64)    # no NUL byte at all
    (tmp_path / 'late.txt').write_bytes(PASSWORD_LINE.encode() * 400 + b'\0')
    (tmp_path / 'utf8.txt').write_text('# été\n' + PASSWORD_LINE)
    findings, stats, dummy = audit(tmp_path, scan_max_file_bytes=1 << 20)
    assert stats['files_skipped_binary'] == 2
    assert codes(findings, tmp_path) == [('hardcoded_secret', 'utf8.txt')] and findings[0]['line'] == 2


def test_sparse_2gb_single_line_file_is_skipped_by_size_without_reading(tmp_path):
    path = tmp_path / 'dump.json'
    with open(str(path), 'wb') as handle:
        handle.write(b'{"password": "Tr0ub4dor3xyzQ", "pad": "')
        handle.truncate(2 * 1024 ** 3)                    # sparse: 2 GiB, one line, no disk used
    findings, stats, errors = audit(tmp_path, scan_max_file_bytes=1 << 20)
    assert stats['files_skipped_large'] == 1 and stats['bytes_scanned'] == 0
    assert errors == [dict(path=str(path), error='not scanned: 2.0 GiB, above scan_max_file_bytes (1.0 MiB)')]


def test_run_bounds_are_counted_and_long_lines_scanned_in_pieces(tmp_path):
    for number in range(5):
        (tmp_path / ('f%d.py' % number)).write_text(PASSWORD_LINE)
    dummy, stats, dummy = audit(tmp_path, scan_max_total_bytes=60)
    assert stats['files_scanned'] == 2 and stats['files_skipped_budget'] == 3
    long_line = tmp_path / 'one-line.json'
    long_line.write_text('{"pad": "%s", "url": "postgres://app:Tr0ub4dor3xyzQ@db/app"}\n' % ('a b ' * 100000))
    findings, stats, dummy = audit(tmp_path, ('secret_scan',), scan_max_file_bytes=1 << 20)
    assert ('hardcoded_secret', 'one-line.json') in codes(findings, tmp_path)
    assert stats['slowest_file_ms'] < 10000


def test_baseline_accepts_by_fingerprint_and_refuses_a_corrupt_file(tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    (app / 'a.py').write_text(PASSWORD_LINE)
    (found,), dummy, dummy = audit(app, ('secret_scan',))
    baseline = tmp_path / 'baseline.json'
    baseline.write_text('{"fingerprints": [{"fingerprint": "%s", "reason": "test fixture"}]}' % found['fingerprint'])
    findings, stats, dummy = audit(app, ('secret_scan',), baseline=load_baseline(str(baseline)))
    assert findings == [] and stats['findings_accepted'] == 1
    baseline.write_text('{"fingerprints": [')
    with pytest.raises(AuditConfigError, match='baseline %s cannot be read' % baseline):
        load_baseline(str(baseline))
    baseline.write_text('{"fingerprints": 3}')
    with pytest.raises(AuditConfigError, match='is not a baseline'):
        load_baseline(str(baseline))
    with pytest.raises(AuditConfigError, match='No such file'):
        load_baseline(str(tmp_path / 'missing.json'))
    assert load_baseline(None) == frozenset()


def test_walk_yields_links_without_following(tmp_path):
    (tmp_path / 'd').mkdir()
    os.symlink('/etc', str(tmp_path / 'etc'))
    errors = []
    assert [os.path.basename(p) for p, dummy in walk(str(tmp_path), errors)] == [tmp_path.name, 'd', 'etc']

"""Pure logic of the security audit: scan patterns and masking, port and access findings, safe fixes."""

from __future__ import annotations

import datetime
import os
import stat

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import MASK
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.access import (
    stale_login_findings,
    superuser_findings,
    table_identifier,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.audit import audit_tree
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.content import (
    BUILTIN_PATTERNS,
    compile_patterns,
    masked_excerpt,
    read_for_scan,
    scan_text,
    shannon_entropy,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.exposure import container_port_findings
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import AuditConfigError
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.permissions import apply_fix, walk

AWS_ID = 'AKIAIOSFODNN7EXAMPLE'
AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
TOKEN = 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg'
ALL = compile_patterns(list(BUILTIN_PATTERNS), [])
OPTIONS = dict(scan_exclude_dirs=['node_modules'], scan_exclude_files=['*.lock'], scan_max_file_bytes=1024,
               entropy_threshold=4.0, secret_file_patterns=['.env', '*.pem'], secret_file_exclude=['*.example'])


def scan(text, patterns=ALL):
    return scan_text(text, patterns, 4.0)


def test_each_builtin_pattern_names_its_line_and_masks_the_secret():
    text = ('x = 1\n'
            'AWS_ACCESS_KEY_ID = "%s"\n'
            'aws_secret_access_key: %s\n'
            '-----BEGIN OPENSSH PRIVATE KEY-----\n'
            'DB_PASSWORD = "hunter22"\n'
            'api = "%s"\n' % (AWS_ID, AWS_SECRET, TOKEN))
    hits = scan(text)
    assert [(line, name) for line, name, dummy in hits] == [
        (2, 'aws_access_key_id'), (3, 'aws_secret_access_key'), (4, 'private_key'),
        (5, 'password_assignment'), (6, 'high_entropy_token')]
    excerpts = [excerpt for dummy, dummy, excerpt in hits]
    assert excerpts == ['AWS_ACCESS_KEY_ID = "AKIA%s"' % MASK, 'aws_secret_access_key: %s' % MASK,
                        '-----BEGIN OPENSSH PRIVATE KEY-----', 'DB_PASSWORD = "%s"' % MASK, 'api = "%s"' % MASK]
    for secret in ('IOSFODNN7EXAMPLE', AWS_SECRET, 'hunter22', TOKEN):
        assert not any(secret in excerpt for excerpt in excerpts)


@pytest.mark.parametrize('line', [
    'password = os.environ["DB_PASSWORD"]',
    'password = "${DB_PASSWORD}"',
    'password: "{{ vault_db_password }}"',
    'md5 = "d41d8cd98f00b204e9800998ecf8427e"',                 # hex: entropy at most 4
    'name = "ThisIsAVeryLongFunctionNameForTheTests"',          # no digit
    'key = "AKIAIOSFODNN7EXAMPL"',                               # one character short
    'password = ""',
])
def test_placeholders_hashes_and_identifiers_are_not_secrets(line):
    assert scan(line + '\n') == []


def test_one_finding_per_line_and_every_secret_on_it_masked():
    line = 'AWS_KEY="%s" password="hunter22" other="%s"' % (AWS_ID, TOKEN)
    hits = scan(line)
    assert len(hits) == 1
    number, name, excerpt = hits[0]
    assert (number, name) == (1, 'aws_access_key_id')
    assert excerpt == 'AWS_KEY="AKIA%s" password="%s" other="%s"' % (MASK, MASK, MASK)


def test_excerpt_is_a_window_around_the_hit_on_a_long_line():
    line = 'a' * 300 + ' password = "hunter22" ' + 'b' * 300
    (dummy, dummy, excerpt), = scan(line)
    assert excerpt.startswith('...') and excerpt.endswith('...')
    assert 'password = "%s"' % MASK in excerpt
    assert len(excerpt) <= 126


def test_masked_excerpt_merges_overlapping_spans():
    assert masked_excerpt('k=abcdefgh', [(2, 6), (4, 10)], 0) == 'k=' + MASK


def test_custom_pattern_masks_its_secret_group_or_the_whole_match():
    patterns = compile_patterns(['private_key'], [dict(name='stripe', regex=r'sk_live_(?P<secret>\w{8,})'),
                                                  dict(name='pin', regex=r'PIN\d{4}')])
    hits = scan('s = "sk_live_abcdefgh12"\np = PIN1234\n', patterns)
    assert hits == [(1, 'stripe', 's = "sk_live_%s"' % MASK), (2, 'pin', 'p = %s' % MASK)]


def test_custom_pattern_comes_before_the_entropy_pattern():
    patterns = compile_patterns(list(BUILTIN_PATTERNS), [dict(name='mine', regex=r'Zm9v\w+')])
    assert [name for name, dummy, dummy in patterns][-2:] == ['mine', 'high_entropy_token']
    assert scan('t = "%s"' % TOKEN, patterns)[0][1] == 'mine'


@pytest.mark.parametrize('custom, message', [
    ([dict(name='bad', regex='(unclosed')], "scan pattern 'bad': regex '(unclosed' does not compile"),
    ([dict(name='x', regex='a'), dict(name='x', regex='b')], "scan pattern name 'x' is used twice"),
    ([dict(name='private_key', regex='a')], "scan pattern name 'private_key' is used twice"),
])
def test_bad_custom_patterns_are_refused(custom, message):
    with pytest.raises(AuditConfigError, match='^' + message.replace('(', r'\(').replace(')', r'\)')):
        compile_patterns(list(BUILTIN_PATTERNS), custom)


def test_entropy_figures():
    assert shannon_entropy('') == 0.0
    assert shannon_entropy('aaaa') == 0.0
    assert shannon_entropy('abcd') == 2.0


def test_read_for_scan_skips_binary_and_large_files(tmp_path):
    (tmp_path / 'bin').write_bytes(b'abc\0def')
    (tmp_path / 'big').write_bytes(b'x' * 11)
    (tmp_path / 'ok').write_bytes('été\n'.encode('utf-8'))
    assert read_for_scan(str(tmp_path / 'bin'), 10) == (None, 7, 'binary')
    assert read_for_scan(str(tmp_path / 'big'), 10) == (None, 11, 'large')
    assert read_for_scan(str(tmp_path / 'ok'), 10) == ('été\n', 6, None)


def test_walk_never_follows_symbolic_links(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'secret.env').write_text('x')
    root = tmp_path / 'root'
    (root / 'sub').mkdir(parents=True)
    (root / 'sub' / 'file').write_text('x')
    os.symlink(str(outside), str(root / 'link-dir'))
    os.symlink(str(outside / 'secret.env'), str(root / '.env'))
    errors = []
    assert [path for path, dummy in walk(str(root), errors)] == [str(root), str(root / 'sub'), str(root / 'sub' / 'file')]
    assert errors == []


def test_audit_tree_modes_scan_and_exclusions(tmp_path):
    root = tmp_path / 'app'
    (root / 'node_modules' / 'deep').mkdir(parents=True)
    (root / 'node_modules' / 'deep' / 'x.js').write_text('password = "hunter22"\n')
    (root / 'yarn.lock').write_text('password = "hunter22"\n')
    (root / 'big.txt').write_text('password = "hunter22"\n' * 100)
    (root / 'blob').write_bytes(b'\0password = "hunter22"\n')
    (root / '.env').write_text('A=1\n')
    os.chmod(str(root / '.env'), 0o640)
    (root / '.env.example').write_text('password = "changeme1"\n')
    (root / 'cert.pem').write_text('-----BEGIN PRIVATE KEY-----\n')
    os.chmod(str(root / 'cert.pem'), 0o400)
    os.chmod(str(root / 'node_modules' / 'deep'), 0o1777)
    findings, stats, errors = audit_tree(str(root), ('secret_files', 'world_writable_dirs', 'secret_scan'),
                                         OPTIONS, ALL)
    assert [(f['code'], os.path.relpath(f['path'], str(root)), f['severity']) for f in findings] == [
        ('secret_file_mode', '.env', 'medium'),
        ('hardcoded_secret', '.env.example', 'high'),
        ('world_writable_dir', 'node_modules/deep', 'medium'),  # sticky: medium
    ]
    assert findings[0]['fix'] == 'chmod 0600' and findings[0]['mode'] == '0640'
    assert findings[2]['fix'] == 'chmod 1775'
    assert stats == dict(dirs_checked=3, files_checked=7, files_scanned=1, bytes_scanned=23,
                         files_skipped_binary=1, files_skipped_large=1)
    assert errors == []


def test_secret_file_without_owner_write_is_fixed_to_0400(tmp_path):
    path = tmp_path / '.env'
    path.write_text('A=1\n')
    os.chmod(str(path), 0o444)
    options = dict(OPTIONS)
    (found,), dummy, dummy = audit_tree(str(tmp_path), ('secret_files',), options, [])
    assert (found['code'], found['fix']) == ('secret_file_world_readable', 'chmod 0400')
    assert apply_fix(found['_fix']) is None
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o400


def test_apply_fix_refuses_a_replaced_file_and_hard_links(tmp_path):
    path = tmp_path / '.env'
    path.write_text('A=1\n')
    os.chmod(str(path), 0o644)
    (found,), dummy, dummy = audit_tree(str(tmp_path), ('secret_files',), OPTIONS, [])
    replacement = tmp_path / 'new'
    replacement.write_text('B=2\n')                    # another inode (the old one still exists) ...
    os.chmod(str(replacement), 0o644)
    os.replace(str(replacement), str(path))            # ... under the same name
    assert 'changed since the audit' in apply_fix(found['_fix'])
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
    (found,), dummy, dummy = audit_tree(str(tmp_path), ('secret_files',), OPTIONS, [])
    os.link(str(path), str(tmp_path / 'other-name'))
    assert 'has 2 hard links' in apply_fix(found['_fix'])
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644


def test_apply_fix_refuses_a_symlink_planted_after_the_audit(tmp_path):
    target = tmp_path / 'outside'
    target.write_text('x')
    os.chmod(str(target), 0o644)
    root = tmp_path / 'app'
    root.mkdir()
    (root / '.env').write_text('A=1\n')
    os.chmod(str(root / '.env'), 0o644)
    (found,), dummy, dummy = audit_tree(str(root), ('secret_files',), OPTIONS, [])
    os.unlink(str(root / '.env'))
    os.symlink(str(target), str(root / '.env'))
    assert 'cannot open' in apply_fix(found['_fix'])
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o644


CONTAINERS = [
    {'Id': 'a' * 64, 'Names': ['/db'], 'Ports': [
        {'IP': '0.0.0.0', 'PrivatePort': 5432, 'PublicPort': 5432, 'Type': 'tcp'},
        {'IP': '::', 'PrivatePort': 5432, 'PublicPort': 5432, 'Type': 'tcp'}]},
    {'Id': 'b' * 64, 'Names': ['/web'], 'Ports': [
        {'IP': '0.0.0.0', 'PrivatePort': 80, 'PublicPort': 80, 'Type': 'tcp'},
        {'IP': '127.0.0.1', 'PrivatePort': 9000, 'PublicPort': 9000, 'Type': 'tcp'},
        {'PrivatePort': 8080, 'Type': 'tcp'}]},
]


def test_container_ports_on_every_interface_are_found_once_per_port():
    found = container_port_findings(CONTAINERS, [80, 443])
    assert [(f['object'], f['port'], f['container_port'], f['addresses']) for f in found] == [
        ('container:db', 5432, '5432/tcp', ['0.0.0.0', '::'])]
    assert found[0]['severity'] == 'high'
    assert [f['object'] for f in container_port_findings(CONTAINERS, [])] == ['container:db', 'container:web']


def test_superusers_not_expected_are_findings():
    superusers, found = superuser_findings([('admin', True), ('postgres', True), ('ops', False)], ['postgres'])
    assert superusers[1] == dict(name='postgres', can_login=True, expected=True)
    assert [(f['object'], f['severity']) for f in found] == [('role:admin', 'medium'), ('role:ops', 'low')]


def test_stale_logins_from_timestamps_dates_and_nulls():
    now = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
    rows = [('alice', now - datetime.timedelta(days=10)),
            ('bob', datetime.datetime(2026, 5, 1, 12, 0)),          # naive: UTC
            ('carol', None),
            ('dave', datetime.date(2026, 8, 25))]
    entries, found = stale_login_findings(rows, 90, now)
    assert [(e['name'], e['days_since'], e['stale']) for e in entries] == [
        ('alice', 10, False), ('bob', 206, True), ('carol', None, True), ('dave', 90, True)]
    assert entries[1]['last_login'] == '2026-05-01T12:00:00Z'
    assert [f['object'] for f in found] == ['user:bob', 'user:carol', 'user:dave']
    assert 'never logged in' in found[1]['message']


def test_stale_logins_refuse_rows_of_the_wrong_shape():
    now = datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(AuditConfigError, match='two columns'):
        stale_login_findings([('alice',)], 90, now)
    with pytest.raises(AuditConfigError, match='not a timestamp'):
        stale_login_findings([('alice', 'yesterday')], 90, now)


def test_table_identifier():
    assert table_identifier('users') == ['users']
    assert table_identifier('app.users') == ['app', 'users']
    for bad in ('a.b.c', '.users', 'app.'):
        with pytest.raises(AuditConfigError):
            table_identifier(bad)


def test_anchored_and_plain_search_find_the_same_hits():
    text = 'İstanbul = 1\nDB_PASSWORD = "hunter22"\nmy_passwd: "abcd1234"\nkey = "%s"\n' % AWS_ID
    expected = [(2, 'password_assignment'), (3, 'password_assignment'), (4, 'aws_access_key_id')]
    assert 'İ'.lower() != 'i'                          # lower-cases to two characters: the plain search runs
    assert [(n, name) for n, name, dummy in scan(text)] == expected
    assert [(n, name) for n, name, dummy in scan(text.replace('İ', 'I'))] == expected   # anchored search

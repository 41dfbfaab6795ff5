"""Pure logic of the log oversight module_utils: sizes, normalisation, tracebacks, cursors, logrotate parsing.

The scanner tests use real files in a temp dir and the real grep; the python
scanner is checked against grep on inputs made to hit its chunk and
long-line boundaries.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs import scan as _logscan
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.audit import audit_log
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.enforcement import plan_log
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_config import parse_logrotate, policy_differences
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.versions import LogPathError, expand_paths, list_versions
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.scan import (
    DEFAULT_PATTERNS,
    Scanner,
    load_state,
    normalise,
    read_traceback,
    save_state,
    split_stamp,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import format_size, parse_duration, parse_size

GREP = shutil.which('grep')
POLICY = dict(max_size='1K', max_size_bytes=1024, keep=2, compress=True, delay_compress=False, max_age_days=None,
              rotated_pattern='auto')


def write(path, data):
    with open(path, 'wb') as handle:
        handle.write(data)
    return path


# --- units -----------------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('5M', 5 * 1024 ** 2), ('512K', 512 * 1024), ('1G', 1024 ** 3), ('100', 100), ('1.5GiB', int(1.5 * 1024 ** 3)),
    ('5mb', 5 * 1024 ** 2), (' 2 T ', 2 * 1024 ** 4), (7, 7),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize('text', ['5X', '', 'M', '-1', '1.2.3K', True, -5])
def test_parse_size_rejects_with_a_hint(text):
    with pytest.raises(ValueError, match='5M, 512K, 1G|negative'):
        parse_size(text)


def test_parse_duration_and_format_size():
    assert parse_duration('24h') == 86400 and parse_duration('7d') == 7 * 86400 and parse_duration(90) == 90
    with pytest.raises(ValueError, match='24h'):
        parse_duration('tomorrow')
    assert format_size(512) == '512 B' and format_size(5 * 1024 ** 2) == '5.0 MiB' and format_size(3 * 1024 ** 4) == '3.0 TiB'


# --- normalisation and timestamps ------------------------------------------------------------

def test_normalise_masks_what_varies():
    one = normalise('ERROR job 12 from 10.0.0.1:80 id 3f2a9c1e-1111-4222-8333-444455556666 0xdeadBEEF at 2026-11-20 10:00:00')
    two = normalise('ERROR job 977 from 192.168.4.20:443 id aaaaaaaa-bbbb-4ccc-8ddd-eeeeffff0000 0x1f at 2026-11-21 11:12:13')
    assert one == two == 'ERROR job <n> from <ip> id <uuid> <hex> at <ts>'
    assert normalise('bad \x00\x01 junk at 12:30:01 fe80::1:2 deadbeef12') == 'bad <bin> junk at <ts> <ip> <hex>'


def test_split_stamp_reads_common_formats_as_utc():
    assert split_stamp('2026-11-20T10:00:00Z ERROR x') == ('2026-11-20T10:00:00Z', 'ERROR x')
    assert split_stamp('[2026-11-20 10:00:00,123] ERROR x') == ('2026-11-20T10:00:00Z', 'ERROR x')
    assert split_stamp('2026-11-20T10:00:00+02:00 ERROR x') == ('2026-11-20T08:00:00Z', 'ERROR x')
    assert split_stamp('Traceback (most recent call last):') == (None, 'Traceback (most recent call last):')


# --- tracebacks --------------------------------------------------------------------------------

CHAINED = (b'2026-11-20T00:00:00Z ERROR boom\n'
           b'Traceback (most recent call last):\n'
           b'  File "a.py", line 1, in f\n'
           b'    x()\n'
           b"KeyError: 'a'\n"
           b'\n'
           b'During handling of the above exception, another exception occurred:\n'
           b'\n'
           b'Traceback (most recent call last):\n'
           b'  File "b.py", line 2, in g\n'
           b'ValueError: second\n'
           b'2026-11-20T00:00:01Z INFO next\n')


def test_chained_traceback_is_one_block(tmp_path):
    path = write(tmp_path / 'app.log', CHAINED)
    with open(path, 'rb') as handle:
        start = CHAINED.index(b'Traceback')
        exception, end = read_traceback(handle, start, b'Traceback (most recent call last):')
    assert exception == b'ValueError: second'
    assert CHAINED[end:] == b'2026-11-20T00:00:01Z INFO next\n'


@pytest.mark.parametrize('grep', [GREP, None], ids=['grep', 'python'])
def test_chained_traceback_counts_once_and_lines_like_grep(tmp_path, monkeypatch, grep):
    monkeypatch.setattr(_logscan, 'SMALL_RANGE_BYTES', 0)  # grep even for this small file
    path = str(write(tmp_path / 'app.log', CHAINED * 3))
    scanner = Scanner(DEFAULT_PATTERNS, grep_path=grep)
    scanner.scan([(path, None, ())])
    assert scanner.files[0]['segments'][0]['scanner'] == ('grep' if grep else 'python')
    result = scanner.review.result(5)
    assert result['counts'] == dict(ERROR=9, CRITICAL=0, FATAL=0, Traceback=6)
    assert result['tracebacks'] == 3
    assert result['events'] == 6  # 3 "ERROR boom" lines and 3 tracebacks
    assert [m['message'] for m in result['top_messages']] == ['ERROR boom', 'Traceback: ValueError: second']


# --- python scanner boundaries against grep ----------------------------------------------------

def test_python_scanner_matches_grep_across_chunk_and_long_line_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(_logscan, 'CHUNK_BYTES', 4096)
    monkeypatch.setattr(_logscan, 'MAX_LINE_BYTES', 1500)
    monkeypatch.setattr(_logscan, 'SMALL_RANGE_BYTES', 0)
    lines = []
    for index in range(400):
        if index % 37 == 0:
            lines.append(b'x' * 3000 + b'ERR' + b'OR' + b'y' * 2000 + b' fatal')  # long line, repeated hits
        elif index % 41 == 0:
            lines.append(b'z' * 5000)  # long line without any pattern: no candidate
        elif index % 11 == 0:
            lines.append(b'%d ERROR short %d' % (index, index))
        elif index % 13 == 0:
            lines.append(b'critical \xff\xfe junk')
        else:
            lines.append(b'%d info' % index + b'.' * (index % 50))
    path = str(write(tmp_path / 'app.log', b'\n'.join(lines) + b'\n'))
    results = []
    for grep in (GREP, None):
        scanner = Scanner(DEFAULT_PATTERNS, grep_path=grep)
        scanner.scan([(path, None, ())])
        results.append(scanner.review.result(3))
    by_grep, by_python = results
    assert by_grep['counts'] == by_python['counts']
    assert by_grep['counts']['ERROR'] == sum(1 for line in lines if b'error' in line.lower())
    assert by_grep['counts']['FATAL'] == sum(1 for line in lines if b'fatal' in line.lower())
    assert by_grep['lines_matched'] == by_python['lines_matched']
    assert by_python['undecodable_lines'] == by_grep['undecodable_lines'] > 0


def test_grep_is_stopped_at_the_end_of_the_range(tmp_path):
    """Lines written after the scan started are left for the next run, and grep must not hang on a full pipe."""
    path = str(write(tmp_path / 'app.log', b'ERROR line\n' * 200000))  # 2.2 MB of matches, far beyond a pipe buffer
    result = []
    worker = threading.Thread(target=lambda: result.append(list(_logscan.grep_candidates(
        GREP, open(path, 'rb'), 0, 110, DEFAULT_PATTERNS, [b'error']))), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), 'grep_candidates hung after the end of its range'
    assert [offset for offset, line, hits in result[0]] == list(range(0, 110, 11))


def test_nothing_new_starts_no_scanner(tmp_path):
    path = str(write(tmp_path / 'app.log', b'ERROR one\n'))
    cursor = Scanner(DEFAULT_PATTERNS, grep_path=GREP, incremental=True).scan([(path, None, ())])[0]
    again = Scanner(DEFAULT_PATTERNS, grep_path=GREP, incremental=True)
    again.scan([(path, cursor, ())])
    assert again.files[0]['segments'] == [dict(path=path, start=10, end=10, scanner='none', lines_matched=0)]
    assert again.bytes_scanned == 0 and again.bytes_skipped == 10


# --- cursors -----------------------------------------------------------------------------------

@pytest.mark.parametrize('content', [b'not json', b'[]', b'{"schema_version": 2, "files": {}}',
                                     b'{"schema_version": 1, "files": {"/x": {"offset": -1}}}',
                                     b'\xff\xfe'])
def test_corrupt_state_is_rebuilt_with_the_reason(tmp_path, content):
    path = write(tmp_path / 'state.json', content)
    files, status, problem = load_state(str(path))
    assert (files, status) == ({}, 'rebuilt') and problem


def test_state_round_trip(tmp_path):
    path = str(tmp_path / 'deeper' / 'state.json')
    cursor = dict(device=1, inode=2, offset=3, absorbed_until=3, fingerprint='ab')
    save_state(path, {'/var/log/app.log': cursor})
    assert load_state(path) == ({'/var/log/app.log': cursor}, 'loaded', None)
    assert json.load(open(path))['schema_version'] == 1


def test_truncated_log_without_rotated_copy_is_said(tmp_path):
    path = str(write(tmp_path / 'app.log', b'ERROR one\nERROR two\n'))
    first = Scanner(DEFAULT_PATTERNS, grep_path=GREP, incremental=True)
    cursor = first.scan([(path, None, ())])[0]
    write(path, b'ERROR three\n')  # truncated and rewritten, no version holds the old tail
    second = Scanner(DEFAULT_PATTERNS, grep_path=GREP, incremental=True)
    second.scan([(path, cursor, ())])
    assert second.review.counts['ERROR'] == 1
    assert 'were not read' in second.files[0]['note']


def test_incomplete_last_line_waits_for_the_next_run(tmp_path):
    path = str(write(tmp_path / 'app.log', b'ERROR one\nERROR tw'))
    first = Scanner(DEFAULT_PATTERNS, grep_path=GREP, incremental=True)
    cursor = first.scan([(path, None, ())])[0]
    assert first.review.counts['ERROR'] == 1 and cursor['offset'] == len(b'ERROR one\n')
    with open(path, 'ab') as handle:
        handle.write(b'o\n')
    second = Scanner(DEFAULT_PATTERNS, grep_path=GREP, incremental=True)
    second.scan([(path, cursor, ())])
    assert second.review.counts['ERROR'] == 1 and second.review.result(1)['top_messages'][0]['sample'] == 'ERROR two'


def test_rotated_and_gzipped_tail_is_read_before_the_new_file(tmp_path):
    path = str(write(tmp_path / 'app.log', b'ERROR one\n'))
    first = Scanner(DEFAULT_PATTERNS, grep_path=GREP, incremental=True)
    cursor = first.scan([(path, None, ())])[0]
    write(path + '.1.gz', gzip.compress(b'ERROR one\nERROR two\n'))
    os.unlink(path)
    write(path, b'ERROR three\n')
    second = Scanner(DEFAULT_PATTERNS, grep_path=GREP, incremental=True, temp_dir=str(tmp_path))
    second.scan([(path, cursor, [path + '.1.gz'])])
    assert second.review.counts['ERROR'] == 2
    assert [s['path'] for s in second.files[0]['segments']] == [path + '.1.gz', path]
    assert sorted(os.listdir(tmp_path)) == ['app.log', 'app.log.1.gz']  # the temporary copy is gone


# --- files, versions, logrotate ----------------------------------------------------------------

def test_versions_order_and_foreign_files(tmp_path):
    for name in ('app.log', 'app.log.1', 'app.log.2.gz', 'app.log.10', 'app.log-20261120', 'app.log.bak', 'app.log.1.tmp'):
        write(tmp_path / name, b'x')
    names = [v['name'] for v in list_versions(str(tmp_path / 'app.log'), 'auto')]
    assert names == ['app.log.1', 'app.log.2.gz', 'app.log.10', 'app.log-20261120']
    assert [v['name'] for v in list_versions(str(tmp_path / 'app.log'), 'dateext')] == ['app.log-20261120']
    logs, unmatched, skipped = expand_paths([str(tmp_path / 'app.log*'), str(tmp_path / 'none*')])
    assert logs == [str(tmp_path / 'app.log'), str(tmp_path / 'app.log.1.tmp'), str(tmp_path / 'app.log.bak')]
    assert unmatched == [str(tmp_path / 'none*')] and skipped == []


def test_literal_directory_and_loop_are_configuration_errors(tmp_path):
    loop = tmp_path / 'loop.log'
    os.symlink(loop, loop)
    with pytest.raises(LogPathError, match='is a symlink loop'):
        expand_paths([str(loop)])
    with pytest.raises(LogPathError, match='is a directory'):
        expand_paths([str(tmp_path)])
    assert expand_paths([str(tmp_path / '*')])[2] == [dict(path=str(loop), reason='is a symlink loop')]


def test_plan_rotates_deletes_then_compresses_without_touching(tmp_path):
    app = str(write(tmp_path / 'app.log', b'x' * 2000))
    for number in (1, 2, 3):
        write(tmp_path / ('app.log.%d' % number), b'v%d' % number)
    before = sorted(os.listdir(tmp_path))
    actions, old, new = plan_log(app, POLICY, 'copytruncate')
    assert sorted(os.listdir(tmp_path)) == before
    assert [a['action'] for a in actions] == ['rotate', 'delete', 'delete', 'compress', 'compress']
    assert old == ['app.log.1', 'app.log.2', 'app.log.3'] and new == ['app.log.1.gz', 'app.log.2.gz']
    assert [r['target'] for r in actions[0]['renames']] == [str(tmp_path / n) for n in ('app.log.4', 'app.log.3', 'app.log.2')]


def test_logrotate_parsing_and_policy_comparison(tmp_path):
    text = '''
    # global
    compress
    rotate 4
    "/srv/app/logs/audit.log" /srv/app/logs/system.log
    {
        size 5M
        rotate 10
        postrotate
            rotate 99
        endscript
    }
    /var/log/other.log { maxsize 1G
      nocompress }
    '''
    settings, stanzas = parse_logrotate(text)
    assert settings == dict(compress=True, rotate=4)
    assert stanzas[0] == (['/srv/app/logs/audit.log', '/srv/app/logs/system.log'],
                          dict(compress=True, rotate=10, size=5 * 1024 ** 2))
    assert stanzas[1][0] == ['/var/log/other.log'] and stanzas[1][1]['compress'] is False
    policy = dict(POLICY, max_size='5M', max_size_bytes=5 * 1024 ** 2, keep=10)
    assert policy_differences(stanzas[0][1], policy) == []
    assert policy_differences(stanzas[1][1], policy) == ['size 1073741824, policy max_size 5M', 'rotate 4, policy keep 10',
                                                         'nocompress, policy compress True']


def test_unreadable_log_is_a_violation_for_an_unprivileged_reader(tmp_path):
    """Root reads everything: the audit runs in a child that dropped to nobody."""
    os.chmod(tmp_path, 0o755)
    secret = str(write(tmp_path / 'secret.log', b'x'))
    os.chmod(secret, 0o600)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, audit, report, exit without pytest's teardown
        os.close(read_end)
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, json.dumps(audit_log(secret, POLICY)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, 'rb') as handle:
        entry = json.loads(handle.read())
    os.waitpid(pid, 0)
    assert [v['code'] for v in entry['violations']] == ['unreadable']
    assert 'Permission denied' in entry['violations'][0]['message']

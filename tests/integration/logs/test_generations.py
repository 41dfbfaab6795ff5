"""No lost generation: the incremental scan follows every rotated generation logrotate wrote since the last scan."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_reading import find_logrotate
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.scan import Scanner
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.versions import list_versions

LOGROTATE = find_logrotate()
pytestmark = pytest.mark.skipif(LOGROTATE is None, reason='logrotate is not installed (apt-get install logrotate)')


def append(path, first, count):
    with open(path, 'a') as handle:
        for number in range(first, first + count):
            handle.write('2026-11-20 10:00:00 ERROR request %d failed\n2026-11-20 10:00:00 INFO fine\n' % number)


def scan(path, cursor, tmp_path):
    scanner = Scanner(['ERROR'], grep_path=shutil.which('grep'), incremental=True, temp_dir=str(tmp_path))
    versions = [v['path'] for v in list_versions(path, 'auto')]
    new_cursor, = scanner.scan([(path, cursor, versions)])
    return scanner, new_cursor


def rotate(conf, state):
    subprocess.run([LOGROTATE, '-f', '-s', state, conf], check=True)


@pytest.mark.parametrize('directives', [
    'rotate 5\n    create',
    'rotate 5\n    create\n    compress',
    'rotate 5\n    copytruncate\n    compress\n    delaycompress',
    'rotate 5\n    create\n    compresscmd /usr/bin/xz\n    compressext .xz\n    compress',
])
def test_two_rotations_between_scans_lose_nothing(tmp_path, directives):
    log = str(tmp_path / 'app.log')
    conf, state = str(tmp_path / 'logrotate.conf'), str(tmp_path / 'status')
    with open(conf, 'w') as handle:
        handle.write('%s {\n    %s\n}\n' % (log, directives))
    append(log, 0, 300)
    scanner, cursor = scan(log, None, tmp_path)
    assert scanner.review.counts['ERROR'] == 300
    append(log, 300, 200)
    rotate(conf, state)
    append(log, 500, 100)
    rotate(conf, state)
    append(log, 600, 50)
    scanner, cursor = scan(log, cursor, tmp_path)
    assert scanner.review.counts['ERROR'] == 350, (scanner.files, os.listdir(str(tmp_path)))
    assert scanner.files[0]['note'] is None
    scanner, cursor = scan(log, cursor, tmp_path)           # nothing new: nothing counted again
    assert scanner.review.counts.get('ERROR', 0) == 0


def test_a_generation_deleted_before_it_was_read_is_said(tmp_path):
    log = str(tmp_path / 'app.log')
    conf, state = str(tmp_path / 'logrotate.conf'), str(tmp_path / 'status')
    with open(conf, 'w') as handle:
        handle.write('%s {\n    rotate 5\n    create\n}\n' % log)
    append(log, 0, 10)
    dummy, cursor = scan(log, None, tmp_path)
    append(log, 10, 20)
    rotate(conf, state)
    append(log, 30, 40)
    rotate(conf, state)
    os.unlink(log + '.2')                                   # the generation holding the cursor, gone unread
    append(log, 70, 5)
    scanner, cursor = scan(log, cursor, tmp_path)
    assert scanner.review.counts['ERROR'] == 45             # app.log.1 (40) and app.log (5)
    assert scanner.files[0]['note'].startswith('lost generation')


@pytest.mark.parametrize('suffix, program', [('.gz', 'gzip'), ('.bz2', 'bzip2'), ('.xz', 'xz'), ('.zst', 'zstd')])
def test_a_compressed_file_in_paths_is_read_decompressed_once(tmp_path, suffix, program):
    if not shutil.which(program):
        pytest.skip('%s is not installed' % program)
    log = str(tmp_path / 'old.log')
    append(log, 0, 25)
    subprocess.run([program, '-q', log], check=True)
    scanner, cursor = scan(log + suffix, None, tmp_path)
    assert scanner.review.counts['ERROR'] == 25 and scanner.files[0]['note'] == 'compressed: read decompressed'
    scanner, cursor = scan(log + suffix, cursor, tmp_path)
    assert scanner.review.counts.get('ERROR', 0) == 0 and scanner.files[0]['bytes_skipped'] > 0

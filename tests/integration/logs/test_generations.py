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


def test_a_generation_deleted_before_it_was_read_is_said_with_its_byte_count(tmp_path):
    log = str(tmp_path / 'app.log')
    conf, state = str(tmp_path / 'logrotate.conf'), str(tmp_path / 'status')
    with open(conf, 'w') as handle:
        handle.write('%s {\n    rotate 5\n    create\n}\n' % log)
    append(log, 0, 10)
    partial = b'2026-11-20 10:00:00 ERROR still being writ'     # a line without its newline at the first scan
    with open(log, 'ab') as handle:
        handle.write(partial)
    dummy, cursor = scan(log, None, tmp_path)
    assert cursor['size'] - cursor['offset'] == len(partial)
    lost_inode = os.stat(log).st_ino
    with open(log, 'ab') as handle:
        handle.write(b'ten\n')
    append(log, 10, 20)
    rotate(conf, state)
    append(log, 30, 40)
    rotate(conf, state)
    assert os.stat(log + '.2').st_ino == lost_inode
    os.unlink(log + '.2')                                   # the generation holding the cursor, gone unread
    append(log, 70, 5)
    scanner, cursor = scan(log, cursor, tmp_path)
    assert scanner.review.counts['ERROR'] == 45             # app.log.1 (40) and app.log (5)
    entry = scanner.files[0]
    assert entry['note'].startswith('lost generation') and 'at least %d bytes' % len(partial) in entry['note']
    lost = entry['lost_generation']
    assert (lost['device'], lost['inode']) == (os.stat(log).st_dev, lost_inode)
    assert lost['size_at_last_scan'] == lost['read_to'] + len(partial)
    assert lost['unread_bytes'] is None and lost['unread_bytes_at_least'] == len(partial)


def test_a_deleted_generation_still_held_open_is_read_through_the_holder(tmp_path, holder):
    """A writer that was never told to reopen keeps the deleted generation: its unread bytes are read, exactly."""
    log = str(tmp_path / 'app.log')
    conf, state = str(tmp_path / 'logrotate.conf'), str(tmp_path / 'status')
    with open(conf, 'w') as handle:
        handle.write('%s {\n    rotate 5\n    create\n}\n' % log)
    append(log, 0, 10)
    dummy, cursor = scan(log, None, tmp_path)
    writer = holder(log, 0)                                 # holds app.log (this inode) open, writes nothing more
    append(log, 10, 20)
    rotate(conf, state)
    append(log, 30, 40)
    rotate(conf, state)
    os.unlink(log + '.2')                                   # deleted, but the writer still holds it
    append(log, 70, 5)
    scanner, cursor = scan(log, cursor, tmp_path)
    assert scanner.review.counts['ERROR'] == 20 + 40 + 5    # nothing lost: the 20 were read through /proc/PID/fd
    entry = scanner.files[0]
    assert entry['lost_generation'] is None
    assert 'still held open' in entry['note'] and '(pid %d)' % writer.pid in entry['note']
    writer.stop()


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


def test_a_log_deleted_and_created_anew_while_held_is_read_through_the_holder(tmp_path, holder):
    """No rotated version at all: the log was removed (rm) and created again, the old writer still holds it."""
    log = str(tmp_path / 'app.log')
    append(log, 0, 10)
    dummy, cursor = scan(log, None, tmp_path)
    writer = holder(log, 0)
    append(log, 10, 20)                                     # written to the old file after the scan
    os.unlink(log)
    append(log, 30, 7)                                      # a new file under the same name
    scanner, cursor = scan(log, cursor, tmp_path)
    assert scanner.review.counts['ERROR'] == 20 + 7
    assert 'still held open' in scanner.files[0]['note'] and scanner.files[0]['lost_generation'] is None
    writer.stop()

"""Locked appends and size rotation of the maintenance log on the real filesystem."""

from __future__ import annotations

import json
import multiprocessing
import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog import files as _logfile

WRITERS = 4
RECORDS = 300


def _writer(directory, writer, max_bytes, keep):
    path = os.path.join(directory, _logfile.JSONL_NAME)
    lock = _logfile.DirectoryLock(directory)
    for number in range(RECORDS):
        line = json.dumps(dict(writer=writer, number=number, pad='x' * (50 + number % 200))) + '\n'
        with lock:
            _logfile.append_record(path, line.encode(), max_bytes, keep)
    lock.close()


def run_writers(directory, max_bytes, keep):
    context = multiprocessing.get_context('fork')
    processes = [context.Process(target=_writer, args=(directory, n, max_bytes, keep)) for n in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0


def read_lines(directory):
    lines = []
    for path in _logfile.history_paths(os.path.join(directory, _logfile.JSONL_NAME)):
        with open(path, encoding='utf-8') as handle:
            content = handle.read()
        assert content.endswith('\n')
        lines += [json.loads(line) for line in content.splitlines()]
    return lines


def test_concurrent_writers_never_interleave_or_lose_records(tmp_path):
    run_writers(str(tmp_path), max_bytes=0, keep=0)
    records = read_lines(str(tmp_path))
    assert len(records) == WRITERS * RECORDS
    for writer in range(WRITERS):  # each writer's records complete and in its own order
        assert [r['number'] for r in records if r['writer'] == writer] == list(range(RECORDS))


def test_concurrent_writers_with_rotation_keep_every_record_within_max_bytes(tmp_path):
    run_writers(str(tmp_path), max_bytes=20000, keep=1000)
    records = read_lines(str(tmp_path))
    assert len(records) == WRITERS * RECORDS
    for writer in range(WRITERS):
        assert [r['number'] for r in records if r['writer'] == writer] == list(range(RECORDS))
    paths = _logfile.history_paths(str(tmp_path / _logfile.JSONL_NAME))
    assert len(paths) > 5
    assert all(os.path.getsize(p) <= 20000 for p in paths)


def test_rotation_keeps_keep_files_oldest_dropped(tmp_path):
    path = str(tmp_path / 'log')
    lock = _logfile.DirectoryLock(str(tmp_path))
    for number in range(10):
        with lock:
            _logfile.append_record(path, b'record %d\n' % number, max_bytes=10, keep=3)
    lock.close()
    assert sorted(os.listdir(tmp_path)) == ['.maintenance-log.lock', 'log', 'log.1', 'log.2', 'log.3']
    contents = [open(p, 'rb').read() for p in _logfile.history_paths(path)]
    assert contents == [b'record 6\n', b'record 7\n', b'record 8\n', b'record 9\n']


def test_keep_zero_starts_over_and_header_starts_every_file(tmp_path):
    path = str(tmp_path / 'log.md')
    for number in range(3):
        _logfile.append_record(path, b'section %d\n' % number, max_bytes=30, keep=0, header=b'# Log\n')
    assert open(path, 'rb').read() == b'# Log\nsection 2\n'
    assert _logfile.history_paths(path) == [path]


def test_a_record_larger_than_max_bytes_is_written_whole(tmp_path):
    path = str(tmp_path / 'log')
    _logfile.append_record(path, b'small\n', max_bytes=8, keep=2)
    _logfile.append_record(path, b'x' * 100 + b'\n', max_bytes=8, keep=2)
    assert open(path, 'rb').read() == b'x' * 100 + b'\n'
    assert open(path + '.1', 'rb').read() == b'small\n'


def test_history_paths_ignore_foreign_files(tmp_path):
    path = str(tmp_path / 'maintenance.jsonl')
    for name in ('maintenance.jsonl', 'maintenance.jsonl.2', 'maintenance.jsonl.10', 'maintenance.jsonl.bak',
                 'maintenance.jsonl.1.gz', 'other.jsonl.1'):
        (tmp_path / name).write_text('')
    assert _logfile.history_paths(path) == [path + '.10', path + '.2', path]

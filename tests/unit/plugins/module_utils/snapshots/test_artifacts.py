"""Pure logic of the snapshot modules: retention, slots, slip checks, version and stderr parsing, names."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import compression_of, level_problem
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.extract import unsafe_member_reason
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots import dump as _dump
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.dump import (
    DumpError,
    check_finished,
    check_pg_dump_version,
    stderr_error,
    table_rows,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.retention import select, slot_key
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.catalog import dump_ext

UTC = datetime.timezone.utc


def snap(day, hour=2, verified=True):
    return dict(path='s-%02d-%02d' % (day, hour), created=datetime.datetime(2026, 11, day, hour, tzinfo=UTC),
                verified=verified)


def test_gfs_daily_weekly_and_newest_verified():
    snaps = [snap(d) for d in range(1, 24)] + [snap(23, 5)]
    kept, pruned = select(snaps, dict(keep_daily=3, keep_weekly=2), datetime.datetime(2026, 11, 23, 6, tzinfo=UTC))
    names = [s['path'] for s in kept]
    assert names[:3] == ['s-23-05', 's-22-02', 's-21-02']  # newest per day; 23-02 loses to 23-05
    # 2026-11-23 is a Monday: the newest of ISO week 48 and of week 47 (Sunday the 22nd) are already kept
    assert names == ['s-23-05', 's-22-02', 's-21-02']
    assert kept[1]['reasons'] == ['daily', 'weekly'] and len(pruned) == len(snaps) - 3
    kept = select(snaps, dict(keep_weekly=3), datetime.datetime(2026, 11, 23, 6, tzinfo=UTC))[0]
    assert [s['path'] for s in kept] == ['s-23-05', 's-22-02', 's-15-02']


def test_no_rule_deletes_nothing_and_keep_last_zero_keeps_newest_verified():
    snaps = [snap(1), snap(2), snap(3, verified=False)]
    kept, pruned = select(snaps, {}, datetime.datetime(2026, 11, 23, tzinfo=UTC))
    assert pruned == [] and len(kept) == 3
    kept, pruned = select(snaps, dict(keep_last=0), datetime.datetime(2026, 11, 23, tzinfo=UTC))
    assert [s['path'] for s in kept] == ['s-02-02'] and kept[0]['reasons'] == ['newest verified']
    assert sorted(s['path'] for s in pruned) == ['s-01-02', 's-03-02']


def test_keep_within_days():
    kept = select([snap(1), snap(20), snap(22)], dict(keep_within_days=2), datetime.datetime(2026, 11, 23, 6, tzinfo=UTC))[0]
    assert sorted(s['path'] for s in kept) == ['s-22-02']


@pytest.mark.parametrize('slot, expected', [('hourly', '2026-11-23T02'), ('daily', '2026-11-23'),
                                            ('weekly', '2026-W48'), ('monthly', '2026-11'), ('always', None)])
def test_slot_keys(slot, expected):
    assert slot_key(datetime.datetime(2026, 11, 23, 2, 30, tzinfo=UTC), slot) == expected


@pytest.mark.parametrize('name, target, link, bad', [
    ('files/a.txt', None, False, None),
    ('../etc/x', None, False, '".."'),
    ('files/../../x', None, False, '".."'),
    ('/etc/x', None, False, 'absolute'),
    ('files/l', 'sibling', True, None),
    ('files/l', '../../../etc', True, 'outside'),
    ('files/l', '/etc/passwd', True, 'absolute'),
])
def test_unsafe_member_reason(name, target, link, bad):
    reason = unsafe_member_reason(name, target, link)
    assert (reason is None) if bad is None else (bad in reason)


def test_pg_dump_version_check():
    assert check_pg_dump_version('/x/pg_dump', 'pg_dump (PostgreSQL) 15.14 (Debian 15.14-1)', '15.14') == '15.14'
    assert check_pg_dump_version('/x/pg_dump', 'pg_dump (PostgreSQL) 16.2', '15.14') == '16.2'
    with pytest.raises(DumpError, match=r'pg_dump 13.0 \(/x/pg_dump\) is older than server 15.14: install postgresql-client-15'):
        check_pg_dump_version('/x/pg_dump', 'pg_dump (PostgreSQL) 13.0', '15.14')
    with pytest.raises(DumpError, match='did not report a PostgreSQL version'):
        check_pg_dump_version('/x/pg_dump', 'hello', '15.14')


def _client(root, major, name):
    path = root / str(major) / 'bin' / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\n')
    path.chmod(0o755)
    return str(path)


def test_find_program_server_major_first_then_newest_installed_like_pg_wrapper(tmp_path, monkeypatch):
    monkeypatch.setattr(_dump, 'PG_BIN_TEMPLATE', str(tmp_path / '%d' / 'bin'))
    (tmp_path / 'not-a-version').mkdir()
    older, own = _client(tmp_path, 13, 'pg_dump'), _client(tmp_path, 15, 'pg_dump')
    newest = _client(tmp_path, 17, 'pg_restore')
    assert _dump.find_program('pg_dump', 15) == own
    assert _dump.find_program('pg_dump', 16) == own  # the newest installed pg_dump (15; 17 has only pg_restore)
    assert _dump.installed_clients('pg_dump')[-1] == older
    assert _dump.find_program('pg_restore', 13) == newest
    near = _client(tmp_path / 'custom', 9, 'psql')
    assert _dump.find_program('psql', 15, near=near.replace('psql', 'pg_restore')) == near


def test_stderr_and_exit_checks():
    assert stderr_error('pg_dump: warning: something\n') is None
    assert stderr_error('pg_dump: error: query failed: boom') == 'pg_dump: error: query failed: boom'
    check_finished('pg_dump', 0, b'pg_dump: warning: only a warning')
    with pytest.raises(DumpError, match='killed by signal 9'):
        check_finished('pg_dump', -9, b'')
    with pytest.raises(DumpError, match='although it exited 0'):
        check_finished('pg_dump', 0, b'FATAL: oops')


def test_names_and_tables():
    assert dump_ext('custom', 'zstd') == 'dump.zst' and dump_ext('custom', 'gzip') == 'dump'
    assert dump_ext('plain', 'gzip') == 'sql.gz' and dump_ext('plain', 'none') == 'sql'
    assert [compression_of(n) for n in ('a.dump.zst', 'a.sql.gz', 'a.dump', 'a.zip')] == ['zstd', 'gzip', 'none', 'none']
    assert table_rows([('public', 't', 10, 12), ('public', 'big', 5000000, None), ('s', 'new', -1, None)]) == {
        'public.t': {'rows': 12, 'exact': True}, 'public.big': {'rows': 5000000, 'exact': False},
        's.new': {'rows': 0, 'exact': False}}


def test_compression_level_fits_its_compression():
    assert level_problem('zstd', None) is None and level_problem('zstd', 19) is None and level_problem('none', 5) is None
    assert level_problem('gzip', 10) == 'compression_level 10 is outside 1-9 for gzip'
    assert level_problem('zstd', 0) == 'compression_level 0 is outside 1-19 for zstd'

"""Regressions of the snapshot review: which snapshots count as "the same" for slots and retention, lock waits."""

from __future__ import annotations

import os


from tests.harness.playbook import run_tasks
from tests.integration.snapshots.conftest import drop_database, fill_sample
from tests.integration.snapshots.test_snapshot_roundtrip import ARCHIVE, assert_ok, conn, manifest_of


def _tree(base, name, content):
    root = os.path.join(base, name)
    os.makedirs(root)
    with open(os.path.join(root, 'data.txt'), 'w') as handle:
        handle.write(content)
    return root


def _artifacts(dest):
    return sorted(os.path.join(dest, n) for n in os.listdir(dest) if not n.endswith(('.manifest.json', '.globals.sql')))


def test_full_archives_of_different_paths_are_different_snapshots(dest, tmp_path):
    uploads = _tree(str(tmp_path), 'uploads', 'u' * 100)
    etc = _tree(str(tmp_path), 'etc', 'e' * 10)
    full = dict(tier='full', dest=dest)
    run = run_tasks([
        {'name': 'uploads', ARCHIVE: dict(full, paths=[uploads])},
        {'name': 'etc', ARCHIVE: dict(full, paths=[etc], keep_last=1)},
        {'name': 'uploads again in the slot', ARCHIVE: dict(full, paths=[uploads], keep_last=1)},
        {'name': 'uploads second', ARCHIVE: dict(full, paths=[uploads], slot='always', keep_last=1)},
        {'name': 'prune all trees', ARCHIVE: dict(full, state='pruned', keep_last=1)},
    ])
    assert_ok(run)
    first, other = run.result('uploads')['snapshot'], run.result('etc')['snapshot']
    assert first['status'] == 'written' and other['status'] == 'written' and other['path'] != first['path']
    assert run.result('etc')['pruned'] == []  # the uploads archive is not an older /etc snapshot
    assert manifest_of(other['path'])['files']['roots'] == [etc]
    again = run.result('uploads again in the slot')
    assert again['snapshot']['status'] == 'existing' and again['snapshot']['path'] == first['path']
    assert again['changed'] is False and again['pruned'] == []
    second = run.result('uploads second')
    assert second['pruned'] == [first['path']] and sorted(second['kept']) == [second['snapshot']['path']]
    assert run.result('prune all trees')['pruned'] == []  # each tree keeps its own newest
    assert _artifacts(dest) == sorted([other['path'], second['snapshot']['path']])


def test_retention_without_database_keeps_each_databases_newest(pg, sample_db, dest):
    other_db = 'snap_other_%d' % os.getpid()
    fill_sample(pg, other_db)
    c = conn(pg)
    shared = dict(c, dest=dest, prefix='shared', slot='always')
    try:
        run = run_tasks([
            {'name': 'b only', ARCHIVE: dict(shared, database=other_db)},
            {'name': 'a older', ARCHIVE: dict(shared, database=sample_db)},
            {'name': 'a newer', ARCHIVE: dict(shared, database=sample_db)},
            {'name': 'prune without database', ARCHIVE: dict(c, dest=dest, prefix='shared', state='pruned', keep_last=1)},
        ])
        assert_ok(run)
        b_only = run.result('b only')['snapshot']['path']
        a_newer = run.result('a newer')['snapshot']['path']
        prune = run.result('prune without database')
        assert prune['pruned'] == [run.result('a older')['snapshot']['path']]
        assert sorted(prune['kept']) == sorted([b_only, a_newer])
        assert _artifacts(dest) == sorted([b_only, a_newer])
    finally:
        drop_database(pg, other_db)


def _hold(pg, dbname, statement):
    holder = pg.connect(dbname)
    holder.autocommit = False
    with holder.cursor() as cursor:
        cursor.execute(statement)
    return holder


def test_lock_waits_are_bounded_and_leave_nothing(pg, dest):
    name = 'snap_locked_%d' % os.getpid()
    fill_sample(pg, name)
    for statement in ('CREATE TABLE parted (id int, note text) PARTITION BY RANGE (id)',
                      'CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000)',
                      "INSERT INTO parted SELECT g, 'n' FROM generate_series(1, 10) g"):
        pg.execute(statement, dbname=name)
    c = conn(pg)
    base = dict(c, database=name, dest=dest, slot='always', lock_wait_timeout_s=1)
    try:
        # Only the partitioned parent: the size and row-count queries pass, pg_dump's LOCK TABLE waits.
        holder = _hold(pg, name, 'LOCK TABLE ONLY parted IN ACCESS EXCLUSIVE MODE')
        try:
            run = run_tasks([{'name': 'pg_dump waits', 'ignore_errors': True, ARCHIVE: base}])
        finally:
            holder.rollback()
            holder.close()
        failed = run.result('pg_dump waits')
        assert failed['failed'] and 'pg_dump exited with code 1' in failed['msg'] and 'timeout' in failed['msg']
        assert 'nothing was written' in failed['msg'] and 'Traceback' not in failed['msg']
        assert any('--lock-wait-timeout=1000ms' in cmd for cmd in failed['executed_commands'])
        assert not os.path.exists(dest) or os.listdir(dest) == []
        # A whole table: the module's own size query gives up after lock_wait_timeout_s as well (a psycopg2 error).
        holder = _hold(pg, name, 'LOCK TABLE orders IN ACCESS EXCLUSIVE MODE')
        try:
            run = run_tasks([{'name': 'size query waits', 'ignore_errors': True, ARCHIVE: base},
                             {'name': 'bad timeout', 'ignore_errors': True, ARCHIVE: dict(base, lock_wait_timeout_s=0)}])
        finally:
            holder.rollback()
            holder.close()
        failed = run.result('size query waits')
        assert failed['failed'] and 'lock timeout' in failed['msg'] and name in failed['msg']
        assert 'nothing was written' in failed['msg'] and 'Traceback' not in failed['msg']
        assert 'lock_wait_timeout_s must be at least 1' in run.result('bad timeout')['msg']
        assert not os.path.exists(dest) or os.listdir(dest) == []
        run = run_tasks([{'name': 'free again', ARCHIVE: base}])
        assert_ok(run)
        assert manifest_of(run.result('free again')['snapshot']['path'])['database']['tables']['public.parted_1']['rows'] == 10
    finally:
        drop_database(pg, name)

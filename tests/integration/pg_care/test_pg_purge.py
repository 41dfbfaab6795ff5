"""pg_purge through real ansible-playbook runs against a real PostgreSQL 15 database and real manifests.

``care_purge.audit_log`` holds 1000 rows, row i dated i days and one hour ago
(every 50th row undated); snapshots are written with _manifest's own helpers.
"""

from __future__ import annotations

import os

from tests.harness.playbook import run_tasks
from tests.integration.pg_care.conftest import PURGE_DB, connection_options, write_snapshot

MODULE = 'engineroom.maintenance.pg_purge'
# Rows 365..1000 are older than 365 days; 13 of them (every 50th) have no timestamp and stay.
OLD_ROWS = len([i for i in range(365, 1001) if i % 50])


def task(name, check=False, **args):
    entry = {'name': name, MODULE: args, 'ignore_errors': True}
    if check:
        entry['check_mode'] = True
    return entry


def purge_args(pg, **extra):
    args = dict(connection_options(pg, PURGE_DB), table='public.audit_log', timestamp_column='created_at',
                older_than_days=365)
    args.update(extra)
    return args


def test_check_mode_counts_then_batches_delete_then_nothing_left(pg, purge_db, tmp_path):
    dest = str(tmp_path)
    write_snapshot(dest, PURGE_DB)
    args = purge_args(pg, batch_size=100, snapshot_dest=dest)
    run = run_tasks([task('plan', check=True, **args), task('purge', **args), task('again', **args)], diff=True)
    plan, purge, again = run.result('plan'), run.result('purge'), run.result('again')

    assert plan['changed'] is True and plan['rows_deleted'] == 0
    assert plan['would_delete'] == plan['matched_rows'] == OLD_ROWS == 623
    assert plan['oldest'].endswith('Z') and plan['newest'].endswith('Z') and plan['oldest'] < plan['newest']
    assert not any(c.startswith('DELETE') for c in plan['executed_commands'])

    assert purge['changed'] is True, purge.get('msg')
    assert purge['rows_deleted'] == OLD_ROWS and purge['batches'] == 7 and purge['remaining'] == 0
    assert purge['stopped_by'] is None
    assert purge['snapshot']['manifest'].startswith(dest) and purge['snapshot']['age_h'] < 1.1
    assert purge['metrics']['rows_deleted'] == OLD_ROWS
    assert purge['diff']['before'].startswith('public.audit_log: 623 rows older than')
    assert sum(1 for c in purge['executed_commands'] if c.startswith('DELETE FROM "public"."audit_log"')) == 7
    assert purge['summary'].startswith('pg_purge public.audit_log: 623 rows older than')

    assert again['changed'] is False and again['rows_deleted'] == 0 and again['matched_rows'] == 0
    assert again['snapshot'] is None  # nothing to delete, nothing to protect

    # Real state: the young rows and the undated ones are all there, nothing old is.
    assert purge_db.count() == 1000 - OLD_ROWS
    assert purge_db.count("created_at < now() - interval '365 days'") == 0
    assert purge_db.count('created_at IS NULL') == 20


def test_limits_where_triples_manifest_path_and_date_column(pg, purge_db, tmp_path):
    manifest = write_snapshot(str(tmp_path), PURGE_DB)
    run = run_tasks([
        task('limited', **purge_args(pg, batch_size=100, max_rows=250, snapshot_manifest=manifest)),
        task('filtered', **purge_args(pg, snapshot_manifest=manifest, older_than_days=30, where=[
            dict(column='kind', op='in', value=['a', 'b']), dict(column='level', op='>=', value=2),
            dict(column='created_text', op='is not null')])),
        task('dates', table='notices', timestamp_column='sent_on', older_than_days=100,
             where=[dict(column='status', value='read')], snapshot_manifest=manifest,
             **connection_options(pg, PURGE_DB)),
    ])
    limited, filtered, dates = run.result('limited'), run.result('filtered'), run.result('dates')
    assert limited['rows_deleted'] == 250 and limited['batches'] == 3
    assert limited['stopped_by'] == 'max_rows' and limited['remaining'] == OLD_ROWS - 250
    # Oldest first: the 250 dated rows of ages 1000..745 days went; the filtered purge below
    # then took only kinds a/b at levels >= 2, so old rows of kind c are still there.
    assert purge_db.count("created_at < now() - interval '745 days'") == 0
    assert purge_db.count("created_at < now() - interval '740 days' AND kind = 'c'") > 0

    assert filtered['changed'] is True and filtered['remaining'] == 0
    assert purge_db.count("created_at < now() - interval '30 days' AND kind IN ('a', 'b') AND level >= 2") == 0
    assert purge_db.count("created_at < now() - interval '30 days' AND (kind = 'c' OR level < 2)") > 0

    # A date column cuts at the day: day 100 is kept, days 101.. of read notices go.
    assert dates['cutoff'] == dates['cutoff'][:10] and len(dates['cutoff']) == 10
    assert dates['rows_deleted'] == len([i for i in range(101, 400) if i % 2 == 0])
    assert purge_db.count("status = 'read' AND sent_on < current_date - 100", table='notices') == 0
    assert purge_db.count("status = 'unread'", table='notices') == 200


def test_bad_inputs_and_missing_snapshots_change_nothing(pg, purge_db, tmp_path):
    good = tmp_path / 'good'
    good.mkdir()
    write_snapshot(str(good), PURGE_DB)
    stale, unverified, other, broken, missing = (tmp_path / n for n in ('stale', 'unverified', 'other', 'broken', 'missing'))
    for directory in (stale, unverified, other, broken, missing):
        directory.mkdir()
    write_snapshot(str(stale), PURGE_DB, age_h=30)
    unverified_manifest = write_snapshot(str(unverified), PURGE_DB, verified=False)
    other_manifest = write_snapshot(str(other), 'app')
    write_snapshot(str(broken), PURGE_DB, size_ok=False)
    write_snapshot(str(missing), PURGE_DB, with_artifact=False)
    missing_manifest = [str(missing / n) for n in os.listdir(missing)][0]
    ok = dict(snapshot_dest=str(good))
    cases = [
        ('text column', purge_args(pg, timestamp_column='created_text', **ok),
         'column created_text of public.audit_log is text, not a timestamp or date'),
        ('no table', purge_args(pg, table='public.nope', **ok), 'table public.nope does not exist in database care_purge'),
        ('injection', purge_args(pg, table='x"; DROP TABLE y; --', **ok), 'does not exist in database care_purge'),
        ('zero days', purge_args(pg, older_than_days=0, **ok), 'older_than_days must be at least 1 (got 0)'),
        ('no snapshot option', purge_args(pg), 'pg_purge needs a verified snapshot of the database before deleting'),
        ('snapshot too old', purge_args(pg, snapshot_dest=str(stale)),
         'refusing to delete 623 rows from public.audit_log: no verified snapshot of database care_purge newer than 24 h'),
        ('unverified manifest', purge_args(pg, snapshot_manifest=unverified_manifest), 'was never verified'),
        ('other database', purge_args(pg, snapshot_manifest=other_manifest), "is of database 'app', not 'care_purge'"),
        ('damaged artifact', purge_args(pg, snapshot_dest=str(broken)), 'the snapshot is damaged'),
        ('artifact gone', purge_args(pg, snapshot_manifest=missing_manifest), 'which is missing'),
        ('unknown where column', purge_args(pg, where=[dict(column='nope', value=1)], **ok), 'where column nope does not exist'),
        ('bad value type', purge_args(pg, where=[dict(column='level', value='high')], **ok),
         'invalid input syntax for type integer'),
        ('unknown database', purge_args(pg, login_db='no_such_db', **ok), "the database 'no_such_db' does not exist"),
    ]
    run = run_tasks([task(name, **args) for name, args, message in cases]
                    + [task('stale in check mode', check=True, **purge_args(pg, snapshot_dest=str(stale)))])
    for name, args, message in cases:
        result = run.result(name)
        assert result.get('failed') is True, name
        assert message in result['msg'], (name, result['msg'])
        assert result.get('rows_deleted', 0) == 0
    check = run.result('stale in check mode')
    assert check['failed'] is True and check['would_delete'] == 623 and 'refusing to delete 623 rows' in check['msg']
    # Nothing changed: every row is there, y survived the injection attempt.
    assert purge_db.count() == 1000
    assert pg.execute('SELECT count(*) FROM y', dbname=PURGE_DB)[0][0] == 1


def test_a_failing_or_locked_batch_keeps_the_committed_ones(pg, purge_db, tmp_path):
    manifest = write_snapshot(str(tmp_path), PURGE_DB)
    holder = pg.connect(PURGE_DB)
    holder.autocommit = False
    try:
        with holder.cursor() as cursor:  # a row lock on the audit row 701 days old
            cursor.execute('SELECT id FROM audit_log WHERE id = 701 FOR UPDATE')
        run = run_tasks([
            task('locked', **purge_args(pg, batch_size=100, lock_timeout_ms=300, snapshot_manifest=manifest)),
            task('referenced', table='parents', timestamp_column='created_at', older_than_days=10, batch_size=10,
                 snapshot_manifest=manifest, **connection_options(pg, PURGE_DB)),
        ])
    finally:
        holder.rollback()
        holder.close()
    locked, referenced = run.result('locked'), run.result('referenced')
    # Ages 1000..702 hold 293 dated rows: two batches of 100 commit, the third waits for row 701 and stops.
    assert 'failed' not in locked
    assert locked['stopped_by'] == 'lock_timeout'
    assert locked['rows_deleted'] == 200 and locked['batches'] == 2
    assert locked['remaining'] == OLD_ROWS - 200
    assert any('stopped after 200 rows' in w for w in locked['warnings'])
    assert purge_db.count() == 1000 - 200

    # Oldest first, 10 per batch: ages 100..41 go in 6 batches, the batch holding the referenced row 40 fails.
    assert referenced['failed'] is True
    assert 'deleting from public.parents failed after 60 rows in 6 batches' in referenced['msg']
    assert 'violates foreign key constraint' in referenced['msg']
    assert referenced['rows_deleted'] == 60 and referenced['changed'] is True
    assert purge_db.count(table='parents') == 40
    assert purge_db.count('id <= 40', table='parents') == 40

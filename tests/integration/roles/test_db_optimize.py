"""The db_optimize role on localhost against the real ``pg`` cluster, with a real snapshot taken in the same play.

``opt_app`` (autovacuum off, so only the role cleans): ``orders`` with 3000 dead
tuples, ``audit_log`` with row i dated i days and one hour ago (1..1000),
``notifications`` the same over 400 days with read/unread alternating.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.harness.playbook import run_tasks
from tests.integration.pg_care.conftest import flush_and_close, table_stats, wait_for_stats

DATABASE = 'opt_app'
ROLE = 'engineroom.maintenance.db_optimize : '
PURGE = ROLE + 'Delete rows past their retention'
VACUUM = ROLE + 'Vacuum the tables above the thresholds and analyze the stale ones'
REVIEW = ROLE + 'Review sizes, bloat, indexes, connections and autovacuum (read-only)'
GATE = ROLE + "Stop unless this play's snapshot verified"
RULES = [
    dict(table='public.audit_log', timestamp_column='created_at', older_than_days=365),
    dict(table='notifications', timestamp_column='created_at', older_than_days=180,
         where=[dict(column='status', value='read')], batch_size=50),
]
OLD_AUDIT = 1000 - 364          # rows 365..1000 are older than 365 days
OLD_READ = len([i for i in range(180, 400) if i % 2 == 0])  # row i is i days and one hour old


@pytest.fixture
def app(pg):
    """``opt_app`` filled, vacuumed and analyzed, then ``orders`` bloated; stats visible before the test runs."""
    pg.create_database(DATABASE)
    conn = pg.connect(DATABASE)
    with conn.cursor() as cursor:
        cursor.execute('DROP TABLE IF EXISTS orders, audit_log, notifications')
        for ddl in ('orders (id int PRIMARY KEY, n int, note text)',
                    'audit_log (id int PRIMARY KEY, created_at timestamptz, payload text)',
                    'notifications (id int PRIMARY KEY, created_at timestamptz, status text)'):
            cursor.execute('CREATE TABLE %s WITH (autovacuum_enabled = false)' % ddl)
        cursor.execute("INSERT INTO orders SELECT g, 0, md5(g::text) FROM generate_series(1, 5000) g")
        cursor.execute("INSERT INTO audit_log SELECT i, now() - make_interval(days => i, hours => 1), 'x' "
                       "FROM generate_series(1, 1000) i")
        cursor.execute("INSERT INTO notifications SELECT i, now() - make_interval(days => i, hours => 1), "
                       "CASE WHEN i % 2 = 0 THEN 'read' ELSE 'unread' END FROM generate_series(0, 399) i")
    flush_and_close(conn)
    pg.execute('VACUUM ANALYZE', dbname=DATABASE)  # its own session (the pitfall in docs/DESIGN.md)
    conn = pg.connect(DATABASE)
    with conn.cursor() as cursor:
        cursor.execute('UPDATE orders SET n = 1 WHERE id <= 3000')
    flush_and_close(conn)
    wait_for_stats(pg, DATABASE, dict(orders=(5000, 3000), audit_log=(1000, 0), notifications=(400, 0)))
    return pg


def count(pg, table, where='true'):
    return pg.execute('SELECT count(*) FROM %s WHERE %s' % (table, where), dbname=DATABASE)[0][0]


def connection(pg):
    return dict(login_host=pg.host, login_port=pg.port, login_user=pg.superuser, login_password=pg.superuser_password)


def snapshot_task(pg, dest, register='db_snapshot_result'):
    """This play's snapshot, as db_snapshot registers it. Plain + gzip: the image-independent choice (no zstandard)."""
    return {'name': 'snapshot', 'engineroom.maintenance.snapshot_archive': dict(
        connection(pg), database=DATABASE, dest=dest, format='plain', compression='gzip', slot='always'), 'register': register}


def role(name, **variables):
    return {'name': name, 'ansible.builtin.include_role': {'name': 'engineroom.maintenance.db_optimize'},
            'vars': variables}


def guarded(name, variables):
    """The role in a block whose rescue swallows its failure, so the next case still runs."""
    return {'name': name, 'block': [role(name, **variables)],
            'rescue': [{'name': 'rescued ' + name, 'ansible.builtin.debug': {'msg': 'rescued'}}]}


def results(run, name):
    return [t for t in run.tasks if t['_task'] == name]


def test_purge_after_this_plays_snapshot_then_vacuum_review_and_idempotence(app, tmp_path):
    pg = app
    dest = str(tmp_path / 'snapshots')
    fleet = dict(engineroom_postgres=dict(connection(pg), container='ignored-here'), engineroom_database=DATABASE,
                 engineroom_backup_dir=str(tmp_path / 'elsewhere'))
    mine = dict(db_optimize_purge_rules=RULES, db_optimize_vacuum_min_dead_tuples=500)
    reverify = {'name': 'reverify', 'engineroom.maintenance.snapshot_archive': dict(
        state='verified', database=DATABASE, dest=dest), 'register': 'db_snapshot_result'}
    run = run_tasks([snapshot_task(pg, dest), role('optimize', **mine), reverify, role('again', **mine)], extra_vars=fleet)
    assert run.rc == 0, json.dumps(run.tasks)[-4000:]
    snapshot = run.result('snapshot')['snapshot']
    (audit, notices), (audit2, notices2) = (r['results'] for r in results(run, PURGE))
    vacuum, vacuum2 = results(run, VACUUM)
    review, review2 = results(run, REVIEW)

    # The purge relied on this play's snapshot (not on engineroom_backup_dir, which holds none).
    assert audit['snapshot']['manifest'] == snapshot['manifest_path'] and snapshot['status'] == 'written'
    assert audit['rows_deleted'] == OLD_AUDIT and audit['remaining'] == 0 and audit['changed'] is True
    assert notices['rows_deleted'] == OLD_READ and notices['batches'] == 3
    assert count(pg, 'audit_log') == 364 and count(pg, 'audit_log', "created_at < now() - interval '365 days'") == 0
    assert count(pg, 'notifications', "status = 'read' AND created_at < now() - interval '180 days'") == 0
    assert count(pg, 'notifications', "status = 'unread'") == 200

    # The vacuum took the bloated table and the purge's dead rows (636 >= the 500 asked for) in the same run.
    done = dict((t['table'], t) for t in vacuum['tables'] if t['status'] == 'done')
    assert done['orders']['dead_tuples_before'] == 3000 and done['orders']['dead_tuples_after'] == 0
    assert done['audit_log']['dead_tuples_before'] == OLD_AUDIT and done['audit_log']['action'] == 'vacuum_analyze'
    assert done['notifications']['action'] == 'analyze'  # few dead rows, but stale statistics
    stats = table_stats(pg, DATABASE, ['orders', 'audit_log'])
    assert stats['orders'][1] == 0 and stats['audit_log'][1] == 0

    assert review['changed'] is False and review['databases'] == [DATABASE]
    assert set(t['table'] for t in review['largest_tables']) >= {'orders', 'audit_log', 'notifications'}
    recorded = run.result(ROLE + 'Show what was done and found')['msg']
    assert recorded[0] == audit['summary'] and vacuum['summary'] in recorded and review['summary'] in recorded

    # The second run trusted the re-verification's result (state=verified shape) and found its manifest.
    recorded = [t['ansible_facts']['db_optimize_result'] for t in results(run, ROLE + 'Register the results as db_optimize_result')]
    assert recorded[0]['snapshot_manifest'] == recorded[1]['snapshot_manifest'] == snapshot['manifest_path']

    # Second run in the same slot: nothing to purge, nothing above the thresholds.
    assert not any(r['changed'] for r in (audit2, notices2, vacuum2, review2))
    assert audit2['rows_deleted'] == 0 and audit2['snapshot'] is None
    assert vacuum2['tables_processed'] == 0


def test_check_mode_counts_behind_a_planned_snapshot(app, tmp_path):
    pg = app
    dest = str(tmp_path / 'snapshots')
    run = run_tasks([snapshot_task(pg, dest), role('plan', db_optimize_purge_rules=RULES[:1], db_optimize_database=DATABASE,
                                                   db_optimize_postgres=connection(pg))], check=True)
    assert run.rc == 0, json.dumps(run.tasks)[-4000:]
    assert run.result('snapshot')['snapshot']['status'] == 'planned'
    audit = run.result(PURGE)['results'][0]
    assert audit['would_delete'] == OLD_AUDIT and audit['rows_deleted'] == 0 and audit['changed'] is True
    assert run.result(VACUUM)['tables'][0]['status'] == 'planned'
    assert not os.path.exists(dest) or os.listdir(dest) == []
    assert count(pg, 'audit_log') == 1000
    assert table_stats(pg, DATABASE, ['orders'])['orders'][1] == 3000


def test_gate_and_bad_inputs_change_nothing(app, tmp_path):
    pg = app
    empty = str(tmp_path / 'empty')
    os.makedirs(empty)
    base = dict(db_optimize_postgres=connection(pg), db_optimize_database=DATABASE, db_optimize_purge_rules=RULES,
                db_optimize_snapshot_dest=empty)
    run = run_tasks([
        guarded('failed snapshot', dict(base, db_optimize_snapshot_result={'failed': True, 'msg': 'pg_dump exited with 1'})),
        guarded('failed re-verification', dict(base, db_optimize_snapshot_result={'snapshot': {
            'status': 'written', 'manifest_path': '/nonexistent.manifest.json'}, 'verified': [{'ok': True}]},
            db_optimize_snapshot_verify_result={'failed': True, 'msg': 'sha256 differs', 'verified': [{'ok': False}]})),
        guarded('no snapshot anywhere', base),
        guarded('no database', dict(base, db_optimize_database='')),
        guarded('rule without column', dict(base, db_optimize_purge_rules=[dict(table='audit_log', older_than_days=30)])),
    ])
    gate, reverify = [r for r in results(run, GATE) if r.get('failed')]
    assert 'the snapshot taken in this play did not verify (pg_dump exited with 1)' in gate['msg']
    assert 'the snapshot taken in this play did not verify (sha256 differs)' in reverify['msg']
    refused = results(run, PURGE)[0]
    assert refused['failed'] is True
    messages = [r['msg'] for r in refused['results'] if r.get('failed')]
    assert messages[0].startswith('refusing to delete %d rows from public.audit_log: no verified snapshot of database '
                                  'opt_app newer than 24 h in %s' % (OLD_AUDIT, empty))
    named = [r for r in results(run, ROLE + 'Check the database to optimize is named') if r.get('failed')]
    assert len(named) == 1 and 'db_optimize_database is empty: set engineroom_database' in named[0]['msg']
    spec = [t for t in run.tasks if t.get('failed') and 'timestamp_column' in t.get('msg', '')]
    assert spec and 'missing required arguments: timestamp_column' in spec[0]['msg']
    assert len([t for t in run.tasks if t['_task'].startswith('rescued ')]) == 5

    # Nothing was deleted or vacuumed by any of them.
    assert count(pg, 'audit_log') == 1000 and count(pg, 'notifications') == 400
    assert table_stats(pg, DATABASE, ['orders'])['orders'][1] == 3000
    assert not any(t['_task'] == VACUUM and t.get('changed') for t in run.tasks)

"""pg_vacuum through real ansible-playbook runs against a real PostgreSQL 15 database.

``care_vacuum`` has 45 tables with autovacuum off; each test puts it back clean
and bloats a known subset (see conftest.py for how statistics lag is handled).
Assertions are on the module's JSON and on the statistics read afterwards from
a new connection.
"""

from __future__ import annotations

from tests.harness.playbook import run_tasks
from tests.harness.ports import free_port
from tests.integration.pg_care.conftest import (
    LIMITED_PASSWORD,
    LIMITED_ROLE,
    VACUUM_DB,
    VACUUM_DB_B,
    connection_options,
)

MODULE = 'engineroom.maintenance.pg_vacuum'
UPDATED = ['t03', 't17', 'big']
DELETED = ['t11', 't29']
BLOATED = UPDATED + DELETED


def task(name, check=False, **args):
    entry = {'name': name, MODULE: args, 'ignore_errors': True}
    if check:
        entry['check_mode'] = True
    return entry


def by_table(result):
    return dict((e['table'], e) for e in result['tables'])


def test_selects_exactly_the_bloated_tables_and_second_run_is_unchanged(pg, vacuum_db):
    vacuum_db.bloat(updated=UPDATED, deleted=DELETED)
    vacuum_db.bloat(updated=['t05'], fraction=0.05)  # 100 dead tuples: under min_dead_tuples
    vacuum_db.bloat(inserted=['t08'])                # 500 new rows: stale statistics only
    before = vacuum_db.stats(BLOATED + ['t05', 't08'])
    opts = connection_options(pg, VACUUM_DB)
    run = run_tasks([task('plan', check=True, **opts), task('first', **opts), task('second', **opts)], diff=True)
    plan, first, second = run.result('plan'), run.result('first'), run.result('second')

    # Check mode: the plan, nothing executed, and the figures it read are the real ones.
    assert plan['changed'] is True
    assert set(by_table(plan)) == set(BLOATED) | {'t08'}
    assert all(e['status'] == 'planned' for e in plan['tables'])
    assert not any(c.startswith(('VACUUM', 'ANALYZE')) for c in plan['executed_commands'])
    assert by_table(plan)['t08']['action'] == 'analyze'
    assert by_table(plan)['t08']['reason'].startswith('modified since analyze 500 rows')

    # The real run: exactly the bloated subset vacuumed, the stale one analyzed, largest first.
    assert first['changed'] is True, first.get('msg')
    tables = by_table(first)
    assert set(tables) == set(BLOATED) | {'t08'}
    assert first['tables'][0]['table'] == 'big'
    for name in BLOATED:
        entry = tables[name]
        assert entry['action'] == 'vacuum_analyze' and entry['status'] == 'done', entry
        assert entry['dead_tuples_before'] == before[name][1] > 0  # check mode changed nothing
        assert entry['dead_tuples_after'] == 0
        assert entry['database'] == VACUUM_DB and entry['schema'] == 'public'
        assert entry['size_bytes_before'] > 0 and entry['size_bytes_after'] > 0
    assert tables['t08']['status'] == 'done' and tables['t08']['dead_tuples_after'] == 0
    assert first['dead_tuples_removed'] == sum(before[n][1] for n in BLOATED) == 8400
    assert first['metrics']['tables_processed'] == first['tables_processed'] == 6
    assert first['metrics']['tables_considered'] == 45
    assert 'VACUUM (ANALYZE) "public"."big"' in first['executed_commands']
    assert 'ANALYZE "public"."t08"' in first['executed_commands']
    assert first['diff']['before']['%s.public.t03' % VACUUM_DB] == 1200
    assert first['diff']['after']['%s.public.t03' % VACUUM_DB] == 0
    assert first['summary'].startswith('pg_vacuum: 6 of 45 tables done in 1 database(s), 8,400 dead tuples removed')

    # Real state, from a new connection: dead tuples gone, t05 untouched, t08 analyzed.
    after = vacuum_db.stats(BLOATED + ['t05', 't08'])
    assert all(after[n][1] == 0 and after[n][2] == 0 for n in BLOATED + ['t08'])
    assert after['t05'][1] == 100

    # Second run: nothing above the thresholds any more.
    assert second['changed'] is False
    assert second['tables'] == [] and second['tables_processed'] == 0


def test_lock_held_by_another_session_is_skipped_and_budget_defers(pg, vacuum_db):
    vacuum_db.bloat(updated=UPDATED, deleted=DELETED)
    holder = pg.connect(VACUUM_DB)
    holder.autocommit = False
    opts = connection_options(pg, VACUUM_DB)
    try:
        with holder.cursor() as cursor:
            cursor.execute('LOCK TABLE big IN ACCESS EXCLUSIVE MODE')
        run = run_tasks([
            # big is the largest, so it comes first and waits 1.5 s: the 1 s budget is then spent.
            task('budget', lock_timeout_ms=1500, max_duration_s=1, **opts),
            task('locked', lock_timeout_ms=300, **opts),
        ])
    finally:
        holder.rollback()
        holder.close()
    budget, locked = run.result('budget'), run.result('locked')

    assert budget['changed'] is False
    assert budget['tables'][0]['table'] == 'big'
    assert budget['tables'][0]['status'] == 'skipped' and budget['tables'][0]['reason'] == 'lock_timeout'
    assert [e['status'] for e in budget['tables'][1:]] == ['deferred'] * 4
    assert budget['metrics']['tables_deferred'] == 4
    assert '4 deferred' in budget['summary']

    assert locked['changed'] is True
    tables = by_table(locked)
    assert tables['big']['status'] == 'skipped' and tables['big']['reason'] == 'lock_timeout'
    assert all(tables[n]['status'] == 'done' for n in BLOATED if n != 'big')
    assert '1 skipped (lock_timeout: 1)' in locked['summary']
    after = vacuum_db.stats(BLOATED)
    assert after['big'][1] == 3600  # still bloated: nobody vacuumed it
    assert all(after[n][1] == 0 for n in BLOATED if n != 'big')


def test_two_jobs_give_the_same_result_as_one(pg, vacuum_db):
    results = {}
    for jobs in (1, 2):
        vacuum_db.reset()
        vacuum_db.bloat(updated=UPDATED, deleted=DELETED)
        run = run_tasks([task('vacuum', jobs=jobs, **connection_options(pg, VACUUM_DB))])
        results[jobs] = run.result('vacuum')
    one, two = results[1], results[2]
    assert one['changed'] is two['changed'] is True
    summary = dict((jobs, sorted((e['table'], e['action'], e['status'], e['dead_tuples_before'], e['dead_tuples_after'])
                                 for e in r['tables'])) for jobs, r in results.items())
    assert summary[1] == summary[2]
    assert one['dead_tuples_removed'] == two['dead_tuples_removed'] == 8400
    # Two connections really worked: each set its own session settings.
    assert sum(1 for c in two['executed_commands'] if c.startswith("SELECT set_config('lock_timeout'")) == 2
    assert all(v[1] == 0 for v in vacuum_db.stats(BLOATED).values())


def test_modes_full_and_analyze_and_several_databases(pg, vacuum_databases, vacuum_db):
    vacuum_db.bloat(deleted=['archive.full_target'], updated=['t03'])
    vacuum_db.bloat(inserted=['t08'])
    other = vacuum_databases[1]
    other.reset()
    other.bloat(updated=['t21'])
    opts = connection_options(pg, VACUUM_DB)
    run = run_tasks([
        task('analyze only', mode='analyze', **opts),
        task('full', mode='full', allow_full=True, schemas=['archive'], **opts),
        task('both databases', databases=[VACUUM_DB, VACUUM_DB_B], tables=['t0*', 't2?', 'no_such_*'], **opts),
        task('every database', check=True, databases=['all'], force=True, tables=['t00'], **opts),
    ])
    analyze = run.result('analyze only')
    # Every table written since its last analyze is stale, bloated or not; ANALYZE removes no dead tuple.
    assert sorted((e['table'], e['action'], e['status']) for e in analyze['tables']) == [
        ('full_target', 'analyze', 'done'), ('t03', 'analyze', 'done'), ('t08', 'analyze', 'done')]
    assert analyze['dead_tuples_removed'] == 0

    full = run.result('full')
    entry = full['tables'][0]
    assert (entry['schema'], entry['table'], entry['action'], entry['status']) == ('archive', 'full_target', 'full', 'done')
    assert entry['size_bytes_after'] < entry['size_bytes_before']
    assert full['bytes_reclaimed'] == entry['size_bytes_before'] - entry['size_bytes_after'] > 0
    assert 'VACUUM (FULL, ANALYZE) "archive"."full_target"' in full['executed_commands']

    both = run.result('both databases')
    assert both['databases'] == [VACUUM_DB, VACUUM_DB_B]
    assert sorted((e['database'], e['table']) for e in both['tables']) == [(VACUUM_DB, 't03'), (VACUUM_DB_B, 't21')]
    assert both['unmatched_patterns'] == ['no_such_*']
    assert any('no_such_*' in w for w in both.get('warnings', []))
    assert other.stats(['t21'])['t21'][1] == 0

    every = run.result('every database')
    assert {VACUUM_DB, VACUUM_DB_B, 'postgres'} <= set(every['databases'])
    assert not {'template0', 'template1'} & set(every['databases'])
    assert {VACUUM_DB, VACUUM_DB_B} <= set(e['database'] for e in every['tables'])
    assert all(e['status'] == 'planned' and e['reason'] == 'forced' for e in every['tables'])


def test_tables_the_login_role_may_not_maintain_are_skipped(pg, vacuum_db):
    vacuum_db.bloat(updated=['t03', 'owned_a'])
    run = run_tasks([task('limited', **connection_options(pg, VACUUM_DB, LIMITED_ROLE, LIMITED_PASSWORD))])
    result = run.result('limited')
    tables = by_table(result)
    assert tables['t03']['status'] == 'skipped' and tables['t03']['reason'] == 'insufficient_privilege'
    assert tables['owned_a']['status'] == 'done' and tables['owned_a']['dead_tuples_after'] == 0
    assert result['changed'] is True and 'failed' not in result
    after = vacuum_db.stats(['t03', 'owned_a'])
    assert after['t03'][1] == 1200 and after['owned_a'][1] == 0
    assert LIMITED_PASSWORD not in repr(run.report)


INJECTION = 'x"; DROP TABLE y; --'


def test_bad_inputs_fail_clearly_and_change_nothing(pg, vacuum_db):
    vacuum_db.bloat(updated=UPDATED)
    opts = connection_options(pg, VACUUM_DB)
    cases = [
        ('unknown database', dict(opts, databases=['no_such_db']), "database 'no_such_db' does not exist"),
        ('full without allow_full', dict(opts, mode='full'), 'set allow_full: true to confirm'),
        ('negative min_dead_tuples', dict(opts, min_dead_tuples=-1), 'min_dead_tuples must not be negative'),
        ('negative min_dead_ratio', dict(opts, min_dead_ratio=-0.5), 'min_dead_ratio must not be negative'),
        ('zero lock timeout', dict(opts, lock_timeout_ms=0), 'lock_timeout_ms must be positive'),
        ('jobs zero', dict(opts, jobs=0), 'jobs must be between 1 and 8 (got 0)'),
        ('jobs too many', dict(opts, jobs=9), 'jobs must be between 1 and 8 (got 9)'),
        ('all and names', dict(opts, databases=['all', VACUUM_DB]), 'give either all or a list of names'),
        ('refused', dict(opts, login_port=free_port()), 'is PostgreSQL running and listening there?'),
    ]
    tasks = [task(name, **args) for name, args, message in cases]
    tasks.append(task('injection', tables=[INJECTION], **opts))
    tasks.append(task('nothing matches', tables=['public.nothing_*'], **opts))
    run = run_tasks(tasks)
    for name, args, message in cases:
        result = run.result(name)
        assert result.get('failed') is True, name
        assert message in result['msg'], (name, result['msg'])
        assert 'Traceback' not in result.get('module_stderr', '') + result.get('exception', '')
    for name in ('injection', 'nothing matches'):
        result = run.result(name)
        assert 'failed' not in result and result['changed'] is False
        assert result['tables'] == [] and result['metrics']['tables_considered'] == 0
    assert run.result('injection')['unmatched_patterns'] == [INJECTION]
    assert run.result('nothing matches')['unmatched_patterns'] == ['public.nothing_*']
    # Nothing changed: y survives, the bloated tables are still bloated.
    assert pg.execute('SELECT count(*) FROM y', dbname=VACUUM_DB)[0][0] == 10
    after = vacuum_db.stats(UPDATED)
    assert [after[n][1] for n in UPDATED] == [1200, 1200, 3600]

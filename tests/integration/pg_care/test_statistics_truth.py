"""Statistics against the truth on a real PostgreSQL 15 cluster, pgstattuple as the judge.

* Stale statistics: ``events`` was analyzed at 1,000 rows and has 301,000;
  pg_insight reports it as a finding (estimate against live rows, rows
  modified since analyze) and pg_vacuum's ANALYZE puts ``reltuples`` right.
* Counts, not estimates: non-HOT updates of 20 % of ``pruned`` followed by a
  read leave the statistics counting 4,000 dead tuples that page pruning has
  already reduced to line pointers; pgstattuple finds none. pg_insight, with
  pgstattuple installed, reports the measured count and no candidate.
* ``top_n`` limits the rows shown, never the number of candidates the summary
  and the metrics count.
"""

from __future__ import annotations

import pytest

from tests.harness.playbook import run_tasks
from tests.integration.pg_care.conftest import connection_options, flush_and_close, pgstattuple, wait_for_stats

DB = 'truth_stats'


def care(module, name, pg, **args):
    return {'name': name, 'engineroom.maintenance.' + module: dict(connection_options(pg, DB), **args),
            'ignore_errors': True}


@pytest.fixture
def stats_db(truth_pg):
    pg = truth_pg
    pg.execute('DROP DATABASE IF EXISTS %s' % DB)
    pg.create_database(DB)
    conn = pg.connect(DB)
    with conn.cursor() as cursor:
        cursor.execute('CREATE TABLE events (id int, kind text) WITH (autovacuum_enabled = false)')
        cursor.execute("INSERT INTO events SELECT g, 'k' FROM generate_series(1, 1000) g")
        cursor.execute('CREATE TABLE pruned (id int PRIMARY KEY, v int, pad text) WITH (autovacuum_enabled = false)')
        cursor.execute('CREATE INDEX pruned_v ON pruned (v)')
        cursor.execute("INSERT INTO pruned SELECT g, g, repeat('x', 100) FROM generate_series(1, 20000) g")
        for name in ('b1', 'b2', 'b3'):
            cursor.execute('CREATE TABLE %s (id int, n int) WITH (autovacuum_enabled = false)' % name)
            cursor.execute('INSERT INTO %s SELECT g, 0 FROM generate_series(1, 3000) g' % name)
    flush_and_close(conn)
    pg.execute('VACUUM ANALYZE', dbname=DB)
    conn = pg.connect(DB)
    with conn.cursor() as cursor:
        cursor.execute("INSERT INTO events SELECT g, 'k' FROM generate_series(1001, 301000) g")
        cursor.execute('UPDATE pruned SET v = v + 1 WHERE id % 5 = 0')  # v is indexed: no HOT update
        for name in ('b1', 'b2', 'b3'):
            cursor.execute('UPDATE %s SET n = 1 WHERE id <= 2000' % name)
    flush_and_close(conn)
    pg.execute('SELECT count(*) FROM pruned', dbname=DB)  # the read prunes the full pages
    wait_for_stats(pg, DB, dict(events=(301000, 0), pruned=(20000, 4000), b1=(3000, 2000), b2=(3000, 2000),
                                b3=(3000, 2000)))
    return pg


def test_stale_statistics_are_a_finding_and_pg_vacuum_analyzes_them(stats_db):
    pg = stats_db
    run = run_tasks([care('pg_insight', 'review', pg, sections=['stale_statistics']),
                     care('pg_vacuum', 'analyze', pg, mode='analyze', tables=['events']),
                     care('pg_insight', 'after', pg, sections=['stale_statistics'])])
    review = run.result('review')
    stale = dict((r['table'], r) for r in review['stale_statistics'])
    assert stale['events']['estimated_rows'] == 1000 and stale['events']['live_tuples'] == 301000
    assert 'row estimate 1000 against 301000 live rows' in stale['events']['reason']
    assert 'modified since analyze 300000 rows' in stale['events']['reason']
    assert any('planner statistics of public.events are stale' in f for f in review['findings']), review['findings']
    assert review['metrics']['stale_statistics_tables'] == len(stale)

    analyzed = run.result('analyze')
    assert analyzed['tables'][0]['status'] == 'done' and analyzed['tables'][0]['action'] == 'analyze'
    assert pg.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'events'", dbname=DB)[0][0] == 301000
    assert 'events' not in [r['table'] for r in run.result('after')['stale_statistics']]


def test_counts_are_measured_and_top_n_does_not_change_the_count(stats_db):
    pg = stats_db
    statistics_dead = pg.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'pruned'", dbname=DB)[0][0]
    measured_dead = pgstattuple(pg, DB, 'pruned')[1]
    assert statistics_dead == 4000 and measured_dead < 400  # page pruning left line pointers only
    run = run_tasks([care('pg_insight', 'top1', pg, sections=['bloat'], top_n=1),
                     care('pg_insight', 'top10', pg, sections=['bloat'], top_n=10)])
    top1, top10 = run.result('top1'), run.result('top10')
    rows = dict((r['table'], r) for r in top10['bloat'])
    assert rows['pruned']['dead_tuples'] == measured_dead and rows['pruned']['candidate'] is False
    assert rows['pruned']['source'] == 'pgstattuple_approx'
    for name in ('b1', 'b2', 'b3'):
        assert rows[name]['dead_tuples'] == pgstattuple(pg, DB, name)[1] == 2000 and rows[name]['candidate'] is True
    assert top1['metrics']['bloat_candidates'] == top10['metrics']['bloat_candidates'] == 3
    assert '3 bloat candidates' in top1['summary'] and '3 bloat candidates' in top10['summary']
    assert sorted(r['table'] for r in top1['bloat']) == ['b1', 'b2', 'b3']  # every candidate, even past top_n

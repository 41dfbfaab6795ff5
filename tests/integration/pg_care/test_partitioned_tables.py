"""Partitioned parents on a real PostgreSQL 15 cluster: accepted by name, partitions vacuumed, the parent analyzed.

Autovacuum never analyzes a partitioned parent, so ``measurements`` has no
statistics (``reltuples`` -1) however often its partitions are vacuumed.
``tables: [measurements]`` must select the parent and its partitions: the
bloated partition is vacuumed (pgstattuple finds no dead tuple left), the
clean one is left alone, the parent is analyzed, and a second run has nothing
to do.
"""

from __future__ import annotations

import pytest

from tests.harness.playbook import run_tasks
from tests.integration.pg_care.conftest import connection_options, flush_and_close, pgstattuple, wait_for_stats

DB = 'truth_parts'
PER_PARTITION = 5000


@pytest.fixture
def parts_db(truth_pg):
    pg = truth_pg
    pg.execute('DROP DATABASE IF EXISTS %s' % DB)
    pg.create_database(DB)
    conn = pg.connect(DB)
    with conn.cursor() as cursor:
        cursor.execute('CREATE TABLE measurements (id int, ts date, v int) PARTITION BY RANGE (ts)')
        for year in (2025, 2026):
            cursor.execute("CREATE TABLE measurements_%d PARTITION OF measurements FOR VALUES FROM ('%d-01-01') "
                           "TO ('%d-01-01') WITH (autovacuum_enabled = false)" % (year, year, year + 1))
            cursor.execute("INSERT INTO measurements SELECT g, '%d-03-01'::date + (g %% 200), 0 "
                           "FROM generate_series(1, %d) g" % (year, PER_PARTITION))
        cursor.execute('CREATE TABLE other (id int) WITH (autovacuum_enabled = false)')
    flush_and_close(conn)
    pg.execute('VACUUM ANALYZE measurements_2025, measurements_2026, other', dbname=DB)
    conn = pg.connect(DB)
    with conn.cursor() as cursor:
        cursor.execute("UPDATE measurements SET v = 1 WHERE ts >= '2026-01-01' AND id <= %s", (PER_PARTITION // 2,))
    flush_and_close(conn)
    wait_for_stats(pg, DB, dict(measurements_2026=(PER_PARTITION, PER_PARTITION // 2)))
    return pg


def parent_statistics(pg):
    return pg.execute("SELECT c.reltuples::bigint, s.last_analyze IS NOT NULL FROM pg_class c "
                      "JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.relname = 'measurements'", dbname=DB)[0]


def test_parent_by_name_vacuums_its_bloated_partition_and_analyzes_the_parent(parts_db):
    pg = parts_db
    assert parent_statistics(pg) == (-1, False)
    task = {'engineroom.maintenance.pg_vacuum': dict(connection_options(pg, DB), tables=['measurements']),
            'ignore_errors': True}
    run = run_tasks([dict(task, name='first'), dict(task, name='second')])
    first = run.result('first')
    assert 'failed' not in first, first.get('msg')
    assert first['unmatched_patterns'] == [] and first['changed'] is True
    entries = dict((e['table'], e) for e in first['tables'])
    assert set(entries) == {'measurements', 'measurements_2026'}, entries
    assert entries['measurements_2026']['status'] == 'done'
    assert entries['measurements_2026']['dead_tuples_before'] == PER_PARTITION // 2
    assert entries['measurements']['action'] == 'analyze' and entries['measurements']['status'] == 'done'
    assert entries['measurements']['reason'] == 'partitioned parent never analyzed'
    assert first['metrics']['tables_considered'] == 3  # the parent and both partitions; not "other"

    assert parent_statistics(pg) == (2 * PER_PARTITION, True)
    assert pgstattuple(pg, DB, 'measurements_2026')[1] == 0

    second = run.result('second')
    assert second['changed'] is False and second['tables'] == [], second['tables']

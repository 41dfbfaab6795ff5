"""Index findings that hold, on a real PostgreSQL 15 cluster with pgstattuple.

``orders`` carries an exact duplicate of a plain index, an index covered by
the leading column of another, a unique index that looks redundant but
enforces a constraint (never reported), and an index that half its rows were
deleted from and vacuumed (pgstatindex measures its leaf density).
"""

from __future__ import annotations

import pytest

from tests.harness.playbook import run_tasks
from tests.integration.pg_care.conftest import connection_options, flush_and_close

DB = 'truth_indexes'


@pytest.fixture
def index_db(truth_pg):
    pg = truth_pg
    pg.execute('DROP DATABASE IF EXISTS %s' % DB)
    pg.create_database(DB)
    conn = pg.connect(DB)
    with conn.cursor() as cursor:
        cursor.execute('CREATE TABLE orders (id int PRIMARY KEY, customer int, placed date, ref text) '
                       'WITH (autovacuum_enabled = false)')
        cursor.execute("INSERT INTO orders SELECT g, g % 500, '2026-01-01'::date + g % 300, md5(g::text) "
                       "FROM generate_series(1, 50000) g")
        cursor.execute('CREATE INDEX orders_customer ON orders (customer)')
        cursor.execute('CREATE INDEX orders_customer_again ON orders (customer)')
        cursor.execute('CREATE INDEX orders_customer_placed ON orders (customer, placed)')
        cursor.execute('CREATE UNIQUE INDEX orders_id_ref ON orders (id, ref)')
        cursor.execute('ALTER TABLE orders ADD CONSTRAINT orders_ref_unique UNIQUE (ref)')
        cursor.execute('CREATE INDEX orders_ref_plain ON orders (ref)')
        cursor.execute('DELETE FROM orders WHERE id % 4 <> 0')
    flush_and_close(conn)
    pg.execute('VACUUM orders', dbname=DB)
    return pg


def test_duplicates_overlaps_unused_and_leaf_density(index_db):
    pg = index_db
    run = run_tasks([{'name': 'review', 'ignore_errors': True, 'engineroom.maintenance.pg_insight': dict(
        connection_options(pg, DB), sections=['unused_indexes', 'duplicate_indexes', 'index_bloat'], top_n=20)}])
    result = run.result('review')
    assert 'failed' not in result, result.get('msg')
    redundant = dict((r['index'], r) for r in result['duplicate_indexes'])
    assert redundant['orders_customer_again']['kind'] == 'duplicate'
    assert redundant['orders_customer_again']['covered_by'] == 'orders_customer'
    assert redundant['orders_customer']['kind'] == 'overlapping'
    assert redundant['orders_customer']['covered_by'] == 'orders_customer_placed'
    # orders_ref_plain duplicates the constraint's index: the plain one is redundant, the constraint's never.
    assert redundant['orders_ref_plain'] == dict(database=DB, schema='public', table='orders', index='orders_ref_plain',
                                                 kind='duplicate', covered_by='orders_ref_unique',
                                                 size_bytes=redundant['orders_ref_plain']['size_bytes'])
    assert not set(redundant) & {'orders_pkey', 'orders_id_ref', 'orders_ref_unique', 'orders_customer_placed'}
    assert result['metrics']['redundant_indexes'] == 3
    assert any('orders_customer_again duplicates orders_customer' in f for f in result['findings'])

    unused = [r['index'] for r in result['unused_indexes']]
    assert 'orders_customer' in unused and 'orders_pkey' not in unused and 'orders_ref_unique' not in unused
    assert all(r['stats_since'].endswith('Z') and r['stats_age_s'] >= 0 for r in result['unused_indexes'])

    bloat = result['index_bloat'][0]
    assert bloat['available'] is True
    measured = dict((r['index'], r) for r in bloat['indexes'])
    truth = pg.execute("SELECT avg_leaf_density FROM pgstatindex('orders_customer_placed')", dbname=DB)[0][0]
    assert measured['orders_customer_placed']['avg_leaf_density'] == truth
    assert truth < 50 and any('orders_customer_placed is' in f and 'REINDEX' in f for f in result['findings'])

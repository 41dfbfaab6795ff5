"""pg_insight's pure parts: reloptions parsing and the sections' catalogue."""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare import insight as ins


def test_parse_reloptions():
    assert ins.parse_reloptions(['autovacuum_enabled=false', 'fillfactor=90', 'odd']) == dict(
        autovacuum_enabled='false', fillfactor='90')
    assert ins.parse_reloptions(None) == {}


def test_every_section_has_a_function_and_a_scope():
    assert set(ins.SECTION_FUNCTIONS) == set(ins.SECTIONS)
    assert not set(ins.CLUSTER_SECTIONS) & set(ins.DATABASE_SECTIONS)

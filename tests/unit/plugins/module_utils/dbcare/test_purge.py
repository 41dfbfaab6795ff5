"""pg_purge's pure parts: names, where triples, cut-offs, timestamps, and the snapshot evidence on real files."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots import manifest as mf
from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare import purge as pu
from ansible_collections.engineroom.maintenance.plugins.module_utils.common import time as clock

NOW = datetime.datetime(2026, 11, 23, 12, 0, 0, tzinfo=datetime.timezone.utc)


def snapshot(dest, database='app', verified_h=2.0, verified=True, size=4, write_artifact=True):
    moment = NOW - datetime.timedelta(hours=verified_h + 0.5)
    name = mf.artifact_name(database, 'database', moment, 'dump.zst')
    if write_artifact:
        (dest / name).write_bytes(b'dump')
    manifest = dict(schema_version=1, tier='database', created_at=clock.iso_utc(moment),
                    verified_at=clock.iso_utc(NOW - datetime.timedelta(hours=verified_h)) if verified else None,
                    host='db1', artifact=dict(file=name, size_bytes=size, sha256='x'), database=dict(name=database))
    path = dest / (name + mf.MANIFEST_SUFFIX)
    path.write_text(json.dumps(manifest))
    return str(path)


def test_split_table():
    assert pu.split_table('audit_log') == ('public', 'audit_log')
    assert pu.split_table('app.audit_log') == ('app', 'audit_log')


@pytest.mark.parametrize('clause, message', [
    (dict(column='a', op='is null', value=1), 'takes no value'),
    (dict(column='a', op='in', value='x'), 'needs a non-empty list'),
    (dict(column='a', op='in', value=[]), 'needs a non-empty list'),
    (dict(column='a', op='not in', value=[['x']]), 'list items must be plain values'),
    (dict(column='a', op='=', value=None), 'needs one plain value'),
    (dict(column='a', op='<', value=[1]), 'needs one plain value'),
])
def test_check_where_refuses(clause, message):
    with pytest.raises(pu.PurgeError, match=message):
        pu.check_where([clause])


def test_check_where_accepts():
    pu.check_where([dict(column='a', op='in', value=['x', 1]), dict(column='b', op='is not null', value=None),
                    dict(column='c', op='>=', value=3)])


def test_cutoff_and_moment_text():
    assert pu.cutoff_for('timestamptz', 365, NOW) == NOW - datetime.timedelta(days=365)
    assert pu.cutoff_for('date', 1, NOW) == datetime.date(2026, 11, 22)
    assert pu.moment_text(datetime.datetime(2026, 1, 2, 3, 4, 5)) == '2026-01-02T03:04:05Z'
    assert pu.moment_text(datetime.datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=datetime.timezone.utc)) == \
        '2026-01-02T03:04:05.250000Z'
    assert pu.moment_text(datetime.date(2026, 1, 2)) == '2026-01-02'
    assert pu.moment_text(None) is None


def test_snapshot_from_dest_and_from_manifest(tmp_path):
    path = snapshot(tmp_path)
    found = pu.snapshot_evidence('app', 24, dest=str(tmp_path), now=NOW)
    assert found['manifest'] == path and found['age_h'] == 2.0
    assert found['artifact'] == path[:-len(mf.MANIFEST_SUFFIX)]
    assert pu.snapshot_evidence('app', 24, manifest_path=path, now=NOW)['manifest'] == path


@pytest.mark.parametrize('kwargs, within_h, message', [
    (dict(verified_h=30), 24, 'more than 24 h ago'),
    (dict(verified=False), 24, 'was never verified'),
    (dict(database='other'), 24, "is of database 'other', not 'app'"),
    (dict(size=5), 24, 'the snapshot is damaged'),
    (dict(write_artifact=False), 24, 'which is missing'),
])
def test_snapshot_manifest_refusals(tmp_path, kwargs, within_h, message):
    path = snapshot(tmp_path, **kwargs)
    with pytest.raises(pu.PurgeError, match=message):
        pu.snapshot_evidence('app', within_h, manifest_path=path, now=NOW)


def test_snapshot_dest_refusals(tmp_path):
    snapshot(tmp_path, verified_h=30)
    with pytest.raises(pu.PurgeError, match='no verified snapshot of database app newer than 24 h'):
        pu.snapshot_evidence('app', 24, dest=str(tmp_path), now=NOW)
    corrupt = tmp_path / 'x.manifest.json'
    corrupt.write_text('{not json')
    with pytest.raises(pu.PurgeError, match='not valid JSON'):
        pu.snapshot_evidence('app', 24, manifest_path=str(corrupt), now=NOW)

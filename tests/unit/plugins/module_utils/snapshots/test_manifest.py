"""Artifact naming and manifest reading on real files."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots import manifest as mf
from ansible_collections.engineroom.maintenance.plugins.module_utils.common import time as clock

MOMENT = datetime.datetime(2026, 11, 23, 2, 0, 0, tzinfo=datetime.timezone.utc)


def write_snapshot(dest, prefix='app', tier='database', moment=MOMENT, verified=True, database='app', body=None):
    name = mf.artifact_name(prefix, tier, moment, 'dump.zst')
    (dest / name).write_bytes(b'dump')
    manifest = body if body is not None else dict(
        schema_version=1, tier=tier, created_at=clock.iso_utc(moment),
        verified_at=clock.iso_utc(moment + datetime.timedelta(minutes=1)) if verified else None,
        host='db1', artifact=dict(file=name, size_bytes=4, sha256='x'), database=dict(name=database))
    (dest / (name + mf.MANIFEST_SUFFIX)).write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return dest / name


def test_name_round_trip():
    name = mf.artifact_name('my-app', 'full', MOMENT, 'tar.zst')
    assert name == 'my-app-full-20261123T020000Z.tar.zst'
    parsed = mf.parse_artifact_name(name)
    assert parsed == dict(prefix='my-app', tier='full', created=MOMENT, ext='tar.zst')


@pytest.mark.parametrize('name', ['notes.txt', 'app-database-2026.dump', 'app-weekly-20261123T020000Z.dump',
                                  'app-database-20261123T020000Z.dump.manifest.json', '../x-full-20261123T020000Z.tar'])
def test_foreign_names_are_not_artifacts(name):
    assert mf.parse_artifact_name(name) is None


def test_bad_prefix_refused():
    with pytest.raises(ValueError, match='outside the naming scheme'):
        mf.artifact_name('a/b', 'database', MOMENT, 'dump')


def test_iter_skips_foreign_files_and_orphans_and_reports_corrupt(tmp_path):
    good = write_snapshot(tmp_path)
    corrupt = write_snapshot(tmp_path, moment=MOMENT + datetime.timedelta(hours=1), body='{not json')
    (tmp_path / 'app-database-20261124T020000Z.dump.zst').write_bytes(b'orphan, no manifest')
    (tmp_path / 'readme.txt').write_text('foreign')
    found = dict(mf.iter_manifests(str(tmp_path)))
    assert set(found) == {str(good), str(corrupt)}
    assert isinstance(found[str(corrupt)], mf.ManifestError)
    assert 'is not valid JSON' in str(found[str(corrupt)])


def test_latest_verified_filters(tmp_path):
    write_snapshot(tmp_path)
    newer = write_snapshot(tmp_path, moment=MOMENT + datetime.timedelta(hours=2))
    write_snapshot(tmp_path, moment=MOMENT + datetime.timedelta(hours=3), verified=False)
    write_snapshot(tmp_path, moment=MOMENT + datetime.timedelta(hours=4), database='other')
    now = MOMENT + datetime.timedelta(hours=5)
    path, manifest = mf.latest_verified(str(tmp_path), database='app', now=now)
    assert path == str(newer)
    assert mf.latest_verified(str(tmp_path), database='app', max_age_h=1, now=now) is None
    assert mf.latest_verified(str(tmp_path), database='app', tier='full', now=now) is None
    assert mf.latest_verified(str(tmp_path / 'missing')) is None


def test_schema_version_checked(tmp_path):
    path = tmp_path / 'm.json'
    path.write_text(json.dumps(dict(schema_version=99)))
    with pytest.raises(mf.ManifestError, match='schema_version 99, expected one of 1, 2'):
        mf.load_manifest(str(path))


@pytest.mark.parametrize('name', ['x-database-20261340T000000Z.dump', 'app-full-20260230T250000Z.tar.zst'])
def test_impossible_stamps_are_not_artifacts(name):
    assert mf.parse_artifact_name(name) is None


def test_odd_file_and_bad_timestamps_do_not_break_listings(tmp_path):
    good = write_snapshot(tmp_path)
    (tmp_path / 'x-database-20261340T000000Z.dump').write_bytes(b'odd')
    (tmp_path / 'x-database-20261340T000000Z.dump.manifest.json').write_text('{}')
    bad_created = write_snapshot(tmp_path, moment=MOMENT + datetime.timedelta(hours=1))
    manifest = json.loads((tmp_path / (bad_created.name + mf.MANIFEST_SUFFIX)).read_text())
    manifest['created_at'] = '23.11.2026 03:00'
    (tmp_path / (bad_created.name + mf.MANIFEST_SUFFIX)).write_text(json.dumps(manifest))
    bad_verified = write_snapshot(tmp_path, moment=MOMENT + datetime.timedelta(hours=2))
    manifest = json.loads((tmp_path / (bad_verified.name + mf.MANIFEST_SUFFIX)).read_text())
    manifest['verified_at'] = '2026-11-23 04:01:00+00:00'
    (tmp_path / (bad_verified.name + mf.MANIFEST_SUFFIX)).write_text(json.dumps(manifest))
    found = dict(mf.iter_manifests(str(tmp_path)))
    assert set(found) == {str(good), str(bad_created), str(bad_verified)}  # the odd name is not listed at all
    assert isinstance(found[str(bad_created)], mf.ManifestError) and 'created_at' in str(found[str(bad_created)])
    assert isinstance(found[str(bad_verified)], mf.ManifestError) and 'verified_at' in str(found[str(bad_verified)])
    path, _manifest = mf.latest_verified(str(tmp_path), database='app', now=MOMENT + datetime.timedelta(hours=5))
    assert path == str(good)  # the untrusted newer ones are skipped, not fatal
    with pytest.raises(mf.ManifestError, match='not a UTC time'):
        mf.load_manifest(str(tmp_path / (bad_verified.name + mf.MANIFEST_SUFFIX)))


def test_acl_letters_a_newer_server_adds_are_left_out_of_an_upgrade_comparison():
    """PostgreSQL 17 gives table owners MAINTAIN (m): a snapshot of 13 restored there is not a revoked grant."""
    from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots import fingerprint
    want = dict(large_objects=dict(count=0),
                inventory={'table public.t': dict(owner='postgres', acl='{postgres=arwdDxt/postgres,app=r/postgres}')})
    got = dict(large_objects=dict(count=0),
               inventory={'table public.t': dict(owner='postgres', acl='{postgres=arwdDxtm/postgres,app=r/postgres}')})
    assert fingerprint.newer_privileges(13, 17) == 'm' and fingerprint.newer_privileges(17, 17) == ''
    assert fingerprint.compare(want, got, ignore_privileges=fingerprint.newer_privileges(13, 17)) == []
    revoked = dict(large_objects=dict(count=0),
                   inventory={'table public.t': dict(owner='postgres', acl='{postgres=arwdDxtm/postgres}')})
    assert [d['what'] for d in fingerprint.compare(want, revoked, ignore_privileges='m')] == ['grant']
    assert [d['what'] for d in fingerprint.compare(want, got)] == ['grant']

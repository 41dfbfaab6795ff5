# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Artifact names and manifests: what makes a file one of the collection's own.

An artifact is ``<prefix>-<tier>-<YYYYmmddTHHMMSSZ>.<ext>`` with
``<same>.manifest.json`` beside it. The manifest is written last (atomically),
so an artifact without a manifest is not an artifact: it is never trusted,
and never deleted either, since it may be someone else's file.

Manifest schema (version 2), ``schema_version`` first::

    {
      "schema_version": 2,
      "tier": "database" | "full",
      "created_at": "2026-11-23T02:00:00Z",
      "verified_at": "2026-11-23T02:00:41Z" | null,
      "host": "db1",
      "artifact": {"file": "<artifact file name>", "size_bytes": 0, "sha256": "...",
                   "format": "custom", "compression": "zstd"},
      "database": {"name": "app", "server_version": "15.18", "pg_dump_version": "15.18",
                   "tables": {"public.orders": {"rows": 20000, "exact": true}},
                   "fingerprint": {"mode": "full", "tables": {...}, "sequences": {...}, ...}},
      ...tier-specific keys (files for the full tier)...
    }

Version 2 keys tables by quoted qualified names (``"a.b".c``, never
colliding), counts inheritance parents with ``ONLY`` and adds the
``fingerprint`` (see ``fingerprint``). Version 1 manifests are still read:
their keys are unquoted ``schema.table`` and they hold no fingerprint.

Readers (pg_purge's snapshot check, snapshot_restore, retention) go through
:func:`iter_manifests` / :func:`latest_verified`, so they agree on what counts.
"""

from __future__ import annotations

import datetime
import json
import os
import re

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import atomic_write
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import parse_iso_utc, utc_now

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
MANIFEST_SUFFIX = '.manifest.json'
TIERS = ('database', 'full')
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'
ARTIFACT_NAME = re.compile(r'^(?P<prefix>[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*?)-(?P<tier>database|full)-'
                           r'(?P<stamp>\d{8}T\d{6}Z)\.(?P<ext>[A-Za-z0-9.]+)$')


class ManifestError(ValueError):
    """A manifest that cannot be trusted (unreadable, not JSON, wrong schema)."""


def artifact_name(prefix, tier, moment, ext):
    """The collection's artifact file name for ``moment`` (UTC)."""
    if tier not in TIERS:
        raise ValueError('tier must be one of %s' % ', '.join(TIERS))
    name = '%s-%s-%s.%s' % (prefix, tier, moment.astimezone(datetime.timezone.utc).strftime(STAMP_FORMAT), ext)
    if not ARTIFACT_NAME.match(name):
        raise ValueError('prefix %r gives a name outside the naming scheme: use letters, digits, ".", "_" and "-"'
                         % prefix)
    return name


def parse_artifact_name(name):
    """Return prefix, tier, created (datetime), ext for a name in the scheme, else None."""
    match = ARTIFACT_NAME.match(name)
    if not match or name.endswith(MANIFEST_SUFFIX):
        return None
    try:
        created = datetime.datetime.strptime(match.group('stamp'), STAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None  # shaped like a stamp but no real moment (month 13): not one of ours
    return dict(prefix=match.group('prefix'), tier=match.group('tier'), created=created, ext=match.group('ext'))


def manifest_path_for(artifact_path):
    return artifact_path + MANIFEST_SUFFIX


def write_manifest(artifact_path, manifest):
    """Write the manifest atomically (0600: it names hosts and tables), ``schema_version`` first."""
    ordered = dict(schema_version=SCHEMA_VERSION)
    ordered.update((key, value) for key, value in manifest.items() if key != 'schema_version')
    path = manifest_path_for(artifact_path)
    atomic_write(path, json.dumps(ordered, indent=2, sort_keys=False) + '\n', mode=0o600)
    return path


_LOADED = {}  # (path, inode, size, mtime_ns) -> manifest, once cache_manifests() was called


def cache_manifests():
    """Let this process read each unchanged manifest once (a module run: file indexes make manifests large).

    Cached manifests are shared by every caller: treat them as read-only.
    """
    _LOADED[None] = True


def load_manifest(path):
    """Read and check a manifest; raise :class:`ManifestError` naming the file and the problem."""
    try:
        info = os.stat(path)
        key = (path, info.st_ino, info.st_size, info.st_mtime_ns)
        if key in _LOADED:
            return _LOADED[key]
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except OSError as exc:
        raise ManifestError('manifest %s unreadable: %s' % (path, exc.strerror or exc)) from exc
    except ValueError as exc:
        raise ManifestError('manifest %s is not valid JSON (%s): treat its snapshot as untrusted' % (path, exc)) from exc
    if not isinstance(data, dict) or data.get('schema_version') not in READABLE_SCHEMA_VERSIONS:
        raise ManifestError('manifest %s has schema_version %r, expected one of %s'
                            % (path, data.get('schema_version') if isinstance(data, dict) else None,
                               ', '.join(str(version) for version in READABLE_SCHEMA_VERSIONS)))
    for key in ('tier', 'created_at', 'artifact'):
        if key not in data:
            raise ManifestError('manifest %s lacks %r' % (path, key))
    for key in ('created_at', 'verified_at'):
        if key == 'verified_at' and data.get(key) is None:
            continue
        try:
            parse_iso_utc(data[key])
        except (TypeError, ValueError) as exc:
            raise ManifestError('manifest %s has %s %r, not a UTC time like 2026-11-23T02:00:00Z: treat its snapshot '
                                'as untrusted' % (path, key, data[key])) from exc
    if None in _LOADED:
        _LOADED[(path, info.st_ino, info.st_size, info.st_mtime_ns)] = data
    return data


def iter_manifests(dest):
    """Yield (artifact path, manifest or ManifestError) for every artifact in ``dest`` that has a manifest.

    Files outside the naming scheme, and artifacts without a manifest, are not
    yielded: they are not the collection's to judge.
    """
    try:
        names = sorted(os.listdir(dest))
    except OSError:
        return
    present = set(names)
    for name in names:
        if parse_artifact_name(name) is None or name + MANIFEST_SUFFIX not in present:
            continue
        path = os.path.join(dest, name)
        try:
            yield path, load_manifest(manifest_path_for(path))
        except ManifestError as exc:
            yield path, exc


def latest_verified(dest, database=None, tier=None, max_age_h=None, now=None):
    """The newest verified snapshot's (artifact path, manifest), optionally filtered; None when there is none.

    ``max_age_h`` counts from ``verified_at``: a snapshot verified longer ago
    than that does not count as recent.
    """
    now = now or utc_now()
    best = None
    for path, manifest in iter_manifests(dest):
        if isinstance(manifest, ManifestError) or not manifest.get('verified_at'):
            continue
        if tier and manifest['tier'] != tier:
            continue
        if database and (manifest.get('database') or {}).get('name') != database:
            continue
        verified = parse_iso_utc(manifest['verified_at'])
        if max_age_h is not None and now - verified > datetime.timedelta(hours=max_age_h):
            continue
        if best is None or manifest['created_at'] > best[1]['created_at']:
            best = (path, manifest)
    return best

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshots in a backup directory: artifact names by format and compression, identity, listing.

A snapshot is an artifact plus its manifest (see ``manifest``).
"""

from __future__ import annotations

import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import (
    ManifestError,
    iter_manifests,
    parse_artifact_name,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import (
    parse_iso_utc,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.retention import slot_key

DUMP_EXT = dict(custom='dump', plain='sql', directory='dir.tar')
COMPRESSION_EXT = dict(zstd='.zst', gzip='.gz', none='')


def outer_compression(fmt, compression):
    """The compression the module wraps around pg_dump's output.

    custom/directory + gzip use pg_dump's own zlib (``-Z``), which keeps the
    archive readable by ``pg_restore``: the module must not compress it again.
    """
    return 'none' if fmt in ('custom', 'directory') and compression == 'gzip' else compression


def dump_ext(fmt, compression):
    """``dump.zst``, ``dump`` (custom with pg_dump's own zlib), ``sql.gz``, ``dir.tar.zst``, ..."""
    return DUMP_EXT[fmt] + COMPRESSION_EXT[outer_compression(fmt, compression)]


def artifact_ext(tier, fmt, compression, archive_format):
    return dump_ext(fmt, compression) if tier == 'database' else archive_format


def snapshot_identity(tier, database, roots):
    """What makes snapshots "the same snapshot" across time: the database dumped and, for the full tier, the roots.

    Slots and retention compare snapshots only within one identity, so a full
    archive of /etc never stands in for (or pushes out) one of /srv/uploads.
    """
    return (database or None, tuple(sorted(roots or ())) if tier == 'full' else None)


def snapshots(dest, prefix, tier, database=None, roots=None):
    """This module's snapshots of ``prefix``/``tier`` in ``dest`` (optionally of one database, or of ``roots``), oldest first.

    Each carries its ``identity`` (:func:`snapshot_identity`). ``roots``
    (absolute paths) keeps only full archives of exactly those trees.
    Artifacts with an unreadable manifest are left out: they are neither
    trusted nor touched.
    """
    found = []
    wanted_roots = tuple(sorted(roots)) if roots is not None else None
    for path, manifest in iter_manifests(dest):
        if isinstance(manifest, ManifestError):
            continue
        name = parse_artifact_name(os.path.basename(path))
        if name['prefix'] != prefix or name['tier'] != tier or manifest['tier'] != tier:
            continue
        identity = snapshot_identity(tier, (manifest.get('database') or {}).get('name'),
                                     (manifest.get('files') or {}).get('roots'))
        if database and identity[0] != database:
            continue
        if wanted_roots is not None and identity[1] != wanted_roots:
            continue
        found.append(dict(path=path, manifest_path=path + '.manifest.json', created=parse_iso_utc(manifest['created_at']),
                          verified=bool(manifest.get('verified_at')), manifest=manifest, identity=identity))
    return sorted(found, key=lambda snap: snap['created'])


def identity_roots(tier, state, paths, roots):
    """The roots that identify a full snapshot (absolute, sorted), or None when they do not narrow the selection.

    ``paths`` is the option as given, ``roots`` those of them that exist.
    """
    if tier != 'full' or (state != 'present' and not paths):
        return None
    return sorted(os.path.abspath(path) for path in roots)


def covering_snapshot(dest, prefix, tier, database, roots, slot, now):
    """The verified snapshot that already covers ``now``'s slot, as snapshot_archive reports it, or None."""
    current = slot_key(now, slot)
    covering = [snap for snap in snapshots(dest, prefix, tier, database, roots)
                if snap['verified'] and current is not None and slot_key(snap['created'], slot) == current]
    if not covering:
        return None
    snap = covering[-1]
    artifact = snap['manifest']['artifact']
    return dict(path=snap['path'], manifest_path=snap['manifest_path'], tier=tier,
                format=artifact.get('format'), compression=artifact.get('compression'),
                size_bytes=artifact.get('size_bytes'), sha256=artifact.get('sha256'),
                duration_ms=0.0, source_bytes=0, throughput_mb_s=None, status='existing')

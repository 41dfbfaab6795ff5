# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshots shared by snapshot_archive and snapshot_restore: writing a dump, verifying, restoring.

A snapshot is an artifact plus its manifest (see ``_manifest``). Verification
re-reads the artifact once, hashing it and proving it readable in the same
pass: ``pg_restore --list`` for custom dumps, complete decompression and the
end-of-dump trailer for plain ones, a full member listing (with per-file
hashes when recorded) for archives.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.archive import (
    ArchiveError,
    BackgroundWriter,
    HashingReader,
    HashingWriter,
    compression_of,
    scan_tar,
    write_tar,
    open_compressor,
    open_decompressor,
    read_all,
    scan_archive,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.dump import (
    DumpError,
    check_finished,
    connection_args,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import atomic_write
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import (
    SCHEMA_VERSION,
    ManifestError,
    iter_manifests,
    parse_artifact_name,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import parse_iso_utc
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import format_argv

PLAIN_TRAILER = b'-- PostgreSQL database dump complete'
DUMP_EXT = dict(custom='dump', plain='sql', directory='dir.tar')
TOC_MEMBER = 'dump/toc.dat'
COMPRESSION_EXT = dict(zstd='.zst', gzip='.gz', none='')


class VerifyError(Exception):
    """A snapshot that does not match its manifest or cannot be read back."""


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


def write_manifest(artifact_path, manifest):
    """Write the manifest atomically (0600: it names hosts and tables), ``schema_version`` first."""
    ordered = dict(schema_version=SCHEMA_VERSION)
    ordered.update((key, value) for key, value in manifest.items() if key != 'schema_version')
    path = artifact_path + '.manifest.json'
    atomic_write(path, json.dumps(ordered, indent=2, sort_keys=False) + '\n', mode=0o600)
    return path


# -- writing a dump -----------------------------------------------------------------------

def write_dump(run, handle, compression, level, threads):
    """Stream a running dump (``_dump.DumpRun``) through the compressor into ``handle``; fsync.

    ``threads``: zstd workers (the source's ``compress_threads``). Returns
    (sha256, size_bytes, tables). Any failure aborts pg_dump and
    raises; the caller removes the temporary file. Hashing and writing run
    on a thread of their own (:class:`BackgroundWriter`), beside reading and
    compressing the next chunk.
    """
    sink = HashingWriter(handle)
    background = BackgroundWriter(sink)
    try:
        try:
            compressor = open_compressor(compression, level, background, threads)
            for chunk in run.chunks():
                compressor.write(chunk)
            compressor.close()
        finally:
            background.finish()
        tables = run.finish()
    except BaseException:
        run.abort()
        raise
    handle.flush()
    os.fsync(handle.fileno())
    return sink.sha256, sink.size, tables


def write_directory_dump(run, staging, handle, compression, level):
    """Wait for a directory-format pg_dump (``-f staging/dump``), then tar the directory into ``handle``.

    ``toc.dat`` goes first, so a reader meets the table of contents before the
    data. Returns (sha256, size_bytes, tables, dump bytes, dump file count).
    """
    try:
        for _chunk in run.chunks():
            pass  # pg_dump writes into the directory; stdout stays empty
        tables = run.finish()
    except BaseException:
        run.abort()
        raise
    root = os.path.join(staging, 'dump')
    names = sorted(os.listdir(root), key=lambda name: (name != 'toc.dat', name))
    members = [('dump/' + name, os.path.join(root, name)) for name in names]
    sink = HashingWriter(handle)
    write_tar(sink, 'zstd' if compression == 'zstd' else 'none', level, [], [], members)
    handle.flush()
    os.fsync(handle.fileno())
    return sink.sha256, sink.size, tables, sum(os.path.getsize(member[1]) for member in members), len(members)


# -- verifying -------------------------------------------------------------------------------

class _ToolFeed:
    """A local tool reading a stream on stdin; output and errors go to temp files (no pipe deadlock)."""

    def __init__(self, argv, env=None):
        self.argv = argv
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self.out, stderr=self.err, env=env)
        except OSError as exc:
            raise DumpError('cannot run %s: %s' % (argv[0], exc.strerror or exc)) from exc
        self.closed_early = False

    def write(self, chunk):
        if self.closed_early:
            return
        try:
            self.proc.stdin.write(chunk)
        except BrokenPipeError:
            self.closed_early = True  # pg_restore --list stops after the table of contents

    def finish(self, name):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait()
        self.err.seek(0)
        self.out.seek(0)
        output = self.out.read()
        check_finished(name, self.proc.returncode, self.err.read())
        self.out.close()
        self.err.close()
        return output


def _check_file(path, manifest):
    artifact = manifest['artifact']
    if not os.path.isfile(path):
        raise VerifyError('snapshot %s is missing although its manifest exists' % path)
    size = os.path.getsize(path)
    if size != artifact.get('size_bytes'):
        raise VerifyError('snapshot %s is %d bytes, its manifest says %s: the file was changed or truncated'
                          % (path, size, artifact.get('size_bytes')))


def _check_hash(path, manifest, actual):
    expected = manifest['artifact'].get('sha256')
    if actual != expected:
        raise VerifyError('snapshot %s does not match its manifest: sha256 %s, manifest says %s '
                          '(the file was changed after it was written: do not restore it)' % (path, actual, expected))


def verify_dump(path, manifest, pg_restore, executed):
    """Verify a database-tier artifact; return a detail dict (``toc_entries`` or ``plain_bytes``)."""
    _check_file(path, manifest)
    fmt = manifest['artifact']['format']
    if fmt == 'directory':
        return _verify_directory_dump(path, manifest, pg_restore, executed)
    detail = {}
    with open(path, 'rb') as raw_handle:
        raw = HashingReader(raw_handle)
        try:
            stream = open_decompressor(compression_of(manifest['artifact']['file']), raw)
            if fmt == 'custom':
                argv = [pg_restore, '--list']
                executed.append(format_argv(argv) + ' < ' + os.path.basename(path))
                feed = _ToolFeed(argv)
                read_all(stream, feed.write)
                listing = feed.finish('pg_restore --list')
                detail['toc_entries'] = sum(1 for line in listing.splitlines() if line and not line.startswith(b';'))
            else:
                tail = [b'']

                def keep_tail(chunk):
                    tail[0] = (tail[0] + chunk)[-4096:]
                detail['plain_bytes'] = read_all(stream, keep_tail)
            raw.drain()
        except ArchiveError as exc:
            _check_hash(path, manifest, _sha_of(path))
            raise VerifyError('snapshot %s cannot be read back: %s' % (path, exc)) from exc
        except DumpError as exc:
            _check_hash(path, manifest, _sha_of(path))
            raise VerifyError('snapshot %s is not a readable dump: %s' % (path, exc)) from exc
    _check_hash(path, manifest, raw.sha256)
    if fmt == 'plain' and PLAIN_TRAILER not in tail[0]:
        raise VerifyError('snapshot %s is a plain dump without its end marker: it is incomplete' % path)
    return detail


def _verify_directory_dump(path, manifest, pg_restore, executed):
    """Read the whole tar (hash, zstd checksums), keep only toc.dat, and let pg_restore --list read it."""
    with tempfile.TemporaryDirectory(prefix='.verify-', dir=os.path.dirname(os.path.abspath(path))) as scratch:
        try:
            scan, raw = scan_tar(path, compression_of(manifest['artifact']['file']), scratch, only={TOC_MEMBER})
        except ArchiveError as exc:
            _check_hash(path, manifest, _sha_of(path))
            raise VerifyError('snapshot %s cannot be read back: %s' % (path, exc)) from exc
        _check_hash(path, manifest, raw.sha256)
        expected = (manifest.get('database') or {}).get('dump_files')
        if TOC_MEMBER not in scan.members or len(scan.members) != expected:
            raise VerifyError('snapshot %s holds %d dump files (toc.dat %s), its manifest says %s'
                              % (path, len(scan.members), 'present' if TOC_MEMBER in scan.members else 'missing',
                                 expected))
        argv = [pg_restore, '--list', os.path.join(scratch, 'dump')]
        executed.append(format_argv(argv))
        try:
            completed = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
            check_finished('pg_restore --list', completed.returncode, completed.stderr)
        except (OSError, DumpError) as exc:
            raise VerifyError('snapshot %s is not a readable dump: %s' % (path, exc)) from exc
    entries = sum(1 for line in completed.stdout.splitlines() if line and not line.startswith(b';'))
    return dict(toc_entries=entries)


def _sha_of(path):
    with open(path, 'rb') as handle:
        reader = HashingReader(handle)
        reader.drain()
    return reader.sha256


def verify_archive(path, manifest):
    """Verify a full-tier archive: hash, complete listing, file count/bytes/hashes, the dump member's hash."""
    _check_file(path, manifest)
    try:
        scan, raw = scan_archive(path, manifest['artifact']['format'],
                                 file_hashes=bool((manifest.get('files') or {}).get('sha256')))
    except ArchiveError as exc:
        _check_hash(path, manifest, _sha_of(path))
        raise VerifyError('snapshot %s cannot be read back: %s' % (path, exc)) from exc
    _check_hash(path, manifest, raw.sha256)
    compare_scan(path, manifest, scan)
    return dict(files=scan.file_count, file_bytes=scan.file_bytes)


def compare_scan(path, manifest, scan):
    """Raise VerifyError when an archive's content differs from what its manifest recorded."""
    files = manifest.get('files') or {}
    if (scan.file_count, scan.file_bytes) != (files.get('count'), files.get('total_bytes')):
        raise VerifyError('snapshot %s holds %d files / %d bytes, its manifest says %s / %s'
                          % (path, scan.file_count, scan.file_bytes, files.get('count'), files.get('total_bytes')))
    for member, sha in (files.get('sha256') or {}).items():
        if scan.checksums.get(member) != sha:
            raise VerifyError('snapshot %s: member %s does not match its recorded sha256' % (path, member))
    database = manifest.get('database') or {}
    member = database.get('member')
    if member and scan.members.get(member, {}).get('sha256') != database.get('member_sha256'):
        raise VerifyError('snapshot %s: the database dump member %s is missing or changed' % (path, member))


def verify_snapshot(path, manifest, pg_restore, executed):
    if manifest['tier'] == 'database':
        return verify_dump(path, manifest, pg_restore, executed)
    return verify_archive(path, manifest)


def feed_file(path, compression, feed):
    """Decompress an artifact into a _ToolFeed-like writer."""
    with open(path, 'rb') as handle:
        read_all(open_decompressor(compression, handle), feed.write)


def restore_dump(path, fmt, compression, params, scratch_db, programs, jobs, env, executed):
    """Load a dump into ``scratch_db``: pg_restore for custom/directory (``-j`` when seekable), psql for plain.

    A directory dump is given as its extracted directory.

    ``compression`` is the artifact's outer layer (``compression_of`` its
    name); ``programs`` maps ``pg_restore``/``psql`` to their paths.
    """
    target = connection_args(params, scratch_db)
    if fmt == 'directory' or (fmt == 'custom' and compression == 'none'):
        argv = [programs['pg_restore'], '--no-owner', '--no-acl', '--exit-on-error', '-j', str(jobs)] + target + [path]
        executed.append(format_argv(argv))
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False)
        check_finished('pg_restore', completed.returncode, completed.stderr)
        return
    if fmt == 'custom':
        name, argv = 'pg_restore', [programs['pg_restore'], '--no-owner', '--no-acl', '--exit-on-error'] + target
    else:
        name, argv = 'psql', [programs['psql'], '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-o', os.devnull] + target
    executed.append(format_argv(argv) + ' < ' + os.path.basename(path))
    feed = _ToolFeed(argv, env)
    feed_file(path, compression, feed)
    if feed.closed_early:
        feed.finish(name)
        raise DumpError('%s stopped reading %s before its end' % (name, path))
    feed.finish(name)

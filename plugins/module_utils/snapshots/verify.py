# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verifying a snapshot: the artifact re-read once, hashed and proven readable in the same pass.

``pg_restore --list`` for custom dumps, complete decompression and the
end-of-dump trailer for plain ones, a full member listing (with per-file
hashes when recorded) for archives.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zlib

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.os_user import client_process_options
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    ZSTD_ERROR,
    ArchiveError,
    HashingReader,
    ReadAheadHasher,
    compression_of,
    open_decompressor,
    read_all,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.extract import (
    ArchiveScan,
    scan_archive,
    scan_tar,
    unsafe_member_reason,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tar_stream import (
    UnusualTar,
    scan_tar_members,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.dump import (
    DumpError,
    check_finished,
    find_program,
    parse_version,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import (
    MANIFEST_SUFFIX,
    ManifestError,
    load_manifest,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.catalog import snapshots
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.incremental import ChainError, check_chain
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.leftovers import create_temp_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import (
    format_argv,
)

PLAIN_TRAILER = b'-- PostgreSQL database dump complete'
TOC_MEMBER = 'dump/toc.dat'
TAR_FORMATS = {'tar.zst': 'zstd', 'tar.gz': 'gzip'}


class VerifyError(Exception):
    """A snapshot that does not match its manifest or cannot be read back."""


class ToolFeed:
    """A local tool reading a stream on stdin; output and errors go to temp files (no pipe deadlock)."""

    def __init__(self, argv, env=None, os_user=''):
        self.argv = argv
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self.out, stderr=self.err,
                                         **client_process_options(os_user, env))
        except OSError as exc:
            raise DumpError('cannot run %s: %s' % (argv[0], exc.strerror or exc)) from exc
        self.closed_early = False
        self.stderr = b''

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
        self.stderr = self.err.read()  # kept for the caller: a failed restore names its statements from it
        check_finished(name, self.proc.returncode, self.stderr)
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
    """Verify a database-tier artifact, reading all of it; return a detail dict (``dump_bytes`` or ``plain_bytes``).

    A custom dump is fed whole to ``pg_restore -f /dev/null``, which
    decompresses and parses every data block, so a dump cut short fails even
    when its table of contents (all that ``pg_restore --list`` reads) and a
    recomputed manifest hash are intact.
    """
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
                argv = [pg_restore, '--file=' + os.devnull]
                executed.append(format_argv(argv) + ' < ' + os.path.basename(path))
                feed = ToolFeed(argv)
                detail['dump_bytes'] = read_all(stream, feed.write)
                feed.finish('pg_restore')
                if feed.closed_early:
                    raise DumpError('pg_restore stopped reading before the end of the dump')
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
    """Read the whole tar (hash, zstd checksums) into a scratch directory; pg_restore reads every data file of it.

    The scratch directory is a locked temp of the artifact's name in its
    directory (see ``leftovers``): a verification killed meanwhile leaves it
    to the next run, which removes it; a live one's is never touched.
    """
    scratch, lock = create_temp_dir(os.path.dirname(os.path.abspath(path)), manifest['artifact']['file'] + '.verify')
    try:
        return _read_directory_dump(path, manifest, pg_restore, executed, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        os.close(lock)


def _read_directory_dump(path, manifest, pg_restore, executed, scratch):
    try:
        scan, raw = scan_tar(path, compression_of(manifest['artifact']['file']), scratch)
    except ArchiveError as exc:
        _check_hash(path, manifest, _sha_of(path))
        raise VerifyError('snapshot %s cannot be read back: %s' % (path, exc)) from exc
    _check_hash(path, manifest, raw.sha256)
    expected = (manifest.get('database') or {}).get('dump_files')
    if TOC_MEMBER not in scan.members or len(scan.members) != expected:
        raise VerifyError('snapshot %s holds %d dump files (toc.dat %s), its manifest says %s'
                          % (path, len(scan.members), 'present' if TOC_MEMBER in scan.members else 'missing',
                             expected))
    try:
        _run_tool([pg_restore, '--file=' + os.devnull, os.path.join(scratch, 'dump')], executed)
        listing = _run_tool([pg_restore, '--list', os.path.join(scratch, 'dump')], executed)
    except (OSError, DumpError) as exc:
        raise VerifyError('snapshot %s is not a readable dump: %s' % (path, exc)) from exc
    entries = sum(1 for line in listing.splitlines() if line and not line.startswith(b';'))
    return dict(toc_entries=entries, dump_bytes=sum(member['size_bytes'] for member in scan.members.values()))


def _run_tool(argv, executed):
    executed.append(format_argv(argv))
    completed = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    check_finished(os.path.basename(argv[0]), completed.returncode, completed.stderr)
    return completed.stdout


def _sha_of(path):
    with open(path, 'rb') as handle:
        reader = HashingReader(handle)
        reader.drain()
    return reader.sha256


def verify_archive(path, manifest):
    """Verify a full-tier archive: hash, complete listing, file count/bytes/hashes, the dump member's hash.

    A tar archive is read in one pass (:func:`_scan_tar_fast`); what that
    reader leaves to ``tarfile`` (and zip) is read by :func:`scan_archive`.
    Either way every byte of the file is hashed and every frame decompressed.
    """
    _check_file(path, manifest)
    fmt = manifest['artifact']['format']
    file_hashes = bool((manifest.get('files') or {}).get('sha256'))
    try:
        try:
            scan, raw = _scan_tar_fast(path, fmt, file_hashes) if fmt in TAR_FORMATS else (None, None)
        except UnusualTar:
            scan = None
        if scan is None:
            scan, raw = scan_archive(path, fmt, file_hashes=file_hashes)
    except ArchiveError as exc:
        _check_hash(path, manifest, _sha_of(path))
        raise VerifyError('snapshot %s cannot be read back: %s' % (path, exc)) from exc
    _check_hash(path, manifest, raw.sha256)
    compare_scan(path, manifest, scan)
    return dict(files=scan.file_count, file_bytes=scan.file_bytes)


def _scan_tar_fast(path, fmt, file_hashes):
    """Read a tar archive once: the file hashed on a read-ahead thread, decompressed and scanned here.

    The same checks as :func:`scan_archive` (safe member names, files,
    directories and symlinks only, every frame's checksum, every content
    byte read and hashed where wanted) in one pass of large reads.
    """
    scan = ArchiveScan(file_hashes)
    with open(path, 'rb', buffering=0) as handle:
        raw = ReadAheadHasher(handle)
        try:
            stream = open_decompressor(TAR_FORMATS[fmt], raw)
            try:
                for name, kind, size, _link, sha in scan_tar_members(stream, scan.wants_hash):
                    if (not name or name[0] == '/' or '..' in name) and unsafe_member_reason(name):
                        raise UnusualTar(name)  # tarfile's reading refuses it with its message
                    if kind == 'file':
                        scan.add(name, size, sha)
            except (EOFError, zlib.error, ZSTD_ERROR) as exc:
                raise ArchiveError('the compressed stream is damaged: %s' % exc) from exc
        finally:
            raw.finish()
    return scan, raw


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


def check_globals(path, manifest):
    """The globals artifact beside a snapshot, when its manifest names one, must be there unchanged."""
    recorded = (manifest.get('database') or {}).get('globals')
    if not recorded:
        return
    globals_path = os.path.join(os.path.dirname(path), recorded['file'])
    try:
        with open(globals_path, 'rb') as handle:
            data = handle.read()
    except OSError as exc:
        raise VerifyError('snapshot %s: its globals artifact %s is missing or unreadable (%s)'
                          % (path, globals_path, exc.strerror or exc)) from exc
    if hashlib.sha256(data).hexdigest() != recorded.get('sha256'):
        raise VerifyError('snapshot %s: its globals artifact %s does not match its recorded sha256 (changed after it '
                          'was written)' % (path, globals_path))


def verify_snapshot(path, manifest, pg_restore, executed):
    check_globals(path, manifest)
    if manifest['tier'] == 'database':
        return verify_dump(path, manifest, pg_restore, executed)
    return verify_archive(path, manifest)


def pg_restore_for(pg_dump_path, manifest):
    """pg_restore of the dump's major version (or newer), for verification (near ``pg_dump_path`` when given)."""
    parsed = parse_version('(PostgreSQL) ' + ((manifest.get('database') or {}).get('pg_dump_version') or ''))
    return find_program('pg_restore', parsed[0] if parsed else None, near=pg_dump_path)


def verify_message(detail):
    """One line saying what a verification read."""
    if 'toc_entries' in detail:
        return ('sha256 matches; pg_restore read all %d entries and %d bytes of data files (every data block)'
                % (detail['toc_entries'], detail['dump_bytes']))
    if 'dump_bytes' in detail:
        return 'sha256 matches; pg_restore read the whole dump, %d bytes (every data block)' % detail['dump_bytes']
    if 'plain_bytes' in detail:
        return 'sha256 matches; %d bytes of SQL decompressed, end marker present' % detail['plain_bytes']
    return 'sha256 matches; %d files / %d bytes listed as recorded' % (detail['files'], detail['file_bytes'])


def verify_selection(dest, prefix, tier, database, which, pg_dump_path, executed):
    """Verify ``which`` (latest, all, or an artifact path); return [dict(path, ok, message)].

    Raises VerifyError when there is nothing to verify.
    """
    if which in ('latest', 'all'):
        chosen = [(snap['path'], snap['manifest']) for snap in snapshots(dest, prefix, tier, database)]
        if which == 'latest':
            chosen = chosen[-1:]
        if not chosen:
            raise VerifyError('no %s snapshot of prefix %s with a manifest in %s: nothing to verify' % (tier, prefix, dest))
    else:
        try:
            chosen = [(which, load_manifest(which + MANIFEST_SUFFIX))]
        except ManifestError as exc:
            raise VerifyError('%s is not a verifiable snapshot: %s' % (which, exc)) from exc
    outcomes = []
    for path, manifest in chosen:
        try:
            detail = verify_snapshot(path, manifest, pg_restore_for(pg_dump_path, manifest), executed)
            if manifest.get('incremental'):  # its base and links: present, as recorded, unmodified since verified
                check_chain(path, manifest)
            outcomes.append(dict(path=path, ok=True, message=verify_message(detail)))
        except (VerifyError, DumpError, ChainError) as exc:
            outcomes.append(dict(path=path, ok=False, message=str(exc)))
    return outcomes

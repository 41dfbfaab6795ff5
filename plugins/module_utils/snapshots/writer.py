# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking a snapshot: dump and/or archive into a temporary file in dest, verify, rename, write the manifest.

:class:`SnapshotWriter` is what ``snapshot_archive`` runs for ``state:
present``. Nothing half-written is ever left under a snapshot's name: the
artifact is written to a temporary file beside its final name, verified,
renamed without replacing anything, and only then gets its manifest.
Every failure comes out as :class:`SnapshotFailure`, phrased for the
operator and saying what is (not) left in dest.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import socket
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import (
    DEFAULT_LEVELS,
    ArchiveError,
    BackgroundWriter,
    HashingWriter,
    SyncingFile,
    open_compressor,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tree import (
    estimate_tree_bytes,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.tar_stream import (
    write_tar,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.zip_stream import (
    write_zip,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.dump import (
    DATABASE_ERRORS,
    DumpError,
    dump_format_args,
    lock_timeout_setting,
    open_source,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import (
    MANIFEST_SUFFIX,
    SCHEMA_VERSION,
    artifact_name,
    write_manifest,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.catalog import (
    artifact_ext,
    dump_ext,
    outer_compression,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.fingerprint import roles_needed
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.incremental import ChainError, plan_increment
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.roles import GLOBALS_SUFFIX
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.leftovers import (
    create_temp_dir,
    create_temp_file,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.verify import (
    VerifyError,
    pg_restore_for,
    verify_message,
    verify_snapshot,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import (
    fsync_dir,
    rename_no_replace,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import (
    iso_utc,
    utc_now,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import (
    elapsed_ms,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.os_user import needs_switch
from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
)

# Share of the table data a dump takes on disk, for the free-space check.
# Deliberately on the high side: refusing early beats a full disk.
SIZE_FACTORS = dict(zstd=0.5, gzip=0.5, none=1.0)


class SnapshotFailure(Exception):
    """A failure already phrased for the operator."""


def level_for(params, compression):
    if params['compression_level'] is not None and compression == params['compression']:
        return params['compression_level']
    return DEFAULT_LEVELS[compression]


def check_space(dest, need, min_free, what):
    info = os.statvfs(dest)
    free = info.f_bavail * info.f_frsize
    if need > free - min_free:
        raise SnapshotFailure(
            'dest %s has %d bytes free; %s needs about %d bytes plus min_free_bytes %d: '
            'free space or choose another dest' % (dest, free, what, need, min_free))
    return free


def dump_args(params):
    """pg_dump's format arguments, and a bounded wait for its table locks (it fails instead of hanging)."""
    return dump_format_args(params['format'], params['compression'], level_for(params, params['compression'])) + [
        '--lock-wait-timeout=%s' % lock_timeout_setting(params)]


def nearest_existing(path):
    """The closest existing ancestor of a directory still to be created (check mode measures space there)."""
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


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


class SnapshotWriter:
    """One snapshot of ``params`` (the module's options) into ``dest``: :meth:`take` returns its description.

    ``executed`` collects the statements and argv run (the dump source's
    own list once it is open). ``verified`` is the verification message of
    the snapshot written.
    """

    def __init__(self, params, dest, roots, check_mode=False):
        self.params = params
        self.dest = dest
        self.roots = roots
        self.check_mode = check_mode
        self.executed = []
        self.verified = None
        self.source = None
        self.temps = []  # temporary files in dest, removed on the way out
        self.temp_dirs = []
        self.locks = []  # fds holding the flocks that mark our temp files as a live run's
        self.globals_text = None
        self.path = None
        self.increment = None  # the chain base or link a full-tier tar archive becomes (see ``incremental``)

    def take(self, space_dir):
        """Write, verify, rename, write the manifest. Returns the snapshot dict; raises SnapshotFailure."""
        started = time.monotonic()
        params, dest = self.params, self.dest
        self._open_source()
        try:
            self.increment = plan_increment(params, dest, self.roots) if self.roots else None
            planned = self._plan(space_dir, started)
            if self.check_mode:
                planned.pop('created')
                return planned
            return self._write(planned, started)
        except (DumpError, VerifyError, ArchiveError, ChainError) as exc:
            raise SnapshotFailure('%s; nothing was written to %s' % (exc, dest)) from exc
        except DATABASE_ERRORS as exc:
            raise SnapshotFailure('database %s refused a query while it was being snapshotted: %s; nothing was written '
                                  'to %s (a lock held longer than lock_wait_timeout_s %d s ends it: retry when the lock '
                                  'is gone)' % (params['database'], str(exc).strip(), dest,
                                                params['lock_wait_timeout_s'])) from exc
        except OSError as exc:
            left = [leftover for leftover in self.temps + [self.path] if leftover and os.path.lexists(leftover)]
            raise SnapshotFailure('writing the snapshot into %s failed: %s (%s); %s'
                                  % (dest, exc.strerror or exc, exc.filename or 'dest',
                                     'could not remove %s: delete it by hand' % ', '.join(left) if left
                                     else 'partial files removed: nothing of this run is left in dest')) from exc
        finally:
            if self.source:
                self.source.close()

    def _open_source(self):
        params = self.params
        if not params['database']:
            return
        try:
            self.source = open_source(params, params['database'], params['container'], params['container_user'],
                                      params['docker_host'], params['pg_dump_path'])
        except (PostgresError, DumpError) as exc:
            raise SnapshotFailure(str(exc)) from exc
        except DATABASE_ERRORS as exc:
            raise SnapshotFailure('database %s refused a query before the dump: %s; nothing was written to %s'
                                  % (params['database'], str(exc).strip(), self.dest)) from exc
        self.executed = self.source.executed

    def _plan(self, space_dir, started):
        """Check the space and choose the name; the snapshot dict as check mode reports it."""
        params, tier, fmt, compression = self.params, self.params['tier'], self.params['format'], self.params['compression']
        data_bytes = self.source.data_bytes() if self.source else 0
        if self.increment:
            tree_bytes = self.increment.preview(self.roots, params['exclude'])['changed_bytes']
        else:
            tree_bytes = estimate_tree_bytes(self.roots, params['exclude']) if self.roots else 0
        need = int(data_bytes * SIZE_FACTORS[compression]) + tree_bytes
        if fmt == 'directory':
            need += int(data_bytes * (SIZE_FACTORS['gzip'] if compression == 'gzip' else 1.0))  # the staging directory
        if tier == 'full' and self.source:
            need += int(data_bytes * SIZE_FACTORS[compression])  # the dump is staged before it joins the archive
        check_space(space_dir, need, params['min_free_bytes'], 'this %s snapshot' % tier)
        ext = artifact_ext(tier, fmt, compression, params['archive_format'])
        now = utc_now()
        name = artifact_name(params['prefix'], tier, now, ext)
        while os.path.lexists(os.path.join(self.dest, name)):  # two runs within one second: never overwrite
            now += datetime.timedelta(seconds=1)
            name = artifact_name(params['prefix'], tier, now, ext)
        self.path = os.path.join(self.dest, name)
        return dict(path=self.path, manifest_path=self.path + MANIFEST_SUFFIX, tier=tier,
                    format=fmt if tier == 'database' else params['archive_format'], compression=compression,
                    mode=self.increment.report()['written'] if self.increment else 'full',
                    status='planned', size_bytes=None, sha256=None, duration_ms=elapsed_ms(started),
                    source_bytes=data_bytes + tree_bytes, throughput_mb_s=None, created=now)

    def _write(self, snapshot, started):
        params, tier = self.params, self.params['tier']
        now = snapshot.pop('created')
        name = os.path.basename(self.path)
        manifest = dict(schema_version=SCHEMA_VERSION, tier=tier, created_at=iso_utc(now), verified_at=None, host=socket.gethostname())
        manifest['artifact'] = dict(file=name, size_bytes=None, sha256=None, format=snapshot['format'],
                                    compression=params['compression'] if tier == 'database' else params['archive_format'])
        try:
            target, source_bytes = self._write_artifact(manifest, name)
            write_ms = elapsed_ms(started)
            verify_started = time.monotonic()
            detail = verify_snapshot(target, manifest, pg_restore_for(params['pg_dump_path'], manifest), self.executed)
            verify_ms = elapsed_ms(verify_started)
            self._publish(target, manifest)
        finally:
            for temp in self.temps:
                remove_quietly(temp)
            for temp_dir in self.temp_dirs:
                shutil.rmtree(temp_dir, ignore_errors=True)
            for fd in self.locks:
                os.close(fd)
        self.verified = verify_message(detail)
        duration = elapsed_ms(started)
        snapshot.update(status='written', size_bytes=manifest['artifact']['size_bytes'],
                        sha256=manifest['artifact']['sha256'], duration_ms=duration, write_ms=write_ms,
                        verify_ms=verify_ms, source_bytes=source_bytes,
                        throughput_mb_s=round(source_bytes / 1e6 / max(duration / 1000.0, 1e-6), 1))
        return snapshot

    def _write_artifact(self, manifest, name):
        """The dump and/or the archive into temporary files; returns (the artifact's temp path, source bytes)."""
        params = self.params
        source_bytes = 0
        dump_path = target = None
        if self.source:
            dump_path, sha, size, dumped, manifest['database'] = self._write_database(name)
            source_bytes += dumped
            if params['tier'] == 'database':
                target = dump_path
                manifest['artifact'].update(size_bytes=size, sha256=sha)
            else:
                member = 'database/%s.%s' % (params['database'], dump_ext(params['format'], params['compression']))
                manifest['database'].update(member=member, member_sha256=sha, member_size_bytes=size)
        if params['tier'] == 'full':
            extra = [(manifest['database']['member'], dump_path)] if dump_path else []
            target, tally = self._write_archive(name, extra, manifest)
            source_bytes += tally.total_bytes
        return target, source_bytes

    def _write_archive(self, name, extra, manifest):
        params = self.params
        target = self._temp(name)
        with open(target, 'wb') as handle:
            sink = HashingWriter(SyncingFile(handle))
            archive_format = params['archive_format']
            if archive_format == 'zip':
                tally = write_zip(sink, level_for(params, 'gzip'), self.roots, params['exclude'], extra,
                                  params['file_checksums'])
            else:
                archive_compression = 'zstd' if archive_format == 'tar.zst' else 'gzip'
                tally = write_tar(sink, archive_compression, level_for(params, archive_compression), self.roots,
                                  params['exclude'], extra, params['file_checksums'],
                                  self.increment.tally() if self.increment else None,
                                  self.increment.entries() if self.increment else None)
            handle.flush()
            os.fsync(handle.fileno())
        manifest['artifact'].update(size_bytes=sink.size, sha256=sink.sha256)
        manifest['files'] = dict(tally.as_manifest(), roots=[os.path.abspath(p) for p in self.roots])
        if self.increment:
            self.increment.record(manifest, tally)
        return target, tally

    def _write_database(self, name):
        """Dump into a temporary file in dest; return (path, sha256, size, dump bytes, manifest ``database``).

        A directory-format dump goes to a staging directory first (removed on
        the way out) and is then stored as one tar.
        """
        params, source = self.params, self.source
        fmt, compression = params['format'], params['compression']
        level = level_for(params, compression)
        target = self._temp(name)
        database = dict(name=params['database'], server_version=source.server_version,
                        pg_dump_version=source.pg_dump_version, where=source.where, container=params['container'],
                        format=fmt, compression=compression)
        if fmt == 'directory':
            if needs_switch(params.get('login_os_user')):
                raise SnapshotFailure('format directory cannot be dumped with login_os_user %r (pg_dump would write into '
                                      'the root-only backup directory): use format custom; nothing was written to %s'
                                      % (params['login_os_user'], self.dest))
            staging, lock = create_temp_dir(self.dest, name)
            self.locks.append(lock)
            self.temp_dirs.append(staging)
            run = source.dump(dump_args(params) + ['-j', str(params['jobs']), '-f', os.path.join(staging, 'dump')],
                              params['exact_count_max_rows'], params['fingerprint'])
            with open(target, 'wb') as handle:
                sha, size, tables, dumped, database['dump_files'] = write_directory_dump(run, staging, handle,
                                                                                         compression, level)
        else:
            run = source.dump(dump_args(params), params['exact_count_max_rows'], params['fingerprint'])
            with open(target, 'wb') as handle:
                sha, size, tables = write_dump(run, handle, outer_compression(fmt, compression), level,
                                               source.compress_threads)
            dumped = run.source_bytes
        database['tables'] = tables
        if run.fingerprint is not None:
            self.globals_text = run.fingerprint.pop('_globals', None)
            database['roles_needed'] = roles_needed(run.fingerprint)
        if fmt == 'plain':
            database['owners'] = True  # written with owners and grants (no --no-owner), restorable into an empty database
        if run.fingerprint is not None:
            database['fingerprint'] = run.fingerprint
        return target, sha, size, dumped, database

    def _publish(self, target, manifest):
        """Rename the verified temp file to its name (never replacing one) and write its manifest."""
        os.chmod(target, 0o600)
        try:
            rename_no_replace(target, self.path)
        except FileExistsError:
            raise SnapshotFailure('a snapshot named %s appeared in %s while this one was written (another run in the '
                                  'same second?): it was kept, and this run\'s copy was discarded: nothing of this '
                                  'run is left in dest' % (os.path.basename(self.path), self.dest)) from None
        self.temps.remove(target)
        try:  # rename, fsync and manifest are one step: without its manifest it is no snapshot, so take it back
            self._write_globals(manifest)
            fsync_dir(self.dest)
            manifest['verified_at'] = iso_utc(utc_now())
            write_manifest(self.path, manifest)
        except OSError:
            remove_quietly(self.path)
            remove_quietly(self.path + GLOBALS_SUFFIX)
            raise

    def _write_globals(self, manifest):
        """The roles the dump needs, as a sibling artifact (0600) with its sha256 in the manifest."""
        if self.globals_text is None:
            return
        data = self.globals_text.encode('utf-8')
        temp = self._temp(os.path.basename(self.path) + GLOBALS_SUFFIX)
        with open(temp, 'wb') as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temp, self.path + GLOBALS_SUFFIX)
        self.temps.remove(temp)
        manifest['database']['globals'] = dict(file=os.path.basename(self.path) + GLOBALS_SUFFIX,
                                               size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    def _temp(self, name):
        path, lock = create_temp_file(self.dest, name)
        self.locks.append(lock)
        self.temps.append(path)
        return path

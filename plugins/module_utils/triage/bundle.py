# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The triage bundle: one tar.zst with ``manifest.json`` first, written where there is room.

The bundle is built in memory and then written (temporary file, fsync,
rename) to the first directory of the list that takes it; a full or
read-only directory is recorded in ``attempts`` and the next one tried (a
tmpfs such as /dev/shm is the usual last resort). The manifest in the bundle
and the one beside it say where the bundle went and which directories
refused it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import atomic_write

try:
    import zstandard
    HAS_ZSTANDARD = True
except ImportError:
    HAS_ZSTANDARD = False

SCHEMA_VERSION = 1


class NoRoomError(Exception):
    """No directory took the bundle; ``attempts`` lists each directory and its error."""

    def __init__(self, message, attempts):
        super().__init__(message)
        self.attempts = attempts


def compress(data):
    """zstd-compress ``data`` with the zstandard library, else the zstd program."""
    if HAS_ZSTANDARD:
        return zstandard.ZstdCompressor(level=6).compress(data)
    zstd = shutil.which('zstd')
    if not zstd:
        raise NoRoomError('neither the zstandard Python library nor the zstd program is installed', [])
    return subprocess.run([zstd, '-q', '-6', '-c'], input=data, stdout=subprocess.PIPE, check=True).stdout


def build(manifest, files):
    """The compressed tar: manifest.json, then every (name, bytes) of ``files`` under ``<base>/``."""
    base = manifest['name']
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode='w', format=tarfile.PAX_FORMAT) as tar:
        members = [('manifest.json', json.dumps(manifest, indent=2).encode('utf-8'))] + list(files)
        for name, data in members:
            info = tarfile.TarInfo('%s/%s' % (base, name))
            info.size = len(data)
            info.mtime = now
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return compress(buffer.getvalue())


def _write_in(directory, manifest, files):
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    path = os.path.join(directory, manifest['name'] + '.tar.zst')
    atomic_write(path, build(manifest, files), mode=0o600)
    try:
        atomic_write(path + '.manifest.json', json.dumps(manifest, indent=2) + '\n', mode=0o600)
    except BaseException:
        os.unlink(path)
        raise
    return path


def write_bundle(manifest, files, directories):
    """Write the bundle to the first directory that takes it; return (path, attempts)."""
    attempts = []
    for directory in directories:
        entry = dict(manifest, written_to=directory, attempts=list(attempts))
        try:
            return _write_in(directory, entry, files), attempts
        except OSError as exc:
            attempts.append(dict(directory=directory, error=exc.strerror or str(exc)))
    raise NoRoomError('no room for the triage bundle: %s' % '; '.join(
        '%s: %s' % (a['directory'], a['error']) for a in attempts), attempts)

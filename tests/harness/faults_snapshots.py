"""The snapshots of a fault case: published artifacts, temporary leftovers, re-verification through the module,
and a crafted full archive that passes every check but path safety.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

from tests.harness.faults_fs import sha256_of
from tests.harness.playbook import run_tasks


def artifacts(dest, tier=None):
    """Published artifacts (those with a manifest) in ``dest``, oldest name first."""
    found = sorted(path[:-len('.manifest.json')] for path in glob.glob(os.path.join(dest, '*.manifest.json')))
    return [path for path in found if tier is None or '-%s-' % tier in os.path.basename(path)]


def leftovers(dest):
    """Hidden temporary files or directories a snapshot run leaves in ``dest`` (``.<name>.tmp``)."""
    return sorted(name for name in os.listdir(dest) if name.startswith('.') and '.tmp' in name)


def verify(box, paths, tier='database'):
    """Re-verify each snapshot in ``paths`` with snapshot_archive state=verified; ``{path: (ok, message)}``."""
    tasks = [dict(name='verify %s' % os.path.basename(path), ignore_errors=True,
                  **{'engineroom.maintenance.snapshot_archive': dict(
                      state='verified', tier=tier, database='app', dest=os.path.dirname(path), which=path)})
             for path in paths]
    run = run_tasks(tasks, env=dict(ENGINEROOM_MAINTENANCE_LOG_DIR=os.path.join(box.root, 'verify-log')))
    outcome = {}
    for path in paths:
        result = run.result('verify %s' % os.path.basename(path))
        entries = result.get('verified') or [dict(ok=False, message=result.get('msg', ''))]
        outcome[path] = (not result.get('failed') and all(e['ok'] for e in entries), entries[0]['message'])
    return outcome


def crafted_full_archive(dest, members, moment, database='app'):
    """Write ``<database>-full-<stamp>.tar.zst`` and a manifest naming it, as snapshot_archive would; return its path.

    ``members`` is a list of ``(name, kind, payload)``: kind ``file`` (payload bytes),
    ``symlink`` (payload the link target) or ``dir``. The names are stored as given
    (tarfile's ``addfile`` keeps ``../`` and a leading ``/``), and the manifest
    records the true size and sha256 of the archive, of its files and of its
    database member, so the archive passes every check but the path-safety ones:
    what a tampered backup directory would hold. ``moment`` is a UTC datetime.
    """
    import io
    import tarfile

    import zstandard

    name = '%s-full-%s.tar.zst' % (database, moment.strftime('%Y%m%dT%H%M%SZ'))
    path = os.path.join(dest, name)
    files = dict(count=0, total_bytes=0, sha256={})
    dump_member = 'database/%s.dump' % database
    dump_bytes = b'PGDMP placeholder: the drill is refused before it would restore this'
    with open(path, 'wb') as raw:
        with zstandard.ZstdCompressor().stream_writer(raw, closefd=False) as stream:
            with tarfile.open(fileobj=stream, mode='w|') as tar:
                for member, kind, payload in [(dump_member, 'file', dump_bytes)] + list(members):
                    info = tarfile.TarInfo(member)
                    info.mtime = int(moment.timestamp())
                    if kind == 'file':
                        info.size, info.mode = len(payload), 0o644
                        tar.addfile(info, io.BytesIO(payload))
                        if member.startswith('files/'):
                            files['count'] += 1
                            files['total_bytes'] += len(payload)
                            files['sha256'][member] = hashlib.sha256(payload).hexdigest()
                    elif kind == 'symlink':
                        info.type, info.linkname, info.mode = tarfile.SYMTYPE, payload, 0o777
                        tar.addfile(info)
                    else:
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(info)
    stamp = moment.strftime('%Y-%m-%dT%H:%M:%SZ')
    manifest = dict(
        schema_version=1, tier='full', created_at=stamp, verified_at=stamp, host='app1',
        artifact=dict(file=name, size_bytes=os.path.getsize(path), sha256=sha256_of(path), format='tar.zst',
                      compression='zstd'),
        database=dict(name=database, server_version='15.18', pg_dump_version='15.18', format='custom',
                      member=dump_member, member_sha256=hashlib.sha256(dump_bytes).hexdigest(),
                      member_size_bytes=len(dump_bytes), tables={}),
        files=dict(files, roots=['/srv/app']))
    with open(path + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle, indent=2)
    return path

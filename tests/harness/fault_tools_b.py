"""Tools of fault cases 07-13 that tests/harness/faults.py does not have.

Raw ``ansible-playbook`` runs (any stdout callback, verbosity, inventory, or a
process to signal), inventories of several hosts over one sandbox, the
database state a check-mode run must leave alone, and a search for secret
strings through whole directory trees.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

from tests.harness import faults
from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env


def playbook_argv(name, inventory=None, extra_vars=None, args=()):
    """argv of ``ansible-playbook playbooks/<name>`` (or a path) with the variables as one JSON ``-e``."""
    path = name if os.path.isabs(name) else os.path.join(REPO_ROOT, 'playbooks', name)
    argv = [os.path.join(BIN_DIR, 'ansible-playbook'), path, '-i', inventory or os.path.join(REPO_ROOT, 'inventories', 'local')]
    if extra_vars:
        argv += ['-e', json.dumps(extra_vars)]
    return argv + list(args)


def box_env(box, callback='ansible.posix.json', extra=None):
    """The environment of a run against ``box``: its maintenance log inside it, the given stdout callback."""
    env = dict(ENGINEROOM_MAINTENANCE_LOG_DIR=faults.maintenance_log_dir(box), ANSIBLE_STDOUT_CALLBACK=callback)
    env.update(extra or {})
    return ansible_env(env)


def run_raw(box, name, extra_vars=None, args=(), callback='default', inventory=None, with_box_vars=True,
            timeout=300):
    """Run a playbook against ``box`` and return the CompletedProcess (stdout/stderr as text), whatever it printed."""
    variables = dict(faults.sandbox_vars(box)) if with_box_vars else {}
    variables.update(extra_vars or {})
    return subprocess.run(playbook_argv(name, inventory, variables, args), cwd=REPO_ROOT, env=box_env(box, callback),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)


def start_playbook(box, name, extra_vars=None, stdout=None):
    """Start a playbook against ``box`` in its own session (so what it leaves running can be found); return the Popen."""
    variables = dict(faults.sandbox_vars(box))
    variables.update(extra_vars or {})
    return subprocess.Popen(playbook_argv(name, None, variables), cwd=REPO_ROOT, env=box_env(box, 'default'),
                            stdin=subprocess.DEVNULL, stdout=stdout or subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def session_pids(sid):
    """Pids of the live (not zombie) processes of session ``sid``."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as handle:
                fields = handle.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != 'Z':
            pids.append(int(entry))
    return pids


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll ``predicate`` until it is true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('timed out after %s s waiting for %s' % (timeout, what))


def write_inventory(path, hosts, group_vars):
    """A YAML (JSON) inventory: ``hosts`` maps host name -> host vars; ``group_vars`` go to ``all``."""
    with open(path, 'w') as handle:
        json.dump(dict(all=dict(hosts=hosts, vars=group_vars)), handle, indent=2)
    return path


def role_config(cluster, role):
    """``rolconfig`` of a role (role-wide settings) and its per-database settings, as sorted lists."""
    rows = cluster.execute(
        "SELECT coalesce(d.datname, '*'), s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = %s ORDER BY 1", (role,))
    return sorted((name, sorted(config or [])) for name, config in rows)


def database_state(cluster):
    """What a check-mode run must leave as it is: app tables, every role's settings, the list of databases."""
    return dict(
        tables=faults.table_fingerprints(cluster),
        roles=cluster.execute('SELECT rolname, rolconfig FROM pg_roles ORDER BY 1'),
        role_settings=cluster.execute(
            'SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2'),
        databases=cluster.execute('SELECT datname FROM pg_database ORDER BY 1'),
    )


def tree_state(root, exclude=()):
    """``{relative path: (kind, mode, size, sha256 or link target)}`` of everything under ``root`` but ``exclude``.

    Unlike faults.file_tree it also sees directories, links and modes: a
    check-mode run must not create a directory or chmod a file either.
    ``exclude`` holds top-level names (the maintenance log, the database files).
    """
    state = {}
    for folder, dirs, names in os.walk(root):
        if folder == root:
            dirs[:] = [d for d in dirs if d not in exclude]
            names = [n for n in names if n not in exclude]
        for name in dirs + names:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                state[rel] = ('link', os.readlink(path))
            elif os.path.isdir(path):
                state[rel] = ('dir', oct(info.st_mode & 0o7777))
            else:
                state[rel] = ('file', oct(info.st_mode & 0o7777), info.st_size, _sha256(path))
    return state


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def find_secrets(roots, secrets, skip=()):
    """``[(path, secret label)]`` of every regular file under ``roots`` (but the paths in ``skip``) holding a secret.

    ``secrets`` maps a label to the secret string; files are searched as bytes,
    so binary files (archives are compressed: see also their members) count too.
    """
    needles = dict((label, value.encode()) for label, value in secrets.items())
    skip = set(os.path.abspath(p) for p in skip)
    hits = []
    for root in roots:
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.abspath(os.path.join(folder, d)) not in skip]
            for name in names:
                path = os.path.join(folder, name)
                if os.path.abspath(path) in skip or os.path.islink(path) or not os.path.isfile(path):
                    continue
                with open(path, 'rb') as handle:
                    data = handle.read()
                hits += [(path, label) for label, needle in needles.items() if needle in data]
    return hits


def log_events(box, event=None, **match):
    """The maintenance log's events of kind ``event`` whose fields equal ``match``."""
    return [e for e in faults.maintenance_log_entries(box)
            if (event is None or e.get('event') == event) and all(e.get(k) == v for k, v in match.items())]


def steady_probes(box):
    """The sandbox's health probes without ``load``: on a shared 2-core machine the 5-minute load alone can fail a
    run's health check, which is not the fault a case injects. Pass as ``health_check_probes``."""
    return [probe for probe in faults.sandbox_vars(box)['health_check_probes'] if probe['kind'] != 'load']


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
        artifact=dict(file=name, size_bytes=os.path.getsize(path), sha256=_sha256(path), format='tar.zst',
                      compression='zstd'),
        database=dict(name=database, server_version='15.18', pg_dump_version='15.18', format='custom',
                      member=dump_member, member_sha256=hashlib.sha256(dump_bytes).hexdigest(),
                      member_size_bytes=len(dump_bytes), tables={}),
        files=dict(files, roots=['/srv/app']))
    with open(path + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle, indent=2)
    return path

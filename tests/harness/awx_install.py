"""Install AWX 24.6.1 (API only, no container images) from the shared test material into a cached venv.

The material is ``$ENGINEROOM_SHARED/awx/`` (default ``<repo>/../shared/awx/``): the AWX source
tarball, the django-ansible-base wheel and AWX's pinned requirements (see its README). The venv lives
outside the clone, in ``$ENGINEROOM_CACHE/awx-<hash>/`` (default ``/var/cache/engineroom``), keyed by
the hash of those files and of the recipe, so it is built once and reused by every run and every
clone. Wheels are kept in ``$ENGINEROOM_CACHE/awx-wheels/`` so that a rebuild needs no index.

    python -m tests.harness.awx_install      # install if needed, print the install directory
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time

from tests.harness.playbook import REPO_ROOT

AWX_VERSION = '24.6.1'
SOURCE_TARBALL = 'awx-%s-src.tar.zst' % AWX_VERSION
PINNED = 'awx-%s-requirements-pinned.txt' % AWX_VERSION
DAB_WHEEL = 'django_ansible_base-2024.7.1-py3-none-any.whl'
MATERIAL = (SOURCE_TARBALL, PINNED, DAB_WHEEL)
EXTRA_REQUIREMENTS = ('certifi', 'ansible-runner==2.4.0', 'python3-saml==1.16.0',
                      'django-ansible-base[rest_filters,jwt_consumer,rbac]==2024.7.1')
OS_PACKAGES = ('build-essential', 'libpq-dev', 'libldap2-dev', 'libsasl2-dev', 'libltdl-dev', 'libxmlsec1-dev',
               'pkg-config', 'redis-server', 'postgresql-15', 'zstd')
RECIPE = 1  # raise when _install changes what it builds
NEEDS = ('AWX test material missing: set ENGINEROOM_SHARED to a folder holding awx/ with %s, %s and %s'
         % MATERIAL)


class AwxUnavailable(RuntimeError):
    """The material to build AWX is not on this machine (the layer is skipped)."""


def shared_dir():
    return os.environ.get('ENGINEROOM_SHARED') or os.path.join(os.path.dirname(REPO_ROOT), 'shared')


def material_dir():
    """``<shared>/awx`` holding the three files, or AwxUnavailable naming what is needed."""
    path = os.path.join(shared_dir(), 'awx')
    missing = [name for name in MATERIAL if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise AwxUnavailable('%s (looked in %s; missing %s)' % (NEEDS, path, ', '.join(missing)))
    return path


def cache_root():
    return os.environ.get('ENGINEROOM_CACHE', '/var/cache/engineroom')


def content_hash(material):
    """sha256 over the material and the recipe: a change to either means a new install."""
    digest = hashlib.sha256(repr((RECIPE, EXTRA_REQUIREMENTS, sys.version_info[:2])).encode())
    for path in [os.path.join(material, name) for name in MATERIAL]:
        digest.update(os.path.basename(path).encode() + b'\0')
        with open(path, 'rb') as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b''):
                digest.update(chunk)
    return digest.hexdigest()[:12]


class AwxInstall:
    """The cached install: ``venv/``, ``src/`` (the AWX source, editable), ``.installed`` when complete."""

    def __init__(self, material=None):
        self.material = material or material_dir()
        self.hash = content_hash(self.material)
        self.root = os.path.join(cache_root(), 'awx-' + self.hash)
        self.venv = os.path.join(self.root, 'venv')
        self.src = os.path.join(self.root, 'src')
        self.wheels = os.path.join(cache_root(), 'awx-wheels')
        self.stamp = os.path.join(self.root, '.installed')

    def bin(self, name):
        return os.path.join(self.venv, 'bin', name)

    @property
    def installed(self):
        return os.path.exists(self.stamp)

    def ensure(self, log=None):
        """Install unless cached; return the seconds spent (0.0 when cached). One installer at a time."""
        if self.installed:
            return 0.0
        os.makedirs(cache_root(), exist_ok=True)
        with open(os.path.join(cache_root(), '.awx-install.lock'), 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.installed:
                return 0.0
            started = time.monotonic()
            self._install(log or sys.stderr)
            return time.monotonic() - started

    def _run(self, argv, log, **kwargs):
        log.write('[awx-install] %s\n' % ' '.join(argv)[:300])
        log.flush()
        completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False, **kwargs)
        if completed.returncode != 0:
            raise RuntimeError('%s exited %d: %s' % (argv[0], completed.returncode,
                                                     completed.stdout.decode('utf-8', 'replace')[-3000:]))

    def _install(self, log):
        shutil.rmtree(self.root, ignore_errors=True)  # a half-built install from an interrupted run
        os.makedirs(self.src)
        self._run(['bash', os.path.join(REPO_ROOT, 'scripts', 'os-packages.sh')] + list(OS_PACKAGES), log)
        self._run(['tar', '--zstd', '-xf', os.path.join(self.material, SOURCE_TARBALL), '-C', self.src], log)
        for empty in ('awx/ui/build/static', 'awx/ui_next/build'):  # the API serves no UI
            os.makedirs(os.path.join(self.src, empty), exist_ok=True)
        base_python = getattr(sys, '_base_executable', sys.executable)
        self._run([base_python, '-m', 'venv', self.venv], log)
        requirements = ['-r', os.path.join(self.material, PINNED)] + list(EXTRA_REQUIREMENTS)
        links = ['--find-links', self.material, '--find-links', self.wheels]
        os.makedirs(self.wheels, exist_ok=True)
        pip = [self.bin('python'), '-m', 'pip', '--disable-pip-version-check', '-q']
        # Fill the wheel cache (quick when complete: every pin is found in it), then install from it alone.
        self._run(pip + ['wheel', '-w', self.wheels] + links + requirements, log)
        self._run(pip + ['install', '--no-index'] + links + requirements, log)
        self._run(pip + ['install', '--no-index', '--no-deps', '--no-build-isolation', '-e', self.src], log)
        with open(self.stamp, 'w') as handle:
            handle.write(AWX_VERSION + '\n')


def main():
    try:
        install = AwxInstall()
    except AwxUnavailable as exc:
        print('skipped: %s' % exc)
        return 0
    seconds = install.ensure()
    print('%s (%s)' % (install.root, 'installed in %.0f s' % seconds if seconds else 'cached'))
    return 0


if __name__ == '__main__':
    sys.exit(main())

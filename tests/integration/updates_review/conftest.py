"""Real package sources for the update review: a local apt repository (dpkg-deb, dpkg-scanpackages) with a
private apt state and dpkg root, a venv with an old pinned package, an npm project, and a local registry
(Debian's docker-registry on loopback) holding two versions of a locally built image."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request

import pytest

from tests.harness.ports import free_port

OLD_SIX = '1.15.0'


def build_deb(name, version, dest_dir, work):
    root = os.path.join(work, '%s_%s' % (name, version))
    os.makedirs(os.path.join(root, 'DEBIAN'))
    os.makedirs(os.path.join(root, 'usr', 'share', name))
    with open(os.path.join(root, 'usr', 'share', name, 'version'), 'w') as handle:
        handle.write(version + '\n')
    with open(os.path.join(root, 'DEBIAN', 'control'), 'w') as handle:
        handle.write('Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: engineroom tests <t@example.com>\n'
                     'Description: engineroom update review test package\n' % (name, version))
    os.makedirs(dest_dir, exist_ok=True)
    path = os.path.join(dest_dir, '%s_%s_all.deb' % (name, version))
    subprocess.run(['dpkg-deb', '-Zgzip', '--build', root, path], check=True, stdout=subprocess.DEVNULL)
    return path


def publish(repo, label, suite):
    """A flat repository: Packages from dpkg-scanpackages, a Release naming its label and suite."""
    packages = subprocess.run(['dpkg-scanpackages', '-m', '.', '/dev/null'], cwd=repo, check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    with open(os.path.join(repo, 'Packages'), 'wb') as handle:
        handle.write(packages)
    with open(os.path.join(repo, 'Release'), 'w') as handle:
        handle.write('Origin: Debian\nLabel: %s\nSuite: %s\nCodename: bookworm\nDate: %s\nSHA256:\n %s %d Packages\n'
                     % (label, suite, time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime()),
                        hashlib.sha256(packages).hexdigest(), len(packages)))


class AptSandbox:
    """Its own apt state, sources, cache and dpkg root: the machine's apt and dpkg are never touched."""

    def __init__(self, base):
        self.base = base
        self.root = os.path.join(base, 'root')
        self.config = os.path.join(base, 'apt.conf')
        self.reboot_flag = os.path.join(base, 'reboot-required')
        work = os.path.join(base, 'build')
        old = [build_deb('engineroom-upd', '1.0', os.path.join(base, 'old'), work),
               build_deb('engineroom-sec', '1.0', os.path.join(base, 'old'), work),
               build_deb('engineroom-held', '1.0', os.path.join(base, 'old'), work)]
        build_deb('engineroom-upd', '1.1', os.path.join(base, 'repo', 'main'), work)
        build_deb('engineroom-held', '2.0', os.path.join(base, 'repo', 'main'), work)
        build_deb('engineroom-sec', '1.1', os.path.join(base, 'repo', 'security'), work)
        publish(os.path.join(base, 'repo', 'main'), 'Debian', 'stable')
        publish(os.path.join(base, 'repo', 'security'), 'Debian-Security', 'stable-security')
        for sub in ('root/var/lib/dpkg/info', 'root/var/lib/dpkg/updates', 'root/var/lib/dpkg/triggers',
                    'lists/partial', 'cache/archives/partial', 'etc/sources.list.d', 'etc/preferences.d',
                    'etc/apt.conf.d', 'log', 'state'):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        for name in ('status', 'available'):
            open(os.path.join(self.root, 'var/lib/dpkg', name), 'w').close()
        with open(os.path.join(base, 'etc', 'sources.list'), 'w') as handle:
            handle.write('deb [trusted=yes] file:%s/repo/main ./\ndeb [trusted=yes] file:%s/repo/security ./\n'
                         % (base, base))
        with open(self.config, 'w') as handle:
            handle.write('\n'.join([
                'Dir::State "%(b)s/state";', 'Dir::State::Lists "%(b)s/lists";',
                'Dir::State::status "%(r)s/var/lib/dpkg/status";', 'Dir::Cache "%(b)s/cache";', 'Dir::Etc "%(b)s/etc";',
                'Dir::Etc::SourceList "%(b)s/etc/sources.list";', 'Dir::Etc::SourceParts "%(b)s/etc/sources.list.d";',
                'Dir::Etc::Parts "%(b)s/etc/apt.conf.d";', 'Dir::Etc::PreferencesParts "%(b)s/etc/preferences.d";',
                'Dir::Log "%(b)s/log";', 'DPkg::Options { "--root=%(r)s"; "--force-not-root"; "--log=%(b)s/log/dpkg.log"; };',
                'Debug::NoLocking "true";', 'APT::Sandbox::User "root";', '']) % dict(b=base, r=self.root))
        for deb in old:
            self.dpkg('-i', deb)
        subprocess.run(['dpkg', '--root=%s' % self.root, '--set-selections'], input=b'engineroom-held hold\n', check=True)

    def dpkg(self, *args):
        return subprocess.run(['dpkg', '--root=%s' % self.root, '--force-not-root'] + list(args), check=True,
                              stdout=subprocess.PIPE, text=True).stdout

    def installed(self, name):
        with open(os.path.join(self.root, 'usr', 'share', name, 'version')) as handle:
            return handle.read().strip()


@pytest.fixture
def apt_sandbox(tmp_path):
    return AptSandbox(str(tmp_path / 'apt'))


def make_venv(path):
    subprocess.run([sys.executable, '-m', 'venv', path], check=True)
    subprocess.run([os.path.join(path, 'bin', 'pip'), 'install', '-q', '--disable-pip-version-check',
                    'six==%s' % OLD_SIX], check=True)
    return path


def venv_version(path, package='six'):
    out = subprocess.run([os.path.join(path, 'bin', 'python'), '-m', 'pip', 'show', package], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return [line.split(': ', 1)[1] for line in out.splitlines() if line.startswith('Version: ')][0]


@pytest.fixture(scope='session')
def old_venv(tmp_path_factory):
    """A venv with six pinned at an old release (read only: tests that upgrade make their own)."""
    return make_venv(str(tmp_path_factory.mktemp('venv') / 'app'))


@pytest.fixture(scope='session')
def npm_project(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('npm') / 'shop')
    os.makedirs(path)
    with open(os.path.join(path, 'package.json'), 'w') as handle:
        json.dump(dict(name='shop', version='1.0.0', private=True, dependencies={'ms': '2.0.0'}), handle)
    subprocess.run(['npm', 'install', '--no-audit', '--no-fund', '--silent'], cwd=path, check=True,
                   stdout=subprocess.DEVNULL, timeout=300)
    return path


def tiny_image_tar(version, seconds=3600):
    """A build context for an image of a few MB: /bin/sleep, its libraries, a version file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        for path in ('/bin/sleep', '/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2'):
            tar.add(os.path.realpath(path), arcname='rootfs' + path)
        data = ('%s\n' % version).encode()
        info = tarfile.TarInfo('rootfs/version')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        dockerfile = b'FROM scratch\nCOPY rootfs/ /\nCMD ["/bin/sleep", "%d"]\n' % seconds
        info = tarfile.TarInfo('Dockerfile')
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    buffer.seek(0)
    return buffer


class Registry:
    def __init__(self, base):
        self.port = free_port()
        self.address = '127.0.0.1:%d' % self.port
        os.makedirs(base, exist_ok=True)
        config = os.path.join(base, 'config.yml')
        with open(config, 'w') as handle:
            handle.write('version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n'
                         'http:\n  addr: %s\n' % (base, self.address))
        self.log = open(os.path.join(base, 'registry.log'), 'wb')
        self.process = subprocess.Popen(['docker-registry', 'serve', config], stdout=self.log, stderr=subprocess.STDOUT)
        for dummy in range(100):
            try:
                urllib.request.urlopen('http://%s/v2/' % self.address, timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError('docker-registry did not start on %s' % self.address)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


@pytest.fixture(scope='session')
def registry(tmp_path_factory, docker_client):
    if not shutil.which('docker-registry'):
        pytest.skip('docker-registry missing: apt-get install docker-registry (scripts/os-packages.sh test)')
    server = Registry(str(tmp_path_factory.mktemp('registry')))
    yield server
    server.stop()


def build_and_push(client, reference, version, seconds=3600):
    """Build the tiny image (its CMD sleeps ``seconds``) and push it; the image."""
    image = client.images.build(fileobj=tiny_image_tar(version, seconds), custom_context=True, tag=reference, rm=True)[0]
    repository, tag = reference.rsplit(':', 1)
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        assert 'error' not in line, line
    return image

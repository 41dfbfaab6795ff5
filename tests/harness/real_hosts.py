"""Real hosts for pytest: containers of the engineroom-host images (scripts/build-host-images.sh), reached over SSH.

The molecule scenario ``real_hosts`` is the source of truth for how a fleet host is reached and configured:
its ``molecule.yml`` holds the group variables (PostgreSQL by peer on the socket, the paths) and the SSH
variables of a host (deploy, key, become), its ``app.sql`` the application's database. This module reads
those files rather than repeating them, and adds what pytest needs: containers started with ``docker run``
(sshd published on a 127.0.0.1 port Docker picks), the deploy key installed through ``docker exec``,
an inventory file, and ``docker exec`` to inject faults as root inside a host.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import yaml

from tests.harness import faults
from tests.harness.faults_process import wait_until
from tests.harness.playbook import REPO_ROOT
from tests.harness.ports import free_port, wait_listening

SCENARIO_DIR = os.path.join(REPO_ROOT, 'extensions', 'molecule', 'real_hosts')
# Debian release -> (PostgreSQL major, Python) of its image.
RELEASES = {'bullseye': (13, '3.9'), 'bookworm': (15, '3.11'), 'trixie': (17, '3.13')}
BOOT = '/usr/local/sbin/engineroom-boot'


def image_of(release):
    return 'engineroom-host:%s' % release


def missing_images(releases):
    """The images among ``releases`` the local engine does not have."""
    return [image_of(r) for r in releases
            if subprocess.run(['docker', 'image', 'inspect', image_of(r)], capture_output=True, check=False).returncode]


def docker(*argv, stdin=None, check=True, timeout=120):
    """``docker ARGV``; its CompletedProcess (text), raising with the output when ``check`` and it failed."""
    completed = subprocess.run(['docker'] + list(argv), input=stdin, capture_output=True, text=True, check=False,
                               timeout=timeout)
    if check and completed.returncode:
        raise AssertionError('docker %s failed (%d): %s%s'
                             % (' '.join(argv[:4]), completed.returncode, completed.stdout[-2000:], completed.stderr[-2000:]))
    return completed


def scenario_inventory():
    """(group variables, SSH variables of a host) as molecule.yml gives them to the scenario's hosts."""
    with open(os.path.join(SCENARIO_DIR, 'molecule.yml')) as handle:
        inventory = yaml.safe_load(handle)['provisioner']['inventory']
    host = dict(next(iter(inventory['host_vars'].values())))
    ssh = {key: value for key, value in host.items() if key.startswith('ansible_')}
    return dict(inventory['group_vars']['all']), ssh


def make_key(directory):
    """A passphrase-less ed25519 key pair in ``directory``; the private key's path."""
    path = os.path.join(directory, 'deploy_ed25519')
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'pytest-real-hosts', '-f', path], check=True)
    return path


class RealHost:
    """One running container of a release's image: its inventory name, SSH port and a root shell through docker exec."""

    def __init__(self, release, name):
        self.release, self.name = release, name
        self.pg_major, self.python = RELEASES[release]
        self.container = '%s-%s' % (name, uuid.uuid4().hex[:6])
        self.port = None

    def start(self, public_key):
        docker('run', '-d', '--name', self.container, '--label', 'engineroom.pytest=real_hosts',
               '-p', '127.0.0.1::22', image_of(self.release), BOOT)
        self.port = int(docker('port', self.container, '22/tcp').stdout.splitlines()[0].rsplit(':', 1)[1])
        self.sh('cat > /home/deploy/.ssh/authorized_keys && chown deploy:deploy /home/deploy/.ssh/authorized_keys '
                '&& chmod 0600 /home/deploy/.ssh/authorized_keys', stdin=public_key)
        return self

    def wait_ready(self):
        """sshd answers on the published port and PostgreSQL on its socket; the application database is there."""
        wait_listening(self.port, timeout=60, greeting=b'SSH-')  # sshd itself, not Docker's proxy
        wait_until(lambda: self.sh('pg_isready -q -h /var/run/postgresql', check=False).returncode == 0,
                   'PostgreSQL %d in %s' % (self.pg_major, self.container), timeout=60)
        with open(os.path.join(SCENARIO_DIR, 'app.sql')) as handle:
            self.sh('runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -tA -f -', stdin=handle.read())
        return self

    def sh(self, script, stdin=None, check=True, user='root'):
        """Run ``sh -c SCRIPT`` in the container as ``user``."""
        return docker('exec', '-i', '-u', user, self.container, 'sh', '-c', script, stdin=stdin, check=check)

    def inventory_vars(self, ssh, key):
        return dict(ssh, ansible_port=self.port, ansible_ssh_private_key_file=key,
                    real_hosts_pg_major=self.pg_major, real_hosts_python=self.python)

    def remove(self):
        docker('rm', '-f', '-v', self.container, check=False)


class Fleet:
    """Hosts of the given releases, started side by side, reachable as deploy over SSH with become, as in molecule."""

    def __init__(self, directory, releases, prefix='pytest-rh'):
        self.directory = directory
        self.hosts = {release: RealHost(release, '%s-%s' % (prefix, release)) for release in releases}
        self.group_vars, self.ssh = scenario_inventory()
        self.key = None

    def __enter__(self):
        self.key = make_key(self.directory)
        with open(self.key + '.pub') as handle:
            public_key = handle.read()
        try:
            for host in self.hosts.values():
                host.start(public_key)
            for host in self.hosts.values():
                host.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for host in self.hosts.values():
            host.remove()

    def __getitem__(self, release):
        return self.hosts[release]

    def inventory(self, name, group_vars=None, host_vars=None, extra_hosts=None):
        """Write an inventory of every host (``host_vars``: inventory name -> extra variables); its path."""
        hosts = {}
        for host in self.hosts.values():
            hosts[host.name] = dict(host.inventory_vars(self.ssh, self.key), **(host_vars or {}).get(host.name, {}))
        hosts.update(extra_hosts or {})
        return faults.write_inventory(os.path.join(self.directory, name), hosts, dict(self.group_vars, **(group_vars or {})))

    def env(self, log_dir):
        """ansible-playbook's environment as molecule.yml sets it: pipelining, no host key check, the log directory."""
        return dict(ANSIBLE_PIPELINING='1', ANSIBLE_HOST_KEY_CHECKING='0', ENGINEROOM_MAINTENANCE_LOG_DIR=log_dir)

    def refused_host(self):
        """SSH variables of a host whose port nobody listens on (connection refused)."""
        return dict(self.ssh, ansible_port=free_port(), ansible_ssh_private_key_file=self.key,
                    ansible_ssh_common_args=self.ssh['ansible_ssh_common_args'] + ' -o ConnectTimeout=5')


def transplant_client(source, target, programs=('pg_dump', 'pg_restore')):
    """Install ``source``'s PostgreSQL client ``programs`` on ``target`` where Debian's postgresql-client-<major> puts
    them (/usr/lib/postgresql/<major>/bin): each binary with every library ldd names and the source's own loader under
    /opt/pg<major>-<release>, started through that loader, so a client built against a newer glibc runs on an older
    release. ``source`` keeps its own."""
    home = '/opt/pg%d-%s' % (source.pg_major, source.release)
    binaries = ['/usr/lib/postgresql/%d/bin/%s' % (source.pg_major, program) for program in programs]
    tarball = docker('exec', source.container, 'sh', '-c',
                     'tar -chf - %s $(ldd %s | grep -o "/[^ ]*" | sort -u) 2>/dev/null | base64 -w0'
                     % (' '.join(binaries), ' '.join(binaries))).stdout
    target.sh('mkdir -p %s && base64 -d | tar -xf - -C %s' % (home, home), stdin=tarball)
    loader = target.sh('ls %s/lib64/ld-linux-x86-64.so.2 %s/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 2>/dev/null | head -1'
                       % (home, home)).stdout.strip()
    libs = '%s/lib/x86_64-linux-gnu:%s/usr/lib/x86_64-linux-gnu' % (home, home)
    for binary in binaries:
        target.sh('mkdir -p %s && cat > %s && chmod 0755 %s' % (os.path.dirname(binary), binary, binary),
                  stdin='#!/bin/sh\nexec %s --library-path %s %s%s "$@"\n' % (loader, libs, home, binary))

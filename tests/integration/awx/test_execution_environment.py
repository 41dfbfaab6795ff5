"""`ansible-builder create` renders the sample execution environment's build context.

No image is built here (no registry, no time): the test renders the real
execution-environment.yml with the real built tarball next to it, checks the
Containerfile and the files in _build/, then runs the same introspection the
image build runs (`ansible-builder introspect`) on the tarball installed the way
the Containerfile's galaxy stage installs it, so the collection's
meta/execution-environment.yml is proven to resolve from an installed copy.
"""

from __future__ import annotations

import glob
import os
import pathlib
import subprocess

import yaml

from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env


def run(argv, **kwargs):
    completed = subprocess.run(argv, check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, **kwargs)
    assert completed.returncode == 0, '%s failed:\n%s\n%s' % (argv, completed.stdout[-2000:], completed.stderr[-2000:])
    return completed


def requirement_lines(path):
    with open(path) as handle:
        return [line.split('#', 1)[0].strip() for line in handle if line.split('#', 1)[0].strip()]


def test_ansible_builder_renders_the_sample_execution_environment(tmp_path):
    # The sample as an operator uses it: the tarball from `make build` next to execution-environment.yml.
    # The definition and the files it names are links to the checkout's own files, not copies.
    project = tmp_path / 'project'
    project.mkdir()
    for name in ('execution-environment.yml', 'requirements.txt', 'meta'):
        os.symlink(os.path.join(REPO_ROOT, name), project / name)
    run([os.path.join(BIN_DIR, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(project), REPO_ROOT],
        env=ansible_env())
    tarball, = glob.glob(str(project / 'engineroom-maintenance-*.tar.gz'))

    context = tmp_path / 'context'
    created = run([os.path.join(BIN_DIR, 'ansible-builder'), 'create', '-f', str(project / 'execution-environment.yml'),
                   '-c', str(context), '--output-filename', 'Containerfile'], cwd=str(tmp_path))
    assert 'No matches' not in created.stdout + created.stderr

    containerfile = (context / 'Containerfile').read_text()
    controller_pins = requirement_lines(os.path.join(REPO_ROOT, 'requirements', 'controller.txt'))
    runner_pin = [p for p in requirement_lines(os.path.join(REPO_ROOT, 'requirements', 'test.txt'))
                  if p.startswith('ansible-runner==')]
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    install_refs = [p for p in controller_pins if p.startswith('ansible-core==')] + runner_pin
    assert 'ARG ANSIBLE_INSTALL_REFS="%s"' % ' '.join(install_refs) in containerfile
    # pg_dump 15 (not the distribution's 13) before bindep installs the client in the final stage.
    assert containerfile.index('module enable postgresql:15') < containerfile.index('FROM base AS final')
    assert 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml' in containerfile
    assert ('introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt' in containerfile)
    assert 'RUN /output/scripts/install-from-bindep' in containerfile

    build = context / '_build'
    assert (build / 'requirements.txt').read_text() == pathlib.Path(REPO_ROOT, 'requirements.txt').read_text()
    assert (build / 'bindep.txt').read_text() == pathlib.Path(REPO_ROOT, 'meta', 'ee-bindep.txt').read_text()
    galaxy = yaml.safe_load((build / 'requirements.yml').read_text())
    entry, = galaxy['collections']
    assert entry['type'] == 'file'
    # The galaxy stage runs in /build = _build/, where the tarball was copied.
    assert (build / entry['name']).read_bytes() == pathlib.Path(tarball).read_bytes()

    # What the builder stage's introspect step computes from the installed collection.
    installed = tmp_path / 'collections'
    run([os.path.join(BIN_DIR, 'ansible-galaxy'), 'collection', 'install', '--offline', '-p', str(installed),
         str(build / entry['name'])], env=ansible_env(dict(ANSIBLE_COLLECTIONS_PATH=str(installed))),
        cwd=str(build))
    pip_out, bindep_out = tmp_path / 'pip.txt', tmp_path / 'bindep.txt'
    run([os.path.join(BIN_DIR, 'ansible-builder'), 'introspect', '--user-pip', str(build / 'requirements.txt'),
         '--user-bindep', str(build / 'bindep.txt'), '--write-pip', str(pip_out), '--write-bindep', str(bindep_out),
         str(installed)], cwd=str(tmp_path))
    pip_lines, bindep_lines = pip_out.read_text().splitlines(), bindep_out.read_text().splitlines()
    pins = requirement_lines(os.path.join(REPO_ROOT, 'requirements.txt'))
    # meta/ee-requirements.txt's `-r ../requirements.txt` resolved inside the installed collection.
    assert sorted(line.split('  # from collection ')[0] for line in pip_lines
                  if line.endswith('# from collection engineroom.maintenance')) == sorted(pins)
    assert {line.split('  # from collection ')[0] for line in pip_lines} == set(pins)
    ee_bindep = requirement_lines(os.path.join(REPO_ROOT, 'meta', 'ee-bindep.txt'))
    assert [line.split('  # from collection ')[0] for line in bindep_lines
            if line.endswith('# from collection engineroom.maintenance')] == ee_bindep

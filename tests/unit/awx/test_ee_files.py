"""The execution-environment files name one source of truth for each dependency list.

requirements.txt (Python pins) is referenced, never copied: meta/ee-requirements.txt
includes it with ``-r`` and the sample execution-environment.yml names it. The OS
packages exist twice on purpose (bindep.txt for a managed host or a checkout, where
``bindep`` looks by default; meta/ee-bindep.txt for ansible-builder), so bindep itself
parses both here and they must select the same packages on every platform.
"""

from __future__ import annotations

import functools
import os

import pytest
import yaml
from bindep.depends import Depends

from tests.harness.playbook import REPO_ROOT

PLATFORMS = {
    'debian': ['platform:dpkg', 'platform:debian', 'platform:debian-12'],
    'ubuntu': ['platform:dpkg', 'platform:ubuntu'],
    'rhel': ['platform:rpm', 'platform:redhat', 'platform:rhel', 'platform:rhel-9'],
    'centos': ['platform:rpm', 'platform:redhat', 'platform:centos'],
}


def read(*parts):
    with open(os.path.join(REPO_ROOT, *parts)) as handle:
        return handle.read()


def requirement_lines(text):
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith('#')]


@functools.lru_cache(maxsize=None)
def parsed(*parts):
    """bindep's grammar takes seconds to build, so each file is parsed once."""
    return Depends(read(*parts))


def packages(parts, platform, profile='default'):
    return sorted(rule[0] for rule in parsed(*parts).active_rules(PLATFORMS[platform] + [profile]))


def test_collection_ee_metadata_names_the_ee_files():
    meta = yaml.safe_load(read('meta', 'execution-environment.yml'))
    assert meta['dependencies'] == {'python': 'meta/ee-requirements.txt', 'system': 'meta/ee-bindep.txt'}
    # ansible-builder resolves them relative to the collection root.
    for path in meta['dependencies'].values():
        assert os.path.isfile(os.path.join(REPO_ROOT, path))


def test_ee_python_requirements_reference_requirements_txt():
    assert requirement_lines(read('meta', 'ee-requirements.txt')) == ['-r ../requirements.txt']
    assert requirement_lines(read('requirements.txt')), 'requirements.txt lists the modules\' libraries'


@pytest.mark.parametrize('platform', sorted(PLATFORMS))
def test_ee_bindep_and_bindep_select_the_same_packages(platform):
    ee, host = ('meta', 'ee-bindep.txt'), ('bindep.txt',)
    assert packages(ee, platform) == packages(host, platform)
    assert packages(ee, platform, 'compile') == packages(host, platform, 'compile')
    assert {'zstd', 'procps'} <= set(packages(ee, platform))
    assert ('postgresql-client' if platform in ('debian', 'ubuntu') else 'postgresql') in packages(ee, platform)


def test_sample_ee_uses_the_same_files_and_the_built_tarball():
    sample = yaml.safe_load(read('execution-environment.yml'))
    galaxy = yaml.safe_load(read('galaxy.yml'))
    assert sample['version'] == 3
    deps = sample['dependencies']
    assert deps['python'] == 'requirements.txt' and deps['system'] == 'meta/ee-bindep.txt'
    # The pins of the controller and of ansible-runner are the ones the tests run with.
    assert deps['ansible_core']['package_pip'] in requirement_lines(read('requirements', 'controller.txt'))
    assert deps['ansible_runner']['package_pip'] in requirement_lines(read('requirements', 'test.txt'))
    tarball = '%s-%s-%s.tar.gz' % (galaxy['namespace'], galaxy['name'], galaxy['version'])
    assert deps['galaxy']['collections'] == [{'name': 'collections/' + tarball, 'type': 'file'}]
    assert sample['additional_build_files'] == [{'src': 'engineroom-maintenance-*.tar.gz', 'dest': 'collections'}]

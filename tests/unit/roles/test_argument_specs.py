"""Every role's typed argument specs, defaults and README agree with each other."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
import yaml

from tests.harness.playbook import REPO_ROOT

ROLES = sorted(os.path.basename(os.path.dirname(os.path.dirname(p)))
               for p in glob.glob(os.path.join(REPO_ROOT, 'roles', '*', 'meta', 'argument_specs.yml')))


def load(role, *parts):
    path = os.path.join(REPO_ROOT, 'roles', role, *parts)
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def test_every_role_has_argument_specs():
    assert ROLES == sorted(os.listdir(os.path.join(REPO_ROOT, 'roles')))


@pytest.mark.parametrize('role', ROLES)
def test_defaults_are_documented_with_the_same_values(role):
    specs = load(role, 'meta', 'argument_specs.yml')['argument_specs']
    documented = {}
    for spec in specs.values():
        documented.update(spec.get('options') or {})
    defaults = load(role, 'defaults', 'main.yml')
    undocumented = sorted(set(defaults) - set(documented))
    assert not undocumented, 'defaults/main.yml of %s sets undocumented variables %s' % (role, undocumented)
    for name, value in defaults.items():
        if 'default' in documented[name]:
            assert documented[name]['default'] == value, '%s: default differs between specs and defaults' % name
    for name, option in documented.items():
        assert name.startswith(role + '_'), '%s: role variables carry the role name as prefix' % name
        assert option.get('description'), '%s has no description' % name
        assert option.get('type'), '%s has no type' % name


def test_readmes_are_generated_from_the_specs():
    completed = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'scripts', 'role_readme.py'), '--check'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert completed.returncode == 0, completed.stdout

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Outdated packages of the Python virtual environments the inventory names, each with its own pip."""

from __future__ import annotations

import json
import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.updates.common import UpdateError


def venv_python(path):
    """The venv's python, or :class:`UpdateError` when ``path`` is not a virtual environment."""
    if not os.path.isdir(path):
        raise UpdateError('venv %s does not exist: check the path in the inventory' % path)
    python = os.path.join(path, 'bin', 'python')
    if not os.path.exists(os.path.join(path, 'pyvenv.cfg')) or not os.access(python, os.X_OK):
        raise UpdateError('%s is not a Python virtual environment (no pyvenv.cfg or bin/python): give the directory '
                          'created by "python3 -m venv"' % path)
    return python


def _pip(python, *args):
    return [python, '-m', 'pip', '--disable-pip-version-check', '--no-input'] + list(args)


def outdated(runner, path, index_url=None):
    python = venv_python(path)
    argv = _pip(python, 'list', '--outdated', '--format', 'json') + (['--index-url', index_url] if index_url else [])
    try:
        packages = json.loads(runner.run(argv, what='pip list --outdated in %s' % path) or '[]')
    except ValueError as exc:
        raise UpdateError('pip in %s printed no JSON: %s' % (path, exc)) from exc
    return [dict(name=p['name'], current=p['version'], latest=p['latest_version']) for p in packages]


def install(runner, path, pins, index_url=None):
    """``pins``: {name: version}; installs exactly those versions."""
    argv = _pip(venv_python(path), 'install', '-q') + (['--index-url', index_url] if index_url else [])
    runner.run(argv + ['%s==%s' % item for item in sorted(pins.items())], what='pip install in %s' % path)


def review_venv(runner, venv, index_url, apply, gate):
    """One venv: outdated packages; with ``apply``, upgrade them, check health, roll back on failure."""
    entry = dict(name=venv.get('name') or venv['path'], path=venv['path'], outdated=[], applied=[], error=None,
                 rolled_back=False)
    try:
        entry['outdated'] = outdated(runner, venv['path'], index_url)
        if apply and entry['outdated']:
            install(runner, venv['path'], dict((p['name'], p['latest']) for p in entry['outdated']), index_url)
            entry['applied'] = [p['name'] for p in entry['outdated']]
            problem = gate()
            if problem:
                install(runner, venv['path'], dict((p['name'], p['current']) for p in entry['outdated']), index_url)
                entry.update(rolled_back=True, error='health check failed after the upgrade, previous versions '
                                                     'reinstalled: %s' % problem)
    except UpdateError as exc:
        entry['error'] = str(exc)
    return entry

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monthly update review: every kind asked for, each failure kept to its kind or item."""

from __future__ import annotations

import shutil

from ansible_collections.engineroom.maintenance.plugins.module_utils.updates import apt as apt_kind
from ansible_collections.engineroom.maintenance.plugins.module_utils.updates import images as images_kind
from ansible_collections.engineroom.maintenance.plugins.module_utils.updates import npm as npm_kind
from ansible_collections.engineroom.maintenance.plugins.module_utils.updates import pip as pip_kind
from ansible_collections.engineroom.maintenance.plugins.module_utils.updates.common import Runner, UpdateError, health_gate
from ansible_collections.engineroom.maintenance.plugins.module_utils.updates.recreate import recreate


class HealthGateError(Exception):
    """The health check failed after an apply; ``result`` is the review so far."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


def _apt(runner, params, apply_apt, check_mode):
    if not params['apt']:
        return None
    if not shutil.which('apt-get'):
        return dict(error='apt-get not found: this host does not use apt (dnf is not reviewed yet)', pending=[],
                    security=[], held=[], reboot_required=False, reboot_packages=[], applied=[])
    try:
        return apt_kind.review_apt(runner, dict(params, apt_update_cache=params['apt_update_cache'] and not check_mode),
                                   apply_apt and not check_mode)
    except UpdateError as exc:
        return dict(error=str(exc), pending=[], security=[], held=[], reboot_required=False, reboot_packages=[],
                    applied=[])


def _images(params, apply_images, gate):
    if not params['images']:
        return []
    from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.client import DockerExecError, docker_client
    try:
        client = docker_client(params['docker_host'], timeout=params['timeout_s'])
    except DockerExecError as exc:
        return [dict(container=None, image=None, error=str(exc), update_available=False)]
    entries = images_kind.review_images(client)
    for entry in entries:
        entry.update(applied=False, rolled_back=False)
        if apply_images and entry['update_available'] and not entry['error']:
            try:
                recreate(client, entry, params['image_settle_s'], gate)
            except Exception as exc:  # docker.errors.APIError and friends: said per container
                entry['error'] = 'cannot move %s to the new image: %s' % (entry['container'], exc)
    return entries


def review(params, check_mode):
    """Return the result dict; raise HealthGateError when an apply left the host unhealthy."""
    runner = Runner(timeout=params['timeout_s'])
    apply = set(params['apply'])

    def gate():
        return health_gate(runner, params['health_command'])

    result = dict(apt=_apt(runner, params, 'apt' in apply, check_mode))
    if result['apt'] and result['apt'].get('applied'):
        problem = gate()
        if problem:
            result['executed_commands'] = runner.commands
            raise HealthGateError('health check failed after upgrading %s (apt upgrades are not rolled back: check the '
                                  'services, or downgrade with apt-get install NAME=VERSION): %s'
                                  % (', '.join(result['apt']['applied']), problem), result)
    result['pip'] = [pip_kind.review_venv(runner, venv, params['pip_index_url'], 'pip' in apply and not check_mode, gate)
                     for venv in params['venvs']]
    result['npm'] = [npm_kind.review_project(runner, path) for path in params['npm_projects']]
    result['images'] = _images(params, 'images' in apply and not check_mode, gate)
    result['executed_commands'] = runner.commands
    return result


def errors_of(result):
    errors = []
    if result.get('apt') and result['apt'].get('error'):
        errors.append('apt: %s' % result['apt']['error'])
    for kind in ('pip', 'npm', 'images'):
        errors.extend('%s: %s' % (kind, item['error']) for item in result[kind] if item.get('error'))
    return errors


def metrics_of(result):
    apt = result.get('apt') or {}
    pip_outdated = sum(len(v['outdated']) for v in result['pip'])
    return dict(apt_pending=len(apt.get('pending') or []), apt_security=len(apt.get('security') or []),
                apt_held=len(apt.get('held') or []), reboot_required=int(bool(apt.get('reboot_required'))),
                pip_outdated=pip_outdated, npm_outdated=sum(len(p['outdated']) for p in result['npm']),
                images_outdated=sum(1 for i in result['images'] if i.get('update_available')),
                apt_applied=len(apt.get('applied') or []),
                pip_applied=sum(len(v['applied']) for v in result['pip'] if not v['rolled_back']),
                images_applied=sum(1 for i in result['images'] if i.get('applied')),
                errors=len(errors_of(result)))


def summary_of(metrics, errors):
    counts = (metrics['apt_pending'], metrics['apt_security'], metrics['apt_held'])
    parts = ['%d OS package(s) pending (%d security, %d held)' % counts,
             '%d pip' % metrics['pip_outdated'], '%d npm' % metrics['npm_outdated'],
             '%d image(s) with a newer registry digest' % metrics['images_outdated']]
    text = 'update review: ' + ', '.join(parts)
    if metrics['reboot_required']:
        text += '; reboot required'
    if metrics['apt_applied'] or metrics['pip_applied'] or metrics['images_applied']:
        applied = (metrics['apt_applied'], metrics['pip_applied'], metrics['images_applied'])
        text += '; applied %d apt, %d pip, %d image(s)' % applied
    if errors:
        text += '; %d could not be reviewed' % len(errors)
    return text

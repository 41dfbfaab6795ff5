# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Outdated dependencies of npm projects (``npm outdated --json``, which exits 1 when there are some)."""

from __future__ import annotations

import json
import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.updates.common import UpdateError


def review_project(runner, path):
    entry = dict(path=path, outdated=[], error=None)
    try:
        if not os.path.isfile(os.path.join(path, 'package.json')):
            raise UpdateError('%s has no package.json: give the directory of an npm project' % path)
        text = runner.run(['npm', 'outdated', '--json'], cwd=path, ok_codes=(0, 1), what='npm outdated in %s' % path)
        try:
            found = json.loads(text or '{}')
        except ValueError as exc:
            raise UpdateError('npm outdated in %s printed no JSON: %s' % (path, exc)) from exc
        if 'error' in found and isinstance(found['error'], dict):
            raise UpdateError('npm outdated in %s: %s' % (path, found['error'].get('summary') or found['error']))
        for name, info in sorted(found.items()):
            info = info[0] if isinstance(info, list) else info
            entry['outdated'].append(dict(name=name, current=info.get('current'), wanted=info.get('wanted'),
                                          latest=info.get('latest')))
    except UpdateError as exc:
        entry['error'] = str(exc)
    return entry

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restart selected containers that are unhealthy or exited with an error, within a restart budget, and check they recover.

Only containers named, or carrying the given labels (Compose projects and
services by their ``com.docker.compose.*`` labels), are looked at; never the
whole engine. A container is restarted (``docker restart``: the same
container, never recreated, its volumes untouched) when it runs with a
failing HEALTHCHECK or exited with a non-zero code; one exited with 0 has
finished its job and is left alone. Each container gets at most
``max_restarts`` restarts within ``window_s`` seconds, counted in a state
file written right after each restart, and at most one restart per run: a
container that does not come back is reported and left as it is, never
restarted in a loop.

Recovered means: with a HEALTHCHECK, the check reports ``healthy`` within
``wait_s``; without one, the container is still running ``running_for_s``
seconds after its restart.
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import atomic_write
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc, parse_time

try:
    import docker.errors
except ImportError:
    pass  # the module reports the missing SDK before anything here runs

COMPOSE_PROJECT = 'com.docker.compose.project'
COMPOSE_SERVICE = 'com.docker.compose.service'
POLL_S = 0.5
TROUBLE = ('not_recovered', 'budget_exhausted', 'failed')


class RecoveryError(Exception):
    """A selection or state file that cannot be used, phrased for an operator."""


def select(client, names, labels, compose_project, compose_services):
    """The containers named, or matching every label (and the Compose project/services), sorted by name."""
    found = {}
    for name in names:
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound as exc:
            raise RecoveryError('container %r does not exist: check names (docker ps -a)' % name) from exc
        found[container.id] = container
    label_filter = list(labels)
    if compose_project:
        label_filter.append('%s=%s' % (COMPOSE_PROJECT, compose_project))
    if label_filter:
        services = compose_services or [None]
        for service in services:
            wanted = label_filter + (['%s=%s' % (COMPOSE_SERVICE, service)] if service else [])
            for container in client.containers.list(all=True, filters={'label': wanted}):
                found[container.id] = container
    return sorted(found.values(), key=lambda c: c.name)


def observe(container):
    """Status, health, exit code and start time of a container, read now."""
    container.reload()
    state = container.attrs.get('State', {})
    health = state.get('Health')
    return dict(status=state.get('Status'), health=health.get('Status') if health else None,
                exit_code=state.get('ExitCode'), started_at=state.get('StartedAt'),
                has_healthcheck=bool(container.attrs.get('Config', {}).get('Healthcheck', {}).get('Test'))
                and container.attrs['Config']['Healthcheck']['Test'] != ['NONE'])


def decide(seen):
    """('restart' | None, reason) for one observation."""
    if seen['status'] == 'running':
        if seen['health'] == 'unhealthy':
            return 'restart', 'running with a failing HEALTHCHECK'
        if seen['health'] == 'starting':
            return None, 'its HEALTHCHECK is still starting'
        return None, 'running%s' % (', healthy' if seen['health'] == 'healthy' else '')
    if seen['status'] == 'exited':
        if seen['exit_code']:
            return 'restart', 'exited with code %s' % seen['exit_code']
        return None, 'exited with code 0 (finished its job)'
    return None, 'status %s: not restarted by this module' % seen['status']


class Budget:
    """Restart times per container name within the window, kept in a JSON state file."""

    def __init__(self, path, window_s, now):
        self.path = path
        self.window_s = window_s
        self.now = now
        self.restarts = {}
        if path and os.path.exists(path):
            try:
                with open(path) as handle:
                    self.restarts = json.load(handle).get('restarts', {})
            except (OSError, ValueError, AttributeError) as exc:
                raise RecoveryError('state file %s cannot be read (%s): fix or remove it; it holds the restart budget'
                                    % (path, exc)) from exc

    def recent(self, name):
        times = [parse_time(t) for t in self.restarts.get(name, [])]
        return [t for t in times if t is not None and (self.now - t).total_seconds() < self.window_s]

    def record(self, name, moment):
        self.restarts[name] = [iso_utc(t) for t in self.recent(name)] + [iso_utc(moment)]
        kept = dict((n, [iso_utc(t) for t in self.recent(n)]) for n in self.restarts)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        atomic_write(self.path, json.dumps(dict(restarts=dict((n, t) for n, t in kept.items() if t)), sort_keys=True) + '\n')


def wait_recovery(container, before, wait_s, running_for_s):
    """('recovered' | 'not_recovered', observation, reason) after a restart."""
    deadline = time.monotonic() + wait_s
    while True:
        seen = observe(container)
        restarted = seen['started_at'] != before['started_at']
        if restarted and seen['status'] not in ('running', 'restarting'):
            return 'not_recovered', seen, 'stopped again (%s, exit code %s)' % (seen['status'], seen['exit_code'])
        if restarted and seen['status'] == 'running':
            if seen['has_healthcheck'] and seen['health'] == 'healthy':
                return 'recovered', seen, 'HEALTHCHECK healthy again'
            if seen['has_healthcheck'] and seen['health'] == 'unhealthy':
                return 'not_recovered', seen, 'HEALTHCHECK still failing after the restart'
            started = parse_time((seen['started_at'] or '')[:19] + 'Z')
            if not seen['has_healthcheck'] and started and time.time() - started.timestamp() >= running_for_s:
                return 'recovered', seen, 'running for %s s since the restart' % running_for_s
        if time.monotonic() >= deadline:
            what = 'healthy' if seen['has_healthcheck'] else 'running for %s s' % running_for_s
            return 'not_recovered', seen, 'not %s within %s s of the restart' % (what, wait_s)
        time.sleep(POLL_S)


def entry_of(container, seen):
    labels = container.labels or {}
    return dict(name=container.name, id=container.short_id, compose_project=labels.get(COMPOSE_PROJECT),
                compose_service=labels.get(COMPOSE_SERVICE), status_before=seen['status'], health_before=seen['health'],
                exit_code_before=seen['exit_code'], action='none', outcome='left_alone', reason=None,
                restarts_in_window=0, status_after=seen['status'], health_after=seen['health'], waited_s=None)


def recover_one(client, container, budget, options, check_mode, commands):
    """One container's entry; an engine error on it (removed meanwhile, engine restarting) fails only this entry."""
    try:
        return _recover_one(client, container, budget, options, check_mode, commands)
    except docker.errors.DockerException as exc:
        return dict(name=container.name, id=container.short_id, action='none', outcome='failed',
                    reason='the engine could not be asked about it: %s' % exc)


def _recover_one(client, container, budget, options, check_mode, commands):
    """Look at one container and restart it when needed and allowed; return its result entry."""
    seen = observe(container)
    entry = entry_of(container, seen)
    action, entry['reason'] = decide(seen)
    if action is None:
        entry['outcome'] = 'healthy' if seen['status'] == 'running' and seen['health'] != 'starting' else 'left_alone'
        return entry
    entry['restarts_in_window'] = len(budget.recent(container.name))
    if entry['restarts_in_window'] >= options['max_restarts']:
        entry['outcome'] = 'budget_exhausted'
        entry['reason'] += '; already restarted %d times within %d s (max_restarts %d): left as it is' % (
            entry['restarts_in_window'], options['window_s'], options['max_restarts'])
        return entry
    entry['action'] = 'restart'
    if check_mode:
        entry['outcome'] = 'planned'
        return entry
    commands.append('docker restart --time %d %s' % (options['stop_timeout_s'], container.name))
    started = time.monotonic()
    try:
        client.api.restart(container.id, timeout=options['stop_timeout_s'])
    except docker.errors.APIError as exc:
        entry.update(outcome='failed', reason='%s; the engine refused the restart: %s' % (entry['reason'], exc))
        return entry
    budget.record(container.name, budget.now)
    outcome, after, why = wait_recovery(container, seen, options['wait_s'], options['running_for_s'])
    entry.update(outcome=outcome, reason='%s; %s' % (entry['reason'], why), status_after=after['status'],
                 health_after=after['health'], waited_s=round(time.monotonic() - started, 1))
    return entry


def recover(client, containers, options, check_mode, now):
    """Result entries for every selected container, in name order, and the executed commands."""
    budget = Budget(options['state_file'], options['window_s'], now)
    commands = ['docker container inspect (%d containers)' % len(containers)]
    entries = [recover_one(client, c, budget, options, check_mode, commands) for c in containers]
    return entries, commands

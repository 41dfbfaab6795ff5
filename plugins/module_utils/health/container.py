# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docker probe: a container's state and HEALTHCHECK, asked through the collection's one Docker client factory."""

from __future__ import annotations

import os
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.client import (
    DEFAULT_DOCKER_HOST,
    HAS_DOCKER,
    DockerExecError,
    docker_client,
)

try:
    from docker.errors import NotFound
except ImportError:
    NotFound = None


def probe_docker(probe, finding, thresholds, timeout):
    container = probe['container']
    docker_host = probe.get('docker_host') or DEFAULT_DOCKER_HOST
    if not HAS_DOCKER:
        finding.flag('unhealthy', 'the Python library docker is not installed on the target host: '
                                  'install python3-docker or the docker package from PyPI')
        return
    if docker_host.startswith('unix://') and not os.path.exists(docker_host[len('unix://'):]):
        finding.flag('unhealthy', 'docker socket %s absent: is the Docker engine installed and running? '
                                  '(or set docker_host)' % docker_host[len('unix://'):])
        return
    finding.commands.append('docker inspect %s' % container)
    started = time.monotonic()
    try:
        client = docker_client(docker_host, timeout=max(1, int(round(timeout))))
        try:
            state = client.api.inspect_container(container)
        finally:
            client.close()
    except DockerExecError as exc:
        finding.flag('unhealthy', 'cannot ask the Docker engine about %s: %s' % (container, exc))
        return
    except NotFound:
        finding.flag('unhealthy', 'container %s not found on %s' % (container, docker_host))
        return
    except Exception as exc:  # pylint: disable=broad-except
        # The SDK raises requests/urllib3/docker errors alike for an engine that does not answer.
        finding.flag('unhealthy', 'cannot ask the Docker engine at %s about %s: %s' % (docker_host, container, exc))
        return
    finding.response_ms = elapsed_ms(started)
    _grade_container(container, state, finding)


def _grade_container(container, state, finding):
    state_info = state.get('State') or {}
    health = (state_info.get('Health') or {}).get('Status')
    finding.details.update(id=state.get('Id', '')[:12], status=state_info.get('Status'),
                           running=bool(state_info.get('Running')), health=health,
                           restart_count=state.get('RestartCount', 0), started_at=state_info.get('StartedAt'))
    if not state_info.get('Running'):
        finding.flag('unhealthy', 'container %s is %s' % (container, state_info.get('Status')))
    if health == 'unhealthy':
        finding.flag('unhealthy', 'container %s HEALTHCHECK reports unhealthy' % container)
    elif health == 'starting':
        finding.flag('degraded', 'container %s HEALTHCHECK is still starting' % container)
    finding.summary = 'container %s %s%s' % (container, state_info.get('Status'),
                                             ' (%s)' % health if health else '')

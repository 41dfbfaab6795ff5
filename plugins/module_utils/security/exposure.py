# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker exposure: the engine's socket and the ports running containers publish on every interface."""

from __future__ import annotations

import collections
import grp
import os
import stat

from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.client import (
    HAS_DOCKER,
    DockerExecError,
    docker_client,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import finding, octal

PUBLIC_ADDRESSES = ('', '0.0.0.0', '::')


def docker_socket_findings(path, expected_group):
    """Findings on the engine's socket, or (no findings, note) when there is none to check."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return [], 'docker socket %s absent: socket check skipped' % path
    except OSError as exc:
        return [], 'docker socket %s cannot be examined (%s): socket check skipped' % (path, exc.strerror or exc)
    if not stat.S_ISSOCK(info.st_mode):
        return [], '%s is not a socket: socket check skipped' % path
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    mode = stat.S_IMODE(info.st_mode)
    found = []
    if mode & 0o002:
        found.append(finding('docker_socket_world_writable', 'critical',
                             'docker socket %s has mode %s: every local user can run containers as root; '
                             'make it 0660 in the docker.socket unit (SocketMode=0660)' % (path, octal(mode)),
                             path=path, mode=octal(mode), group=group))
    if group != expected_group:
        found.append(finding('docker_socket_group', 'medium',
                             'docker socket %s belongs to group %s, expected %s: members of %s control the engine '
                             '(SocketGroup= in the docker.socket unit)' % (path, group, expected_group, group),
                             path=path, mode=octal(mode), group=group))
    return found, None


def container_port_findings(containers, allowed_ports):
    """Ports published on every interface, from the engine's /containers/json entries.

    One finding per container and published port, whatever the number of
    wildcard addresses (IPv4 and IPv6) it is bound to.
    """
    found = []
    for container in containers:
        name = (container.get('Names') or [container.get('Id', '?')[:12]])[0].lstrip('/')
        published = collections.OrderedDict()
        for port in container.get('Ports') or []:
            public = port.get('PublicPort')
            if public is None or port.get('IP', '') not in PUBLIC_ADDRESSES or public in allowed_ports:
                continue
            key = (port.get('PrivatePort'), port.get('Type', 'tcp'), public)
            published.setdefault(key, []).append(port.get('IP') or '0.0.0.0')
        for (private, proto, public), addresses in published.items():
            found.append(finding(
                'container_port_public', 'high',
                'container %s publishes %s/%s on %s port %d (every interface): bind it to 127.0.0.1 '
                '(-p 127.0.0.1:%d:%s) or add %d to allowed_public_ports' % (
                    name, private, proto, ' and '.join(sorted(set(addresses))), public, public, private, public),
                object='container:%s' % name, container=name, port=public, container_port='%s/%s' % (private, proto),
                addresses=sorted(set(addresses))))
    return found


def docker_port_findings(docker_host, allowed_ports, executed):
    """(findings, note) of the running containers' published ports, or a note when the engine cannot be asked."""
    if docker_host.startswith('unix://') and not os.path.exists(docker_host[len('unix://'):]):
        return [], 'docker socket %s absent: container port check skipped' % docker_host[len('unix://'):]
    if not HAS_DOCKER:
        return [], ('the docker Python SDK is not installed on the target host (install the "docker" package): '
                    'container port check skipped')
    executed.append('docker ps (engine API GET /containers/json at %s)' % docker_host)
    try:
        client = docker_client(docker_host, timeout=30)
    except DockerExecError as exc:
        return [], '%s: container port check skipped' % exc
    try:
        containers = client.api.containers()
    except Exception as exc:  # pylint: disable=broad-except
        # The SDK raises requests/urllib3/docker errors alike for an engine that does not answer.
        return [], 'cannot list containers at %s (%s): container port check skipped' % (docker_host, exc)
    finally:
        client.close()
    return container_port_findings(containers, allowed_ports), None

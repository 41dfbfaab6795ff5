# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Move a container to the registry's image of its tag, one container at a time, with a rollback.

The old container is stopped and renamed, not removed, until the new one has
passed the health gate: the new one is created from the old one's own
configuration (``Config``, ``HostConfig``, networks) with the image changed and
what the old container only inherited from its old image (command,
entrypoint, environment, labels, ...) left to the new image; it is started
and must be running (and ``healthy`` when the image has a
HEALTHCHECK) after ``settle_s`` and pass the health command. Otherwise it is
removed and the old container renamed back and started again.
"""

from __future__ import annotations

import time

ROLLBACK_SUFFIX = '-engineroom-previous'


IMAGE_DEFAULTS = ('Cmd', 'Entrypoint', 'WorkingDir', 'User', 'ExposedPorts', 'Healthcheck', 'StopSignal', 'Volumes')


def _create_body(attrs, old_image_config, image):
    """The old container's own settings on ``image``: what it took from its old image is left to the new one."""
    config = dict(attrs.get('Config') or {})
    for key in IMAGE_DEFAULTS:
        if key in config and config[key] == old_image_config.get(key):
            del config[key]
    inherited_env = set(old_image_config.get('Env') or [])
    config['Env'] = [entry for entry in config.get('Env') or [] if entry not in inherited_env]
    inherited_labels = old_image_config.get('Labels') or {}
    config['Labels'] = dict((k, v) for k, v in (config.get('Labels') or {}).items() if inherited_labels.get(k) != v)
    config['Image'] = image
    config.pop('Hostname', None)
    networks = (attrs.get('NetworkSettings') or {}).get('Networks') or {}
    endpoints = dict((name, dict(Aliases=net.get('Aliases'), Links=net.get('Links'), IPAMConfig=net.get('IPAMConfig')))
                     for name, net in networks.items())
    config['HostConfig'] = attrs.get('HostConfig') or {}
    config['NetworkingConfig'] = dict(EndpointsConfig=endpoints)
    return config


def _healthy(client, container_id, settle_s):
    deadline = time.monotonic() + settle_s
    state = {}
    while time.monotonic() < deadline:
        state = client.api.inspect_container(container_id)['State']
        if not state.get('Running'):
            return 'the new container is %s (exit code %s)' % (state.get('Status'), state.get('ExitCode'))
        if (state.get('Health') or {}).get('Status') == 'unhealthy':
            return 'the new container is unhealthy'
        time.sleep(0.5)
    if state.get('Health') and state['Health'].get('Status') != 'healthy':
        return 'the new container is not healthy after %s s (%s)' % (settle_s, state['Health'].get('Status'))
    return None


def recreate(client, entry, settle_s, gate):
    """Pull ``entry['image']`` and move ``entry['container']`` onto it; return the entry with the outcome."""
    name, reference = entry['container'], entry['image']
    old = client.containers.get(name)
    old_image_config = client.api.inspect_image(old.attrs['Image']).get('Config') or {}
    repository, tag = reference.rsplit(':', 1) if ':' in reference.rsplit('/', 1)[-1] else (reference, 'latest')
    new_image = client.images.pull(repository, tag=tag)
    old.stop()
    old.rename(name + ROLLBACK_SUFFIX)
    created = client.api.post(client.api._url('/containers/create'), params=dict(name=name),  # pylint: disable=protected-access
                              json=_create_body(old.attrs, old_image_config, reference))
    new_id = client.api._result(created, True)['Id']  # pylint: disable=protected-access
    client.api.start(new_id)
    problem = _healthy(client, new_id, settle_s) or gate()
    if problem:
        client.api.remove_container(new_id, force=True)
        old.rename(name)
        old.start()
        entry.update(applied=False, rolled_back=True, error='%s after moving to %s; the previous container is back: %s'
                     % (name, new_image.id[:19], problem))
        return entry
    old.remove()
    entry.update(applied=True, rolled_back=False, new_image=new_image.id)
    return entry

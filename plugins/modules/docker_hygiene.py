#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: docker_hygiene
short_description: Review Docker containers' state and restarts, then remove stopped containers and dangling images safely
version_added: 0.1.0
description:
  - Reads every container of the Docker engine (status, health, restart count) and reports those that need
    attention in RV(attention) (unhealthy, restarting, or restarted at least O(warn_restart_count) times).
  - Then removes, by default, B(stopped containers) (status C(created), C(exited) or C(dead)) that stopped more
    than O(min_age_h) hours ago and B(dangling images) (untagged, with no image built on them, used by no
    container that stays), and reports the bytes reclaimed.
  - B(Volumes are never removed) unless O(prune_volumes=true), and even then only volumes selected by
    O(name_patterns) or O(only_labels) that no remaining container uses. C(docker system prune --volumes)
    destroys data; this module never does anything like it by default.
  - O(name_patterns), O(only_labels) and O(keep_containers) narrow the cleanup; the review still covers every
    container.
  - Objects are removed one by one by ID (containers without their volumes, images without their untagged
    parents), so nothing is removed that the plan did not list, and check mode lists exactly what a real run
    would remove.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Lists what would be removed with its size (RV(containers[].outcome=planned)) and the bytes that would be
        reclaimed (C(bytes_reclaimable) in RV(metrics)); removes nothing.
  diff_mode:
    support: full
    details:
      - The diff lists the containers, images and volumes selected for removal before, and those left after.
  idempotent:
    support: full
    details:
      - A second run finds nothing left to remove and returns RV(ignore:changed=false), unless more containers
        stopped or images became dangling in between.
options:
  docker_host:
    description:
      - Address of the Docker engine API.
    type: str
    default: unix:///var/run/docker.sock
  timeout:
    description:
      - Seconds each call to the engine may take.
    type: int
    default: 60
  prune_containers:
    description:
      - Remove stopped containers (status C(created), C(exited) or C(dead)) stopped more than O(min_age_h) hours ago.
      - Their volumes stay.
    type: bool
    default: true
  prune_images:
    description:
      - Remove dangling images (untagged and no child image) that no remaining container uses. Tagged images stay.
    type: bool
    default: true
  prune_volumes:
    description:
      - Remove volumes that no remaining container uses. B(Destroys the data in them.)
      - Requires O(name_patterns) or O(only_labels), so the volumes that may go are named explicitly.
    type: bool
    default: false
  keep_containers:
    description:
      - Shell-style patterns (C(*), C(?), C([abc])) of container names that are never removed, whatever their state.
    type: list
    elements: str
    default: []
  name_patterns:
    description:
      - When not empty, only containers and volumes whose name matches one of these shell-style patterns are
        removed. Dangling images have no name; narrow them with O(only_labels).
    type: list
    elements: str
    default: []
  only_labels:
    description:
      - When not empty, only containers, images and volumes carrying every one of these labels are removed.
        Each entry is C(name) (the label exists) or C(name=value) (it has that value).
    type: list
    elements: str
    default: []
  min_age_h:
    description:
      - Hours a container must have been stopped (since it exited, or since it was created when it never ran)
        before it is removed. V(0) removes every stopped container.
    type: float
    default: 24
  warn_restart_count:
    description:
      - Restart count from which a container is listed in RV(attention). V(0) switches this check off.
    type: int
    default: 3
requirements:
  - the docker Python SDK (C(python3-docker) or C(docker) from PyPI) on the managed host
notes:
  - Sizes are the engine's disk-usage figures (as C(docker system df -v)) - a container's writable layer, an
    image's bytes not shared with other images, a volume's usage - read once before anything is removed.
seealso:
  - module: engineroom.maintenance.health_probe
'''

EXAMPLES = r'''
- name: Weekly docker hygiene with the defaults (stopped containers older than a day, dangling images)
  engineroom.maintenance.docker_hygiene:
  register: hygiene

- name: See what would go, keeping the one-off migration containers
  engineroom.maintenance.docker_hygiene:
    keep_containers: ["*-migrate-*"]
    min_age_h: 72
  check_mode: true

- name: Only clean what the CI runner created, including its scratch volumes
  engineroom.maintenance.docker_hygiene:
    only_labels: [ci.job]
    prune_volumes: true
    min_age_h: 2
'''

RETURN = r'''
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "docker_hygiene: 14 containers (11 running, 1 unhealthy, 0 restarting, 7 restarts); removed 2 stopped containers,
    3 dangling images, 0 volumes, 412.3 MiB reclaimed in 0.9 s"
containers:
  description: Every container of the engine, by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    id:
      description: Short container ID.
      type: str
    image:
      description: Image the container was created from.
      type: str
    status:
      description: Docker state (V(running), V(exited), V(created), V(restarting), V(paused), V(dead)) when it was read.
      type: str
    health:
      description: HEALTHCHECK status (V(healthy), V(unhealthy), V(starting)), V(null) without a HEALTHCHECK.
      type: str
    restart_count:
      description: How often the engine restarted it.
      type: int
    size_bytes:
      description: Size of its writable layer.
      type: int
    stopped_at:
      description: When a stopped container exited (UTC), V(null) for one that never ran or is not stopped.
      type: str
    outcome:
      description: V(kept), V(removed), V(planned) (check mode), V(gone) (removed by someone else meanwhile),
        V(skipped) (the engine refused, e.g. in use) or V(failed).
      type: str
    reason:
      description: Why a stopped container was kept or removed (filter, O(keep_containers), O(min_age_h)), or the error.
      type: str
  sample:
    - {name: web, id: 3f2a9c1b7d10, image: "app:1.4", status: running, health: healthy, restart_count: 0,
       size_bytes: 40960, stopped_at: null, outcome: kept, reason: null}
images:
  description: The dangling images selected for removal.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Image ID.
      type: str
    created:
      description: When the image was created (UTC).
      type: str
    size_bytes:
      description: Bytes of the image not shared with other images.
      type: int
    labels:
      description: The image's labels.
      type: dict
    outcome:
      description: As RV(containers[].outcome).
      type: str
    reason:
      description: Why it was selected, or the error.
      type: str
volumes:
  description: The volumes selected for removal (only with O(prune_volumes=true)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Volume name.
      type: str
    size_bytes:
      description: Bytes it uses (V(0) when the engine does not know).
      type: int
    outcome:
      description: What became of the volume, in the words of RV(containers[].outcome).
      type: str
    reason:
      description: Why the volume was selected (no container uses it, its labels), or the engine's error.
      type: str
    labels:
      description: The labels the volume was created with.
      type: dict
attention:
  description: Containers that need a look (unhealthy, restarting, or restarted at least O(warn_restart_count) times).
  returned: always
  type: list
  elements: dict
  sample: [{name: worker, status: restarting, health: null, restart_count: 12, reasons: [restarting, restarted 12 times]}]
bytes_reclaimed:
  description: Bytes freed by the removals (V(0) in check mode).
  returned: always
  type: int
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 912.4, containers_total: 14, containers_running: 11, containers_stopped: 3, containers_unhealthy: 1,
           containers_restarting: 0, restarts_total: 7, containers_removed: 2, images_removed: 3, volumes_removed: 0,
           bytes_reclaimed: 432345088, bytes_reclaimable: 432345088}
executed_commands:
  description: The C(docker) CLI equivalents of the engine API calls made (reads first, then each removal).
  returned: always
  type: list
  elements: str
  sample: ["docker system df -v", "docker container inspect (14 containers)", "docker container rm 3f2a9c1b7d10"]
'''

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.client import (
    DEFAULT_DOCKER_HOST,
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    DockerExecError,
    docker_client,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.hygiene import (
    STOPPED_STATES,
    HygieneError,
    attention,
    execute,
    parse_label_filters,
    plan,
    public_container,
    public_image,
    public_volume,
    read_engine,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.units import format_size


def argument_spec():
    return dict(
        docker_host=dict(type='str', default=DEFAULT_DOCKER_HOST),
        timeout=dict(type='int', default=60),
        prune_containers=dict(type='bool', default=True),
        prune_images=dict(type='bool', default=True),
        prune_volumes=dict(type='bool', default=False),
        keep_containers=dict(type='list', elements='str', default=[]),
        name_patterns=dict(type='list', elements='str', default=[]),
        only_labels=dict(type='list', elements='str', default=[]),
        min_age_h=dict(type='float', default=24),
        warn_restart_count=dict(type='int', default=3),
    )


def check_options(module):
    """Refuse bad combinations before the engine is asked anything; return the parsed label filters."""
    p = module.params
    if p['min_age_h'] < 0:
        module.fail_json(msg='min_age_h must not be negative (got %s): give 0 or more hours' % p['min_age_h'])
    if p['warn_restart_count'] < 0:
        module.fail_json(msg='warn_restart_count must not be negative (got %s): give 0 to switch the check off'
                             % p['warn_restart_count'])
    if p['timeout'] < 1:
        module.fail_json(msg='timeout must be at least 1 second (got %s)' % p['timeout'])
    if p['prune_volumes'] and not (p['name_patterns'] or p['only_labels']):
        module.fail_json(msg='prune_volumes destroys the data in every unused volume it selects: name the volumes that '
                             'may go with name_patterns or only_labels, or leave prune_volumes false')
    for option in ('keep_containers', 'name_patterns'):
        if any(not pattern for pattern in p[option]):
            module.fail_json(msg='%s holds an empty pattern: remove it (an empty pattern matches nothing)' % option)
    try:
        return parse_label_filters(p['only_labels'])
    except HygieneError as exc:
        module.fail_json(msg=str(exc))


def summarize(containers, images, volumes, figures, seconds, check_mode):
    removed = 'planned' if check_mode else 'removed'
    counts = dict((kind, sum(1 for e in entries if e['outcome'] == removed))
                  for kind, entries in (('containers', containers), ('images', images), ('volumes', volumes)))
    head = 'docker_hygiene: %d containers (%d running, %d unhealthy, %d restarting, %d restarts)' % (
        figures['containers_total'], figures['containers_running'], figures['containers_unhealthy'],
        figures['containers_restarting'], figures['restarts_total'])
    verb, amount = ('would remove', figures['bytes_reclaimable']) if check_mode else ('removed', figures['bytes_reclaimed'])
    line = '%s; %s %d stopped containers, %d dangling images, %d volumes, %s %s' % (
        head, verb, counts['containers'], counts['images'], counts['volumes'], format_size(amount),
        'reclaimable' if check_mode else 'reclaimed')
    troubles = [e for e in containers + images + volumes if e['outcome'] in ('skipped', 'failed', 'gone')]
    tail = '; %d not removed (%s)' % (len(troubles), ', '.join(sorted(set(e['outcome'] for e in troubles)))) if troubles else ''
    return '%s in %.1f s%s' % (line, seconds, tail)


def figures_of(containers, images, volumes):
    everything = containers + images + volumes
    done = [e for e in everything if e['outcome'] == 'removed']
    return dict(
        containers_total=len(containers),
        containers_running=sum(1 for e in containers if e['status'] == 'running'),
        containers_stopped=sum(1 for e in containers if e['status'] in STOPPED_STATES),
        containers_unhealthy=sum(1 for e in containers if e['health'] == 'unhealthy'),
        containers_restarting=sum(1 for e in containers if e['status'] == 'restarting'),
        restarts_total=sum(e['restart_count'] or 0 for e in containers),
        containers_removed=sum(1 for e in containers if e['outcome'] == 'removed'),
        images_removed=sum(1 for e in images if e['outcome'] == 'removed'),
        volumes_removed=sum(1 for e in volumes if e['outcome'] == 'removed'),
        bytes_reclaimed=sum(e['size_bytes'] for e in done),
        bytes_reclaimable=sum(e['size_bytes'] for e in everything if e['outcome'] in ('planned', 'removed')),
    )


def describe(containers, images, volumes):
    """The diff's view: what is selected, by kind, with sizes."""
    return dict(
        containers=['%s (%s, %d bytes)' % (e['name'], e['status'], e['size_bytes']) for e in containers],
        images=['%s (%d bytes)' % (e['id'], e['size_bytes']) for e in images],
        volumes=['%s (%d bytes)' % (e['name'], e['size_bytes']) for e in volumes],
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib('docker'), exception=DOCKER_IMPORT_ERROR)
    label_filters = check_options(module)
    p = module.params
    started = time.monotonic()
    commands = ['docker system df -v']
    try:
        client = docker_client(p['docker_host'], timeout=p['timeout'])
    except DockerExecError as exc:
        module.fail_json(msg=str(exc), executed_commands=[])
    try:
        containers, images, volumes = read_engine(client)
        commands.append('docker container inspect (%d containers)' % len(containers))
        options = dict(p, label_filters=label_filters)
        containers, images, volumes = plan(containers, images, volumes, options, utc_now())
        selected = ([e for e in containers if e['action'] == 'remove'], images, volumes)
        before = describe(*selected)
        commands.extend(execute(client, containers, images, volumes, module.check_mode))
    except HygieneError as exc:
        module.fail_json(msg=str(exc), executed_commands=commands)
    finally:
        client.close()

    figures = figures_of(containers, images, volumes)
    duration = elapsed_ms(started)
    removed = 'planned' if module.check_mode else 'removed'
    result = dict(
        changed=any(e['outcome'] == removed for e in containers + images + volumes),
        summary=summarize(containers, images, volumes, figures, duration / 1000.0, module.check_mode),
        containers=[public_container(e) for e in containers],
        images=[public_image(e) for e in images],
        volumes=[public_volume(e) for e in volumes],
        attention=attention(containers, p['warn_restart_count']),
        bytes_reclaimed=figures['bytes_reclaimed'],
        metrics=dict(duration_ms=duration, **figures),
        executed_commands=commands,
    )
    if module._diff:
        left = describe(*[[e for e in kind if e['outcome'] != removed] for kind in selected])
        result['diff'] = dict(before=before, after=left)
    failed = [e for e in containers + images + volumes if e['outcome'] == 'failed']
    if failed:
        module.fail_json(msg='%s: %s' % (result['summary'], '; '.join(e['reason'] for e in failed)), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

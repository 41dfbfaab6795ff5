#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: container_recover
short_description: Restart selected containers that are unhealthy or exited with an error, within a restart budget
version_added: 0.1.0
description:
  - Looks only at the containers named in O(names) or carrying every label in O(labels), or belonging to the Compose
    project O(compose_project) (and services O(compose_services)) by their C(com.docker.compose.*) labels. At least
    one selector is required - the module never acts on the whole engine.
  - A selected container is restarted (C(docker restart) - the same container, B(never recreated), its B(volumes
    untouched)) when it is running with a failing HEALTHCHECK (C(unhealthy)) or has exited with a non-zero code.
    One that exited with code 0 has finished its job and is left alone, as are paused, created and starting ones.
  - After a restart the module waits up to O(wait_s) for the HEALTHCHECK to report C(healthy), or, for a container
    without HEALTHCHECK, for it to be still running O(running_for_s) seconds after the restart.
  - B(Budget) - at most O(max_restarts) restarts per container within O(window_s) seconds, kept in O(state_file)
    (written right after each restart), and at most one restart per container per run. A container that does not
    recover is reported (V(not_recovered), then V(budget_exhausted)) and left as it is, never restarted in a loop.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Lists what would be restarted (RV(containers[].outcome=planned)) or refused by the budget; restarts nothing and
        does not write the state file.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Once the selected containers are healthy (or left alone) a second run changes nothing.
options:
  docker_host:
    description: Address of the Docker engine API.
    type: str
    default: unix:///var/run/docker.sock
  timeout:
    description: Seconds each call to the engine may take.
    type: int
    default: 60
  names:
    description: Containers by name. A name that does not exist fails the task before anything is restarted.
    type: list
    elements: str
    default: []
  labels:
    description: Containers carrying every one of these labels, each C(name) or C(name=value).
    type: list
    elements: str
    default: []
  compose_project:
    description: Containers of this Compose project (label C(com.docker.compose.project)).
    type: str
  compose_services:
    description: With O(compose_project), only the containers of these services (label C(com.docker.compose.service)).
    type: list
    elements: str
    default: []
  max_restarts:
    description: Restarts allowed per container within O(window_s); at least V(1).
    type: int
    default: 3
  window_s:
    description: Length of the budget window in seconds.
    type: int
    default: 3600
  wait_s:
    description: Seconds to wait after a restart for the container to recover.
    type: int
    default: 120
  running_for_s:
    description: For a container without HEALTHCHECK, seconds it must stay running after its restart to count as recovered.
    type: int
    default: 10
  stop_timeout_s:
    description: Seconds the engine gives the container to stop before killing it (C(docker restart --time)).
    type: int
    default: 10
  state_file:
    description: JSON file keeping each container's restart times within the window.
    type: path
    default: /var/lib/engineroom/container-recover.json
requirements:
  - the docker Python SDK (C(python3-docker) or C(docker) from PyPI) on the managed host
seealso:
  - module: engineroom.maintenance.docker_hygiene
  - module: engineroom.maintenance.health_probe
'''

EXAMPLES = r'''
- name: Restart the shop's unhealthy services, at most 3 times an hour each
  engineroom.maintenance.container_recover:
    compose_project: miniecom
    compose_services: [web, worker]
  register: recovery

- name: What would be restarted among the containers labelled for recovery
  engineroom.maintenance.container_recover:
    labels: [engineroom.recover=true]
  check_mode: true
'''

RETURN = r'''
status:
  description: V(unhealthy) when a container did not recover, ran out of budget or could not be restarted; V(degraded) when
    restarts are planned (check mode); V(healthy) otherwise.
  returned: always
  type: str
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "container_recover: 4 containers; 1 restarted and recovered, 0 not recovered, 0 out of budget, 2 healthy, 1 left alone in 6.2 s"
containers:
  description: One entry per selected container, by name.
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
    compose_project:
      description: Its C(com.docker.compose.project) label, if any.
      type: str
    compose_service:
      description: Its C(com.docker.compose.service) label, if any.
      type: str
    status_before:
      description: Docker state before (V(running), V(exited)...).
      type: str
    health_before:
      description: HEALTHCHECK status before, V(null) without a HEALTHCHECK.
      type: str
    exit_code_before:
      description: Exit code before.
      type: int
    action:
      description: V(restart) or V(none).
      type: str
    outcome:
      description: V(healthy), V(left_alone), V(planned), V(recovered), V(not_recovered), V(budget_exhausted) or V(failed).
      type: str
    reason:
      description: Why, in words.
      type: str
    restarts_in_window:
      description: Restarts already counted within the window before this run.
      type: int
    status_after:
      description: Docker state after.
      type: str
    health_after:
      description: HEALTHCHECK status after.
      type: str
    waited_s:
      description: Seconds from the restart to the verdict.
      type: float
  sample:
    - {name: shop-web-1, id: 3f2a9c1b7d10, compose_project: shop, compose_service: web, status_before: running,
       health_before: unhealthy, exit_code_before: 0, action: restart, outcome: recovered,
       reason: "running with a failing HEALTHCHECK; HEALTHCHECK healthy again", restarts_in_window: 0,
       status_after: running, health_after: healthy, waited_s: 3.1}
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 6210.4, containers_selected: 4, containers_restarted: 1, containers_recovered: 1,
           containers_not_recovered: 0, containers_budget_exhausted: 0}
executed_commands:
  description: The C(docker) CLI equivalents of the engine calls that changed something.
  returned: always
  type: list
  elements: str
'''

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.client import (
    DEFAULT_DOCKER_HOST,
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    DockerExecError,
    docker_client,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.recovery import (
    TROUBLE,
    RecoveryError,
    recover,
    select,
)


def argument_spec():
    return dict(
        docker_host=dict(type='str', default=DEFAULT_DOCKER_HOST),
        timeout=dict(type='int', default=60),
        names=dict(type='list', elements='str', default=[]),
        labels=dict(type='list', elements='str', default=[]),
        compose_project=dict(type='str'),
        compose_services=dict(type='list', elements='str', default=[]),
        max_restarts=dict(type='int', default=3),
        window_s=dict(type='int', default=3600),
        wait_s=dict(type='int', default=120),
        running_for_s=dict(type='int', default=10),
        stop_timeout_s=dict(type='int', default=10),
        state_file=dict(type='path', default='/var/lib/engineroom/container-recover.json'),
    )


def check_options(module):
    p = module.params
    if not (p['names'] or p['labels'] or p['compose_project']):
        module.fail_json(msg='name the containers to look after with names, labels or compose_project: '
                             'container_recover never acts on every container of the engine')
    if p['max_restarts'] < 1:
        module.fail_json(msg='max_restarts must be at least 1 (got %s): to restart nothing, do not run the recovery'
                             % p['max_restarts'])
    for key, low in (('window_s', 1), ('wait_s', 1), ('running_for_s', 0), ('stop_timeout_s', 0), ('timeout', 1)):
        if p[key] < low:
            module.fail_json(msg='%s must be at least %d (got %s)' % (key, low, p[key]))
    if p['compose_services'] and not p['compose_project']:
        module.fail_json(msg='compose_services needs compose_project (services are named within a project)')
    for option in ('names', 'labels', 'compose_services'):
        if any(not item or item.startswith('=') for item in p[option]):
            module.fail_json(msg='%s holds an empty entry or a label without a name: remove it' % option)


def summarize(entries, seconds, check_mode):
    count = dict((o, sum(1 for e in entries if e['outcome'] == o))
                 for o in ('recovered', 'not_recovered', 'budget_exhausted', 'failed', 'healthy', 'left_alone', 'planned'))
    head = 'container_recover: %d containers; ' % len(entries)
    if check_mode:
        body = '%d to restart, %d out of budget, %d healthy, %d left alone' % (
            count['planned'], count['budget_exhausted'], count['healthy'], count['left_alone'])
    else:
        body = '%d restarted and recovered, %d not recovered, %d out of budget, %d healthy, %d left alone' % (
            count['recovered'], count['not_recovered'] + count['failed'], count['budget_exhausted'], count['healthy'],
            count['left_alone'])
    troubled = [e['name'] for e in entries if e['outcome'] in TROUBLE]
    return '%s%s in %.1f s%s' % (head, body, seconds, ' (needs a look: %s)' % ', '.join(troubled) if troubled else '')


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib('docker'), exception=DOCKER_IMPORT_ERROR)
    check_options(module)
    p = module.params
    started = time.monotonic()
    try:
        client = docker_client(p['docker_host'], timeout=p['timeout'])
    except DockerExecError as exc:
        module.fail_json(msg=str(exc), executed_commands=[])
    try:
        containers = select(client, p['names'], p['labels'], p['compose_project'], p['compose_services'])
        entries, commands = recover(client, containers, p, module.check_mode, utc_now())
    except RecoveryError as exc:
        module.fail_json(msg=str(exc), executed_commands=[])
    except OSError as exc:
        module.fail_json(msg='cannot write the restart budget to %s: %s (set state_file to a writable path)'
                             % (p['state_file'], exc))
    finally:
        client.close()
    duration = elapsed_ms(started)
    status = 'unhealthy' if any(e['outcome'] in TROUBLE for e in entries) else (
        'degraded' if any(e['outcome'] == 'planned' for e in entries) else 'healthy')
    metrics = dict(duration_ms=duration, containers_selected=len(entries),
                   containers_restarted=sum(1 for e in entries if e['action'] == 'restart' and e['outcome'] != 'planned'))
    for outcome in ('recovered', 'not_recovered', 'budget_exhausted', 'planned', 'healthy', 'left_alone'):
        metrics['containers_%s' % outcome] = sum(1 for e in entries if e['outcome'] == outcome)
    module.exit_json(changed=any(e['outcome'] in ('planned', 'recovered', 'not_recovered') for e in entries),
                     status=status, summary=summarize(entries, duration / 1000.0, module.check_mode), containers=entries,
                     metrics=metrics, executed_commands=commands)


if __name__ == '__main__':
    main()

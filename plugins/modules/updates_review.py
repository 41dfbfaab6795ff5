#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: updates_review
short_description: The monthly update review - OS packages, Python venvs, npm projects and container images
version_added: 0.1.0
description:
  - Lists pending Debian packages (C(apt-get -s dist-upgrade)) with the security updates told apart (their origin
    names the security archive, such as C(Debian-Security:12/stable-security)), the held packages
    (C(apt-mark showhold)) and Debian's reboot-required flag.
  - Lists the outdated packages of every Python virtual environment in O(venvs), with that venv's own pip
    (C(pip list --outdated --format json)), and of every npm project in O(npm_projects) (C(npm outdated --json)).
  - With O(images), asks for each running container whether its image tag's digest in the registry differs from
    the digest of the image the container runs. An unreachable registry is reported for that image; the others go on.
  - Report only by default. O(apply) upgrades, per kind, V(apt) (all pending, or only security updates with
    O(apt_security_only)) and V(pip) (each venv's outdated packages to their latest version), then runs
    O(health_command). A failed health check after a pip upgrade reinstalls the previous versions and fails; after
    an apt upgrade the module fails and says what was upgraded (apt upgrades are not rolled back).
  - V(images) in O(apply) pulls the registry's image of each outdated container's tag and recreates the containers
    one at a time from their own configuration with only the image changed; a container that does not stay running
    (or healthy) for O(image_settle_s), or fails O(health_command), is removed and the previous container, kept
    stopped under another name until then, is started again, and the module fails.
  - npm projects are reviewed but not upgraded by this module.
  - A kind or item that cannot be reviewed (a path that is not a venv, a directory without package.json, a registry
    that does not answer) is reported in its entry's C(error) and warned about; the rest goes on.
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reviews without refreshing the apt lists and applies nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Report only by default. After an O(apply), a second run finds nothing more to apply and reports no change.
options:
  apt:
    description: Review the Debian packages.
    type: bool
    default: true
  apt_update_cache:
    description: Refresh the package lists (C(apt-get update)) before the review.
    type: bool
    default: true
  apt_config:
    description: An apt configuration file (C(APT_CONFIG)) for another apt state, sources list or dpkg root.
    type: path
  apt_security_only:
    description: With V(apt) in O(apply), upgrade only the security updates.
    type: bool
    default: false
  reboot_required_file:
    description: Debian's flag file; the packages that asked for the reboot are read from C(<file>.pkgs).
    type: path
    default: /var/run/reboot-required
  venvs:
    description: Python virtual environments, each with C(path) and an optional C(name).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: A name for the report.
        type: str
      path:
        description: The directory created by C(python3 -m venv).
        type: path
        required: true
  pip_index_url:
    description: The package index pip asks (C(--index-url)); pip's own configuration when omitted.
    type: str
  npm_projects:
    description: Directories of npm projects (with C(package.json) and installed C(node_modules)).
    type: list
    elements: path
    default: []
  images:
    description: Compare every running container's image with its registry.
    type: bool
    default: false
  docker_host:
    description: The Docker engine's address.
    type: str
    default: unix:///var/run/docker.sock
  apply:
    description: The kinds to upgrade; empty reports only.
    type: list
    elements: str
    choices: [apt, pip, images]
    default: []
  image_settle_s:
    description:
      - With V(images) in O(apply), how long a recreated container must stay running (and become C(healthy) when its
        image has a HEALTHCHECK) before the health command runs.
    type: int
    default: 10
  health_command:
    description: Program and arguments that must exit 0 after an upgrade (the health gate); none when empty.
    type: list
    elements: str
    default: []
  timeout_s:
    description: Longest time one program may take.
    type: int
    default: 600
'''

EXAMPLES = r'''
- name: Monthly update review, report only
  engineroom.maintenance.updates_review:
    venvs: [{name: omnidoc, path: /srv/omnidoc/venv}]
    npm_projects: [/srv/miniecom/frontend]
    images: true

- name: Apply the security updates, then check the health
  engineroom.maintenance.updates_review:
    apply: [apt]
    apt_security_only: true
    health_command: [/usr/local/bin/app-healthy]
'''

RETURN = r'''
apt:
  description:
    - C(pending) (each with C(name), C(current), C(candidate), C(origin), C(arch), C(security)), C(security) (names),
      C(held), C(reboot_required), C(reboot_packages), C(applied), C(pending_after) (after an apply), C(error).
  returned: when O(apt) is true
  type: dict
pip:
  description: Per venv, C(name), C(path), C(outdated) (C(name), C(current), C(latest)), C(applied), C(rolled_back), C(error).
  returned: always
  type: list
  elements: dict
npm:
  description: Per project, C(path), C(outdated) (C(name), C(current), C(wanted), C(latest)), C(error).
  returned: always
  type: list
  elements: dict
images:
  description:
    - Per running container, C(container), C(image), C(local_digest), C(registry_digest), C(update_available), C(error);
      C(applied), C(rolled_back) and C(new_image) with V(images) in O(apply).
  returned: always
  type: list
  elements: dict
errors:
  description: What could not be reviewed, one line each.
  returned: always
  type: list
  elements: str
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
metrics:
  description:
    - C(apt_pending), C(apt_security), C(apt_held), C(reboot_required), C(pip_outdated), C(npm_outdated),
      C(images_outdated), C(apt_applied), C(pip_applied), C(images_applied), C(errors), C(duration_ms).
  returned: always
  type: dict
executed_commands:
  description: Every program run.
  returned: always
  type: list
  elements: str
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.updates.review import (
    HealthGateError,
    errors_of,
    metrics_of,
    review,
    summary_of,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            apt=dict(type='bool', default=True),
            apt_update_cache=dict(type='bool', default=True),
            apt_config=dict(type='path'),
            apt_security_only=dict(type='bool', default=False),
            reboot_required_file=dict(type='path', default='/var/run/reboot-required'),
            venvs=dict(type='list', elements='dict', default=[],
                       options=dict(name=dict(type='str'), path=dict(type='path', required=True))),
            pip_index_url=dict(type='str'),
            npm_projects=dict(type='list', elements='path', default=[]),
            images=dict(type='bool', default=False),
            docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
            apply=dict(type='list', elements='str', choices=['apt', 'pip', 'images'], default=[]),
            image_settle_s=dict(type='int', default=10),
            health_command=dict(type='list', elements='str', default=[]),
            timeout_s=dict(type='int', default=600),
        ),
        supports_check_mode=True,
    )
    started = time.monotonic()
    if module.params['timeout_s'] < 1:
        module.fail_json(msg='timeout_s must be at least 1, got %d' % module.params['timeout_s'])
    try:
        result = review(module.params, module.check_mode)
    except HealthGateError as exc:
        module.fail_json(msg=str(exc), changed=True, **exc.result)
    errors = errors_of(result)
    rolled_back = [v['name'] for v in result['pip'] if v['rolled_back']]
    rolled_back += [i['container'] for i in result['images'] if i.get('rolled_back')]
    if rolled_back:
        module.fail_json(msg='health check failed after the upgrades of %s; the previous versions are back: %s'
                         % (', '.join(rolled_back), '; '.join(errors)), changed=True, errors=errors, **result)
    for error in errors:
        module.warn(error)
    metrics = metrics_of(result)
    metrics['duration_ms'] = elapsed_ms(started)
    changed = bool(metrics['apt_applied'] or metrics['images_applied'] or any(v['applied'] for v in result['pip']))
    module.exit_json(changed=changed, errors=errors, metrics=metrics, summary=summary_of(metrics, errors), **result)


if __name__ == '__main__':
    main()

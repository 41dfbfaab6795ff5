"""A real AWX 24.6.1 controller for the tests of playbooks/awx_setup.yml (tests/harness/awx.py).

Started once per session (install and template database cached outside the clone), and reset for
each test: a fresh copy of the migrated template database and a fresh API process. Skipped, with the
reason, where the AWX material (``$ENGINEROOM_SHARED/awx``, default ``<repo>/../shared/awx``) is absent.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.harness.awx import AwxController
from tests.harness.awx_install import AwxInstall, AwxUnavailable
from tests.harness.playbook import REPO_ROOT

TIMINGS = os.path.join(REPO_ROOT, 'tests', 'output', 'awx-timings.json')
PROJECT_DIR = 'engineroom-maintenance'


@pytest.fixture(scope='session')
def awx_controller():
    try:
        install = AwxInstall()
    except AwxUnavailable as exc:
        pytest.skip(str(exc))
    controller = AwxController(install)
    try:
        controller.start()
        yield controller
    finally:
        controller.stop()
        os.makedirs(os.path.dirname(TIMINGS), exist_ok=True)
        with open(TIMINGS, 'w') as handle:
            json.dump(controller.timings, handle, indent=2)


@pytest.fixture
def awx(awx_controller):
    """The controller, fresh: the template database copied, the API restarted, the project directory in place.

    The project directory is ``PROJECTS_ROOT/engineroom-maintenance`` with a copy of the collection's
    playbooks/, what a manual project's ``local_path`` points at.
    """
    awx_controller.fresh()
    shutil.copytree(os.path.join(REPO_ROOT, 'playbooks'), os.path.join(awx_controller.projects_root, PROJECT_DIR,
                                                                       'playbooks'),
                    ignore=shutil.ignore_patterns('maintenance-log', '*.retry'))
    return awx_controller

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which probe answers which kind, and running them: one at a time (:func:`run_probe`) or together (:func:`run_probes`).

Each probe family lives in its own module (postgres, redis, http, system,
container, maintenance); grading, :class:`Finding` and the Prometheus text are
in :mod:`core`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.core import Finding
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.container import probe_docker
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.http import probe_http
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.maintenance import probe_maintenance
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.postgres import probe_postgres
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.redis import probe_redis
from ansible_collections.engineroom.maintenance.plugins.module_utils.health.system import (
    probe_command,
    probe_disk,
    probe_load,
    probe_memory,
    probe_process,
    probe_systemd,
)

PROBES = {
    'postgres': probe_postgres,
    'redis': probe_redis,
    'http': probe_http,
    'disk': probe_disk,
    'memory': probe_memory,
    'load': probe_load,
    'process': probe_process,
    'systemd': probe_systemd,
    'docker': probe_docker,
    'command': probe_command,
    'maintenance': probe_maintenance,
}


def run_probe(probe, thresholds, default_timeout):
    """Run one probe and return its result dict; never raises."""
    finding = Finding()
    timeout = probe.get('timeout') or default_timeout
    started = time.monotonic()
    try:
        PROBES[probe['kind']](probe, finding, thresholds, timeout)
    except Exception as exc:  # pylint: disable=broad-except
        # A probe bug or an unexpected OS error must still produce a result, not a trace.
        finding.flag('unhealthy', 'probe failed: %s: %s' % (type(exc).__name__, exc))
    if finding.response_ms is None:
        finding.response_ms = elapsed_ms(started)
    message = '; '.join(finding.reasons) if finding.reasons else finding.summary
    return dict(name=probe['name'], kind=probe['kind'], status=finding.status, response_ms=finding.response_ms,
                message=message, details=finding.details, thresholds=thresholds,
                executed_commands=finding.commands)


def run_probes(probes, thresholds, default_timeout, workers=8):
    """Run probes concurrently, return results in the order given.

    Probes wait on the network or on other processes, so threads let a slow
    probe's timeout overlap with the others instead of adding up.
    """
    if not probes:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(probes))) as pool:
        futures = [pool.submit(run_probe, probe, limits, default_timeout)
                   for probe, limits in zip(probes, thresholds)]
        return [future.result() for future in futures]

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One triage run: every section within the time bound, then the bundle where there is room."""

from __future__ import annotations

import socket
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc, utc_now
from ansible_collections.engineroom.maintenance.plugins.module_utils.triage import collect, services
from ansible_collections.engineroom.maintenance.plugins.module_utils.triage.bundle import SCHEMA_VERSION, write_bundle
from ansible_collections.engineroom.maintenance.plugins.module_utils.triage.redact import Redactor

SECTIONS = ('system', 'postgres', 'redis', 'containers', 'logs', 'journal', 'maintenance_log', 'lock')


def known_secrets(params):
    secrets = list(params.get('secrets') or [])
    secrets.append((params.get('postgres') or {}).get('login_password'))
    secrets.extend(instance.get('login_password') for instance in params.get('redis') or [])
    return secrets


def _plan(params):
    """(section name, collector function, arguments) in the order they run: cheap and local first."""
    return [
        ('system', collect.collect_system, ()),
        ('logs', collect.collect_logs, (params['log_paths'], params['error_patterns'], params['error_lines'])),
        ('journal', collect.collect_journal, (params['journal_units'], params['error_lines'])) if params['journal']
        else ('journal', None, 'journal not requested'),
        ('maintenance_log', collect.collect_maintenance_log, (params['maintenance_log'], params['maintenance_log_lines'])),
        ('lock', collect.collect_lock, (params['lock_file'],)),
        ('redis', services.collect_redis, (params['redis'],)),
        ('postgres', services.collect_postgres, (params['postgres'], params['long_transaction_s'])),
        ('containers', services.collect_containers, (params['docker_host'], params['container_log_lines']))
        if params['containers'] else ('containers', None, 'containers not requested'),
    ]


def gather(params):
    """Collect every section into memory; return the collector."""
    collector = collect.Collector(Redactor(known_secrets(params)), collect.Deadline(params['time_bound_s']),
                                  params['step_timeout_s'])
    for name, func, args in _plan(params):
        if func is None:
            collector.sections.append(dict(name=name, status='skipped', reason=args, files=[], duration_ms=0.0))
        else:
            collector.section(name, func, *args)
    return collector


def triage(params):
    """Gather, then write the bundle; return (result dict, NoRoomError or None)."""
    started = time.monotonic()
    created = utc_now()
    host = socket.gethostname()
    collector = gather(params)
    not_collected = [dict(section=s['name'], status=s['status'], reason=s['reason'])
                     for s in collector.sections if s['status'] != 'ok']
    manifest = dict(schema_version=SCHEMA_VERSION, kind='triage', host=host, created_at=iso_utc(created),
                    name='triage-%s-%s' % (host, created.strftime('%Y%m%dT%H%M%SZ')),
                    time_bound_s=params['time_bound_s'], collect_ms=elapsed_ms(started),
                    sections=collector.sections, not_collected=not_collected,
                    secrets_masked=collector.redactor.masked)
    directories = [params['dest']] + list(params['fallback_dirs'])
    result = dict(sections=collector.sections, not_collected=not_collected, executed_commands=collector.commands,
                  bundle=None, attempts=[], fallback_used=False)
    error = None
    try:
        path, attempts = write_bundle(manifest, collector.files, directories)
        result.update(bundle=path, manifest=path + '.manifest.json', attempts=attempts, fallback_used=bool(attempts))
    except Exception as exc:  # NoRoomError, or compression failure
        error = exc
        result['attempts'] = getattr(exc, 'attempts', [])
    ok = len(collector.sections) - len(not_collected)
    result['metrics'] = dict(duration_ms=elapsed_ms(started), sections_collected=ok,
                             sections_not_collected=len(not_collected), secrets_masked=collector.redactor.masked,
                             bytes_collected=sum(len(data) for dummy, data in collector.files))
    result['summary'] = 'triage of %s: %d of %d sections in %.1f s%s; %s' % (
        host, ok, len(collector.sections), result['metrics']['duration_ms'] / 1000.0,
        (' (not collected: %s)' % ', '.join(n['section'] for n in not_collected)) if not_collected else '',
        ('bundle %s' % result['bundle']) + (' (fallback)' if result['fallback_used'] else '') if result['bundle']
        else 'no bundle written')
    return result, error

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sections of ``MAINTENANCE_LOG.md``: one per run, in operator language.

Per host the failures come first, then the one-line summaries of what was done,
then the host's counts. The callback builds a run's lines as its results arrive
(``HostLines``); the same lines are rebuilt from the recorded task events for a
run that ended without a summary (``unfinished_section``).
"""

from __future__ import annotations

import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.record import (
    ENDED_WITHOUT_SUMMARY_TEXT,
    FAILURE_STATUSES,
    HOST_STATUS_ORDER,
)

MARKDOWN_HEADER = (b'# Maintenance log\n\nOne section per playbook run, newest last, written by the '
                   b'engineroom.maintenance.maintenance_log callback; the same runs in detail are in maintenance.jsonl.\n')


def task_label(fields):
    task, module = fields.get('task') or '?', fields.get('module') or '?'
    return task if task == module else '%s (%s)' % (task, module)


class HostLines:
    """The Markdown lines of each host of a run: failures, then summaries and changes without one."""

    def __init__(self):
        self.hosts = {}

    def lines(self, host):
        return self.hosts.get(host, dict(failures=[], handled=[], done=[]))

    def add(self, host, status, fields):
        lines = self.hosts.setdefault(host, dict(failures=[], handled=[], done=[]))
        label = task_label(fields)
        if status in FAILURE_STATUSES:
            # failed and unreachable first, then the failures a rescue or ignore_errors dealt with
            reason = 'output hidden by no_log' if fields.get('no_log') else fields.get('msg') or 'no message'
            line = '**%s** %s: %s' % (status.upper(), label, reason)
            lines['failures' if status in ('failed', 'unreachable') else 'handled'].append(line)
        elif fields.get('summary'):
            lines['done'].append(fields['summary'])
        elif status == 'changed':
            lines['done'].append('%s: changed%s' % (label, ' (output hidden by no_log)' if fields.get('no_log') else ''))


def host_order(hosts):
    return sorted(hosts, key=lambda h: (HOST_STATUS_ORDER.index(hosts[h]['status'])
                                        if hosts[h]['status'] in HOST_STATUS_ORDER else -1, h))


def run_section(started, run, hosts, host_lines, overall, duration_ms):
    """One run's section. ``started`` is the run's UTC start, ``run`` its run_start fields
    (run_id, playbook, user, controller, check_mode), ``hosts`` the run_end's per-host counts."""
    out = ['', '## %s — %s: %s%s' % (started.strftime('%Y-%m-%d'), os.path.basename(run['playbook']), overall,
                                     ' (check mode)' if run.get('check_mode') else ''), '']
    out.append('- when: %s UTC, %.1f s (run %s)'
               % (started.strftime('%Y-%m-%d %H:%M:%S'), duration_ms / 1000.0, run['run_id']))
    out.append('- playbook: %s' % run['playbook'])
    out.append('- who: %s on %s' % (run.get('user'), run.get('controller')))
    ordered = host_order(hosts)
    out.append('- hosts: %s' % (', '.join('%s %s' % (h, hosts[h]['status']) for h in ordered) or 'none'))
    for host in ordered:
        stats = hosts[host]
        lines = host_lines.lines(host)
        out += ['', '### %s: %s' % (host, stats['status']), '']
        out += ['- %s' % line for line in lines['failures'] + lines['handled'] + lines['done']]
        out.append('- %s' % counts_line(stats))
    return '\n'.join(out) + '\n'


def counts_line(stats):
    """A host's counts in the words and order of ansible's recap."""
    return '%d ok, %d changed, %d failed, %d unreachable, %d skipped, %d rescued, %d ignored' % tuple(
        stats.get(key, 0) for key in ('ok', 'changed', 'failures', 'unreachable', 'skipped', 'rescued', 'ignored'))


def unfinished_section(run, end):
    """The section of a run that ended without ansible's summary, from what the log recorded of it.

    ``run`` is a history Run; ``end`` the run_end record written for it (``hosts``, ``last_task``,
    ``last_time``, ``reason``).
    """
    start = run.start or {}
    out = ['', '## %s — %s: %s%s' % (run.time.strftime('%Y-%m-%d'), os.path.basename(run.playbook or 'playbook'),
                                     ENDED_WITHOUT_SUMMARY_TEXT, ' (check mode)' if run.check_mode else ''), '']
    out.append('- when: %s UTC, last record %s UTC (run %s)' % (
        run.time.strftime('%Y-%m-%d %H:%M:%S'), end.get('last_time') or 'unknown', run.run_id))
    out.append('- playbook: %s' % (run.playbook or 'unknown'))
    out.append('- who: %s on %s' % (start.get('user') or 'unknown', start.get('controller') or 'unknown'))
    last = end.get('last_task')
    out.append('- last task: %s' % ('%s on %s: %s at %s' % (last['task'], last['host'], last['status'], last['time'])
                                    if last else 'none recorded'))
    out.append('- why no summary: %s' % end.get('reason'))
    lines = HostLines()
    for task in run.tasks:
        lines.add(task['host'], task['status'], task)
    hosts = end.get('hosts') or {}
    out.append('- hosts: %s' % (', '.join('%s %s' % (h, hosts[h]['status']) for h in host_order(hosts)) or 'none'))
    for host in host_order(hosts):
        host_lines = lines.lines(host)
        out += ['', '### %s: %s' % (host, hosts[host]['status']), '']
        out += ['- %s' % line for line in host_lines['failures'] + host_lines['handled'] + host_lines['done']]
        out.append('- %s (as recorded before the end)' % counts_line(hosts[host]))
    return '\n'.join(out) + '\n'

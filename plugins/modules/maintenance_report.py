#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: maintenance_report
short_description: Render the maintenance log as one self-contained HTML report
version_added: 0.1.0
description:
  - Reads C(maintenance.jsonl) (and its rotated copies) that the
    P(engineroom.maintenance.maintenance_log#callback) callback writes in O(log_dir), and writes
    one HTML file to O(dest) - inline CSS and inline SVG, nothing fetched from the network; the content
    needs no script (a few inline lines only re-sort the fleet table). It prints.
  - First the answers per host - the newest verified snapshot per tier (age, size), the newest restore
    drill (age, C(rto_s), matches), the maintenance lock (holder, expiry), health now and the last run
    of each calendar playbook - as a card per host, or for more than 8 hosts as a fleet table with one
    row per host, problems first.
  - Then per host, folded - the open violations (entries of the latest results whose status is not
    good, and any C(violations) a module returned), the last failures with their messages, the run
    timeline coloured by status, every metric over time grouped by concern (a line chart when it
    moves, with growth per month for capacity figures; one line when flat) and the status of every
    probe or item over time.
  - No per-module code - it charts the C(metrics) and C(name)/C(status) lists every module of the
    collection returns.
  - A line of the log that is not a valid event (a torn write, a hand edit) is skipped; the report
    and the result (RV(skipped_lines)) say which and why, and the module warns.
  - A run that started and never ended (killed, or stopped by a fatal error) is closed first, in both
    files of the log, as ended without a summary with its last recorded task (RV(closed_runs)).
  - Run it on the controller, where the log is (C(playbooks/report.yml) does, on C(localhost)).
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Renders the report and says whether O(dest) would change, without writing it.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - The page depends only on the log (its time stamp is the newest event's), so the same log
        renders the same file and a second run reports RV(ignore:changed=false).
options:
  log_dir:
    description:
      - Directory holding C(maintenance.jsonl), the callback's O(engineroom.maintenance.maintenance_log#callback:log_dir).
    type: path
    required: true
  dest:
    description:
      - The HTML file to write (atomically). Its directory must exist and be writable.
    type: path
    required: true
  title:
    description: Heading and title of the page.
    type: str
    default: Maintenance report
  max_runs:
    description: How many of the latest runs the timelines, charts and tables show.
    type: int
    default: 60
  max_failures:
    description: How many of the latest failed or unreachable tasks are listed per host.
    type: int
    default: 20
'''

EXAMPLES = r'''
- name: Render the report next to the log
  engineroom.maintenance.maintenance_report:
    log_dir: /srv/maintenance-log
    dest: /srv/maintenance-log/report.html
  register: report

- name: Only the last two weeks of a daily calendar
  engineroom.maintenance.maintenance_report:
    log_dir: "{{ playbook_dir }}/maintenance-log"
    dest: /var/www/reports/maintenance.html
    title: Maintenance of the app servers
    max_runs: 14
'''

RETURN = r'''
dest:
  description: The report's path.
  returned: always
  type: str
  sample: /srv/maintenance-log/report.html
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "report of 14 runs on 3 hosts: 2 failed tasks, 1 open violation, 1 unreadable line skipped"
skipped_lines:
  description: Lines of the log that were not valid events and were left out, with the reason.
  returned: always
  type: list
  elements: dict
  contains:
    where:
      description: File name and line number.
      type: str
    reason:
      description: Why the line was skipped.
      type: str
  sample: [{where: maintenance.jsonl line 17, reason: "not valid JSON (Expecting value: line 1 column 1 (char 0))"}]
metrics:
  description: Flat numbers for the report itself; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 48.2, runs: 14, hosts: 3, events: 1220, lines_skipped: 1, failed_tasks: 2, rescued_tasks: 1, ignored_tasks: 0,
           open_violations: 1, charts: 31, bytes_written: 81234}
closed_runs:
  description:
    - Run ids of the runs that had started and ended without a summary (killed, or stopped by a fatal error)
      and were closed now - a C(run_end) of status C(ended_without_summary) in C(maintenance.jsonl) and a
      section in C(MAINTENANCE_LOG.md), both with the last recorded task. In check mode, the runs that would be.
    - A run still going (its process alive on this controller, or a run of another controller with records
      in the last 24 hours) is left alone - the report's own run among them.
  returned: always
  type: list
  elements: str
  sample: [20261123T020004Z-3f2a1c9e]
executed_commands:
  description: Always empty - the module only reads the log, closes runs that ended without a summary and writes O(dest).
  returned: always
  type: list
  elements: str
  sample: []
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.files import DirectoryLock, write_if_changed
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.history import LogError, load_history
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.report import render
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.unfinished import close_unfinished


def plural(count, word):
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


def close_runs(log_dir, check_mode):
    """Close the runs that ended without a summary (killed, fatal error) in both files; their run ids."""
    try:
        lock = DirectoryLock(log_dir)
        try:
            with lock:
                return [end['run_id'] for end in close_unfinished(log_dir, 'maintenance_report', check_mode=check_mode)]
        finally:
            lock.close()
    except OSError as exc:
        raise LogError('cannot close the runs that ended without a summary in %s: %s' % (log_dir, exc.strerror or exc)) from None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            log_dir=dict(type='path', required=True),
            dest=dict(type='path', required=True),
            title=dict(type='str', default='Maintenance report'),
            max_runs=dict(type='int', default=60),
            max_failures=dict(type='int', default=20),
        ),
        supports_check_mode=True,
    )
    params = module.params
    started = time.monotonic()
    for name in ('max_runs', 'max_failures'):
        if params[name] < 1:
            module.fail_json(msg='%s must be at least 1 (got %d)' % (name, params[name]))
    try:
        history = load_history(params['log_dir'], params['dest'])
        closed = close_runs(params['log_dir'], module.check_mode)
        if closed and not module.check_mode:
            history = load_history(params['log_dir'])
    except LogError as exc:
        module.fail_json(msg=str(exc))
    page, figures = render(history, params['title'], params['max_runs'], params['max_failures'])
    data = page.encode('utf-8')
    try:
        changed = write_if_changed(params['dest'], data, module.check_mode)
    except LogError as exc:
        module.fail_json(msg=str(exc))
    for skipped in history.skipped:
        module.warn('maintenance log %s skipped: %s' % (skipped['where'], skipped['reason']))

    summary = 'report of %s on %s: %s, %s' % (plural(figures['runs'], 'run'), plural(figures['hosts'], 'host'),
                                              plural(figures['failed_tasks'], 'failed task'),
                                              plural(figures['open_violations'], 'open violation'))
    if history.skipped:
        summary += ', %s skipped' % plural(len(history.skipped), 'unreadable line')
    if closed:
        summary += ', %s closed as ended without a summary' % plural(len(closed), 'run')
    module.exit_json(changed=changed or bool(closed), dest=params['dest'], summary=summary, skipped_lines=history.skipped,
                     closed_runs=closed,
                     metrics=dict(figures, duration_ms=elapsed_ms(started), bytes_written=len(data) if changed else 0),
                     executed_commands=[])


if __name__ == '__main__':
    main()

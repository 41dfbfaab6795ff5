#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: capacity_review
short_description: Growth per month and the date a disk reaches a threshold, from the maintenance log
version_added: 0.1.0
description:
  - Reads C(maintenance.jsonl) (and its rotated copies) that the
    P(engineroom.maintenance.maintenance_log#callback) callback writes in O(log_dir), and reviews
    the capacity of one O(host) from the figures its past runs recorded.
  - The figures are the size of all databases of the cluster (M(engineroom.maintenance.pg_insight)'s
    C(database_bytes_total)), the size of each snapshot tier (M(engineroom.maintenance.snapshot_archive)'s
    C(database_snapshot_bytes) and C(full_snapshot_bytes)) and, per path of a disk probe of
    M(engineroom.maintenance.health_probe), the used percentage, used and free bytes.
  - Per calendar month (UTC) it gives the latest and the largest value of each figure
    (RV(months)); per figure the growth per month as a least-squares line over every sample
    (RV(growth)); per disk the date it reaches O(threshold_pct), from the latest measured use at
    the fitted growth in bytes (RV(projection)).
  - A growth figure needs samples in at least two calendar months spanning at least 28 days.
    With less history, a flat or shrinking disk, or a date more than ten years away, the result
    says so and gives no date - a date is never guessed.
  - A line of the log that is not a valid event (a torn write, a hand edit) is skipped and
    counted (RV(skipped_lines)), and the module warns.
  - Optionally writes the review as Markdown or JSON to O(dest) (atomically). The file depends
    only on the figures in the log, so the same history writes the same file.
  - Run it on the controller, where the log is (C(playbooks/quarterly.yml) delegates it to
    C(localhost) once per host).
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reviews the log and says whether O(dest) would change, without writing it.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - The module only reads the log; O(dest) is rewritten only when the review's content differs,
        so a second run on the same history reports RV(ignore:changed=false).
options:
  log_dir:
    description:
      - Directory holding C(maintenance.jsonl), the callback's O(engineroom.maintenance.maintenance_log#callback:log_dir).
    type: path
    required: true
  host:
    description:
      - The inventory host name whose history is reviewed, as the log records it (C(inventory_hostname)).
    type: str
    required: true
  threshold_pct:
    description:
      - Disk use, in percent of the usable space, whose date is projected. From V(1) to V(100).
    type: float
    default: 80
  months:
    description:
      - How many calendar months of history are reviewed, counted back from the month of the
        host's newest figure. At least V(2).
    type: int
    default: 12
  dest:
    description:
      - File to write the review to (atomically), in O(format). Its directory must exist and be writable.
      - Not written when omitted.
    type: path
  format:
    description:
      - V(markdown) for people (projection, growth table, months table), V(json) for tools (the
        module's RV(months), RV(growth), RV(projection) and RV(summary)).
    type: str
    choices: [markdown, json]
    default: markdown
seealso:
  - module: engineroom.maintenance.maintenance_report
    description: The HTML report of the same log, with every figure charted over time.
notes:
  - The log keeps 20 figures per probe entry, so a disk probe records at most four paths completely; give more
    paths as separate disk probes.
  - The review can only look back as far as the log goes - set the callback's C(max_bytes) and C(keep)
    so that the rotated files hold the months to review (docs/capacity.md).
'''

EXAMPLES = r'''
- name: Capacity review of each host, on the controller
  engineroom.maintenance.capacity_review:
    log_dir: "{{ playbook_dir }}/maintenance-log"
    host: "{{ inventory_hostname }}"
    dest: "{{ playbook_dir }}/maintenance-log/capacity-{{ inventory_hostname }}.md"
  delegate_to: localhost
  register: capacity

- name: Say which disk reaches 80 % first, and when
  ansible.builtin.debug:
    msg: "{{ capacity.projection.reason }}"
  when: capacity.projection.date is not none

- name: The review as JSON for a dashboard
  engineroom.maintenance.capacity_review:
    log_dir: /srv/maintenance-log
    host: db1
    threshold_pct: 85
    months: 6
    dest: /var/www/capacity/db1.json
    format: json
  delegate_to: localhost
'''

RETURN = r'''
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "capacity of db1 as of 2026-10-31 (4 months, 130 samples): database 1.2 GiB +52.0 MiB/month,
           database snapshot 198.0 MiB +8.1 MiB/month, disk /srv 72.3 % +1.20 pp/month; 80 % disk projected for /srv on 2027-05-14"
host:
  description: The host reviewed.
  returned: always
  type: str
  sample: db1
as_of:
  description: Time of the host's newest figure in the log (UTC), V(null) when there is none.
  returned: always
  type: str
  sample: "2026-10-31T02:00:41Z"
threshold_pct:
  description: The threshold of O(threshold_pct).
  returned: always
  type: float
  sample: 80.0
months:
  description:
    - One entry per calendar month (UTC) from the first to the last month with figures; a month
      without any has V(null) figures and C(samples) 0.
    - C(<figure>_last) is the month's latest value, C(<figure>_max) its largest.
  returned: always
  type: list
  elements: dict
  contains:
    month:
      description: The month, C(YYYY-MM).
      type: str
    samples:
      description: Figures recorded in the month, over all series.
      type: int
    database_bytes_last:
      description: Size of all databases of the cluster at the month's last pg_insight review.
      type: int
    database_bytes_max:
      description: Largest size of all databases in the month.
      type: int
    database_snapshot_bytes_last:
      description: Size of the month's last database-tier snapshot.
      type: int
    database_snapshot_bytes_max:
      description: Largest database-tier snapshot of the month.
      type: int
    full_snapshot_bytes_last:
      description: Size of the month's last full-tier archive.
      type: int
    full_snapshot_bytes_max:
      description: Largest full-tier archive of the month.
      type: int
    disks:
      description: Per disk path - C(path), C(samples), C(used_pct_last), C(used_pct_max), C(used_bytes_last), C(used_bytes_max), C(size_bytes).
      type: list
      elements: dict
  sample:
    - {month: "2026-10", samples: 62, database_bytes_last: 1288490188, database_bytes_max: 1288490188,
       database_snapshot_bytes_last: 198000000, database_snapshot_bytes_max: 198000000,
       full_snapshot_bytes_last: null, full_snapshot_bytes_max: null,
       disks: [{path: /srv, samples: 31, used_pct_last: 72.3, used_pct_max: 72.3, used_bytes_last: 388209475584,
                used_bytes_max: 388209475584, size_bytes: 536870912000}]}
growth:
  description:
    - Growth per month of each figure - C(database), C(snapshots) (by tier, C(database) and C(full)) and
      C(disks) (a list, one per path with its C(path)).
    - Each has C(status) (V(ok), or V(not_enough_history) with the C(reason)), C(samples), C(months)
      (calendar months with samples), C(first) and C(last) sample times, the latest value and the
      growth per mean calendar month (C(bytes_latest), C(bytes_per_month); for disks C(used_pct_latest),
      C(used_pct_per_month) in percentage points, C(used_bytes_latest), C(used_bytes_per_month)), and
      C(r_squared) of each fit (V(null) for a flat line).
  returned: always
  type: dict
  sample:
    database: {status: ok, reason: null, samples: 18, months: 4, first: "2026-07-05T03:10:02Z", last: "2026-10-25T03:09:55Z",
               bytes_latest: 1288490188, bytes_per_month: 54525952, r_squared: {bytes: 0.98}}
    snapshots:
      database: {status: ok, samples: 120, months: 4, bytes_latest: 198000000, bytes_per_month: 8493465}
      full: {status: not_enough_history, reason: "3 samples in 1 calendar month; at least 2 months are needed", samples: 3, months: 1}
    disks:
      - {path: /srv, status: ok, samples: 120, months: 4, used_pct_latest: 72.3, used_pct_per_month: 1.2,
         used_bytes_latest: 388209475584, used_bytes_per_month: 6442450944, r_squared: {used_pct: 0.97, used_bytes: 0.97}}
projection:
  description:
    - When the disks reach O(threshold_pct) - the disk that needs attention first (one already at the
      threshold, else the earliest date), and every disk under RV(projection.disks).
  returned: always
  type: dict
  contains:
    status:
      description:
        - V(reached) (RV(projection.date) is when the current stretch at or above the threshold began),
          V(projected), V(beyond_horizon) (more than ten years away), V(not_growing) (flat or shrinking) or
          V(not_enough_history) (including no disk figures at all).
      type: str
    date:
      description: The day, C(YYYY-MM-DD); V(null) unless RV(projection.status) is V(reached) or V(projected).
      type: str
    path:
      description: The disk path the date is for; V(null) without a date.
      type: str
    threshold_pct:
      description: The threshold of O(threshold_pct).
      type: float
    reason:
      description: In words - the date and the growth behind it, or why there is no date.
      type: str
    disks:
      description:
        - Per disk path - C(path), C(status), C(date), C(days) (from the latest sample), C(reason), C(used_pct),
          C(used_bytes), C(capacity_bytes) (used + free), C(target_bytes), C(bytes_per_month), C(as_of).
      type: list
      elements: dict
  sample:
    status: projected
    date: "2027-05-14"
    path: /srv
    threshold_pct: 80.0
    reason: "/srv reaches 80 % around 2027-05-14: 72.3 % used on 2026-10-31, growing +6.0 GiB per month"
    disks:
      - {path: /srv, status: projected, date: "2027-05-14", days: 195.1, used_pct: 72.3, used_bytes: 388209475584,
         capacity_bytes: 536870912000, target_bytes: 429496729600, bytes_per_month: 6442450944, as_of: "2026-10-31T02:00:41Z"}
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
dest:
  description: The report file, V(null) without O(dest).
  returned: always
  type: str
  sample: /srv/maintenance-log/capacity-db1.md
metrics:
  description:
    - Flat numbers; keys carry their unit. The growth figures are present only when there is enough
      history; C(disk_used_pct_per_month), C(disk_used_bytes_per_month) and C(days_to_threshold) (0 when
      reached) only when RV(projection.date) is set, for the disk in RV(projection.path).
  returned: always
  type: dict
  sample: {duration_ms: 210.4, events: 5120, samples: 130, months_covered: 4, lines_skipped: 0, disks: 1,
           database_bytes_per_month: 54525952, database_snapshot_bytes_per_month: 8493465,
           disk_used_pct_per_month: 1.2, disk_used_bytes_per_month: 6442450944, days_to_threshold: 195.1, bytes_written: 2310}
executed_commands:
  description: Always empty - the module only reads the log and writes O(dest).
  returned: always
  type: list
  elements: str
  sample: []
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.capacity import (
    TIERS,
    render_json,
    render_markdown,
    review,
    summary_of,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.files import write_if_changed
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.history import (
    LogError,
    build_runs,
    hosts_of,
    load_history,
)

SKIPPED_WARNINGS = 5
# What a JSON report holds: the review itself, nothing about this run (so the same history writes the same file).
REPORT_KEYS = ('host', 'as_of', 'threshold_pct', 'months', 'growth', 'projection', 'summary')


def validate(module):
    """Fail on bad options and an unusable log or destination before reading anything."""
    params = module.params
    if not 1 <= params['threshold_pct'] <= 100:
        module.fail_json(msg='threshold_pct must be between 1 and 100 percent of the disk (got %s)' % params['threshold_pct'])
    if params['months'] < 2:
        module.fail_json(msg='months must be at least 2 (got %d): a growth per month needs two calendar months of history'
                             % params['months'])
    if not params['host'].strip():
        module.fail_json(msg='host is empty: give the inventory host name whose history to review')


def flat_metrics(result, history, started):
    growth, projection = result['growth'], result['projection']
    metrics = dict(events=len(history.events), samples=result['samples'], months_covered=len(result['months']),
                   lines_skipped=len(history.skipped), disks=len(growth['disks']))
    if growth['database']['status'] == 'ok':
        metrics['database_bytes_per_month'] = growth['database']['bytes_per_month']
    for tier in TIERS:
        if growth['snapshots'][tier]['status'] == 'ok':
            metrics['%s_snapshot_bytes_per_month' % tier] = growth['snapshots'][tier]['bytes_per_month']
    decisive = next((g for g in growth['disks'] if g['path'] == projection['path'] and g['status'] == 'ok'), None)
    if decisive:
        metrics.update(disk_used_pct_per_month=decisive['used_pct_per_month'],
                       disk_used_bytes_per_month=decisive['used_bytes_per_month'])
    if projection['date']:
        metrics['days_to_threshold'] = next(d['days'] for d in projection['disks'] if d['path'] == projection['path'])
    metrics['duration_ms'] = elapsed_ms(started)
    return metrics


def main():
    module = AnsibleModule(
        argument_spec=dict(
            log_dir=dict(type='path', required=True),
            host=dict(type='str', required=True),
            threshold_pct=dict(type='float', default=80),
            months=dict(type='int', default=12),
            dest=dict(type='path'),
            format=dict(type='str', choices=['markdown', 'json'], default='markdown'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    started = time.monotonic()
    validate(module)
    try:
        history = load_history(params['log_dir'], params['dest'])
    except LogError as exc:
        module.fail_json(msg=str(exc))
    result = review(history.events, params['host'], params['threshold_pct'], params['months'])
    result['summary'] = summary_of(result)
    if not result['samples']:
        known = hosts_of(build_runs(history.events))
        if params['host'] not in known:
            module.warn('host %s has no records in the maintenance log in %s (hosts recorded: %s): check the name'
                        % (params['host'], params['log_dir'], ', '.join(known) or 'none'))
    if history.skipped:
        module.warn('%d line(s) of the maintenance log skipped, first %s: %s' % (
            len(history.skipped), ', '.join(s['where'] for s in history.skipped[:SKIPPED_WARNINGS]),
            history.skipped[0]['reason']))

    changed, written = False, 0
    if params['dest']:
        public = dict((key, result[key]) for key in REPORT_KEYS)
        text = render_json(public) if params['format'] == 'json' else render_markdown(result)
        data = text.encode('utf-8')
        try:
            changed = write_if_changed(params['dest'], data, module.check_mode)
        except LogError as exc:
            module.fail_json(msg=str(exc))
        written = len(data) if changed and not module.check_mode else 0
    metrics = flat_metrics(result, history, started)
    metrics['bytes_written'] = written
    result.pop('samples')
    module.exit_json(changed=changed, dest=params['dest'], skipped_lines=history.skipped, metrics=metrics,
                     executed_commands=[], **result)


if __name__ == '__main__':
    main()

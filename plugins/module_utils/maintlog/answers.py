# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The answers an auditor opens the report for, per host, from the log's generic records.

- the newest verified snapshot per tier (snapshot_archive's ``<tier>_snapshot_bytes``; a snapshot is
  only published after it was read back and verified), its age and size - stale when older than
  its slot allows (``MAX_AGE_H``);
- the newest restore drill (snapshot_restore's ``rto_s``, ``tables_compared``, ``tables_mismatched``)
  - stale when there was none in the last quarter;
- the maintenance lock as its newest record left it (``lock_expires_in_s`` while held);
- health now (health_probe's latest ``status`` and summary);
- the last run of each calendar playbook with the host's status in it.

Ages count from the newest record of the log (``as_of``), not from the clock, so that the same log
renders the same page.
"""

from __future__ import annotations

import datetime
import os
import re

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.record import is_number

# How old the newest verified snapshot of a tier may be: its calendar slot and some slack.
MAX_AGE_H = dict(database=26, full=8 * 24)
DEFAULT_MAX_AGE_H = 26
DRILL_MAX_AGE_DAYS = 92     # a quarter
SNAPSHOT_KEY = re.compile(r'^([a-z0-9]+)_snapshot_bytes$')
DONE = ('ok', 'changed')
NOT_CALENDAR = ('report.yml',)   # the report's runs render the log; they are no maintenance of the host


def module_is(task, name):
    short = task.get('_module')
    if short is None:
        short = task['_module'] = str(task.get('module', '')).rsplit('.', 1)[-1]
    return short == name


def age_hours(when, as_of):
    return round((as_of - when).total_seconds() / 3600.0, 1)


def tasks_by_host(runs):
    """``{host: [(run, task)]}``, oldest first: one pass over the log for every host."""
    found = {}
    for run in runs:
        for task in run.tasks:
            if task.get('_time'):
                found.setdefault(task['host'], []).append((run, task))
    for pairs in found.values():
        pairs.sort(key=lambda pair: pair[1]['_time'])
    return found


def snapshot_answers(tasks, as_of):
    tiers = {}
    for _run, task in tasks:
        if not module_is(task, 'snapshot_archive') or task.get('status') not in DONE:
            continue
        for key, value in (task.get('metrics') or {}).items():
            match = SNAPSHOT_KEY.match(key)
            if match and is_number(value):
                tier = match.group(1)
                age = age_hours(task['_time'], as_of)
                tiers[tier] = dict(tier=tier, verified_at=task['_time'], size_bytes=value, age_h=age,
                                   stale=age > MAX_AGE_H.get(tier, DEFAULT_MAX_AGE_H))
    return [tiers[t] for t in sorted(tiers)]


def drill_answer(tasks, as_of):
    drills = [(run, task) for run, task in tasks if module_is(task, 'snapshot_restore')
              and is_number((task.get('metrics') or {}).get('rto_s'))]
    if not drills:
        return dict(found=False, stale=True)
    _run, task = drills[-1]
    metrics = task['metrics']
    mismatched = metrics.get('tables_mismatched')
    return dict(found=True, time=task['_time'], age_h=age_hours(task['_time'], as_of), rto_s=metrics['rto_s'],
                tables_compared=metrics.get('tables_compared'), tables_mismatched=mismatched,
                files_restored=metrics.get('files_restored'),
                matches=task.get('status') in DONE and not mismatched, summary=task.get('summary') or task.get('msg') or '',
                stale=as_of - task['_time'] > datetime.timedelta(days=DRILL_MAX_AGE_DAYS))


def lock_answer(tasks, as_of):
    locks = [task for _run, task in tasks if module_is(task, 'maintenance_lock') and task.get('status') != 'skipped']
    if not locks:
        return dict(found=False)
    task = locks[-1]
    left = (task.get('metrics') or {}).get('lock_expires_in_s')
    answer = dict(found=True, time=task['_time'], held=is_number(left), summary=task.get('summary') or task.get('msg') or '')
    if is_number(left):
        answer['expires_at'] = task['_time'] + datetime.timedelta(seconds=left)
        answer['expired'] = answer['expires_at'] < as_of
    return answer


def health_answer(tasks):
    probes = [task for _run, task in tasks if module_is(task, 'health_probe') and task.get('status') != 'skipped']
    if not probes:
        return dict(found=False)
    task = probes[-1]
    status = task.get('result_status') or ('unreachable' if task.get('status') == 'unreachable' else task.get('status'))
    return dict(found=True, time=task['_time'], status=str(status), summary=task.get('summary') or task.get('msg') or '')


def calendar_answers(runs, host):
    """The last run of each playbook that touched ``host``: its status there and its failed tasks."""
    last = {}
    for run in runs:
        name = os.path.basename(run.playbook or 'playbook')
        if name not in NOT_CALENDAR and run.touches(host):
            last[name] = run
    answers = []
    for name in sorted(last):
        run = last[name]
        failed = [t.get('task') for t in run.tasks if t['host'] == host and t.get('status') in ('failed', 'unreachable')]
        answers.append(dict(playbook=name, time=run.time, status=run.status_of(host), failed_tasks=failed,
                            last_task=(run.end or {}).get('last_task') if run.ended_without_summary else None))
    return answers


def problems(answer):
    """What is wrong now for a host, in words (empty when nothing is)."""
    found = ['%s snapshot %.0f h old' % (s['tier'], s['age_h']) for s in answer['snapshots'] if s['stale']]
    backed_up = answer['backed_up']  # a host that never ran snapshot_archive is not expected to have snapshots
    if backed_up and not answer['snapshots']:
        found.append('no verified snapshot')
    drill = answer['drill']
    if not drill['found']:
        if backed_up:
            found.append('no restore drill')
    elif drill['stale'] or not drill['matches']:
        found.append('restore drill %s' % ('did not match' if not drill['matches'] else 'older than a quarter'))
    lock = answer['lock']
    if lock.get('held'):
        found.append('maintenance lock %s' % ('expired' if lock['expired'] else 'held'))
    health = answer['health']
    if health['found'] and health['status'] not in ('healthy', 'ok', 'changed'):
        found.append('health %s' % health['status'])
    found += ['%s %s' % (c['playbook'], c['status'].replace('_', ' ')) for c in answer['calendar']
              if c['status'] in ('failed', 'unreachable', 'ended_without_summary')]
    return found


def answers_of(runs, hosts, as_of, by_host=None):
    """Per host: snapshots, drill, lock, health, calendar and the problems, problems first."""
    result = []
    by_host = tasks_by_host(runs) if by_host is None else by_host
    for host in hosts:
        tasks = by_host.get(host, [])
        answer = dict(host=host, backed_up=any(module_is(t, 'snapshot_archive') for _r, t in tasks),
                      snapshots=snapshot_answers(tasks, as_of), drill=drill_answer(tasks, as_of),
                      lock=lock_answer(tasks, as_of), health=health_answer(tasks), calendar=calendar_answers(runs, host))
        answer['problems'] = problems(answer)
        result.append(answer)
    result.sort(key=lambda a: (not a['problems'], a['host']))
    return result

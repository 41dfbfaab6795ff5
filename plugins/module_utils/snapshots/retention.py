# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which snapshots to keep: grandfather-father-son selection, and the slots that make a run idempotent.

Pure functions over (path, created, verified) records, so that the policy is
tested without files. The semantics follow restic's ``forget``: ``keep_daily:
7`` keeps the newest snapshot of each of the last 7 days that have one (days
without a snapshot do not use up the count); the rules add up; the newest
verified snapshot is always kept, whatever the numbers say.
"""

from __future__ import annotations

import datetime

SLOTS = ('always', 'hourly', 'daily', 'weekly', 'monthly')
POLICY_KEYS = ('keep_last', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_within_days')


def slot_key(moment, slot):
    """The slot ``moment`` (UTC) falls in; None for ``always`` (every run is its own slot)."""
    moment = moment.astimezone(datetime.timezone.utc)
    if slot == 'hourly':
        return moment.strftime('%Y-%m-%dT%H')
    if slot == 'daily':
        return moment.strftime('%Y-%m-%d')
    if slot == 'weekly':
        calendar = moment.isocalendar()
        return '%04d-W%02d' % (calendar[0], calendar[1])
    if slot == 'monthly':
        return moment.strftime('%Y-%m')
    return None


def policy_active(policy):
    """True when at least one keep_* rule is set; with none set, retention deletes nothing."""
    return any(policy.get(key) is not None for key in POLICY_KEYS)


def select(snapshots, policy, now):
    """Split ``snapshots`` (dicts with path, created, verified) into (kept, pruned).

    ``kept`` entries carry a ``reasons`` list (``last``, ``daily``, ``weekly``,
    ``monthly``, ``within``, ``newest verified``); ``pruned`` ones have none.
    """
    ordered = sorted(snapshots, key=lambda snap: snap['created'], reverse=True)
    reasons = dict((snap['path'], []) for snap in ordered)
    if not policy_active(policy):
        return [dict(snap, reasons=['no retention rule']) for snap in ordered], []
    for index, snap in enumerate(ordered):
        if index < (policy.get('keep_last') or 0):
            reasons[snap['path']].append('last')
    for rule, slot in (('keep_daily', 'daily'), ('keep_weekly', 'weekly'), ('keep_monthly', 'monthly')):
        wanted = policy.get(rule) or 0
        seen = []
        for snap in ordered:
            key = slot_key(snap['created'], slot)
            if len(seen) >= wanted:
                break
            if key not in seen:
                seen.append(key)
                reasons[snap['path']].append(slot)
    if policy.get('keep_within_days') is not None:
        horizon = now - datetime.timedelta(days=policy['keep_within_days'])
        for snap in ordered:
            if snap['created'] >= horizon:
                reasons[snap['path']].append('within')
    newest_verified = next((snap for snap in ordered if snap['verified']), None)
    if newest_verified is not None:
        reasons[newest_verified['path']].append('newest verified')
    kept = [dict(snap, reasons=reasons[snap['path']]) for snap in ordered if reasons[snap['path']]]
    pruned = [dict(snap, reasons=[]) for snap in ordered if not reasons[snap['path']]]
    return kept, pruned

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A passive test callback: writes what ansible sends, one JSON line per event, to $WITNESS_LOG.

The witness against which the maintenance_log callback is compared in
test_ansible_core_targets.py: it changes nothing, keeps nothing of results but their
kind, and appends each line at once so that a run stopped by a fatal error leaves
what it saw.
"""

from __future__ import annotations

DOCUMENTATION = r'''
name: witness
type: aggregate
short_description: Test witness of the events ansible sends
description: Appends one JSON line per task result and per recap to the file named by WITNESS_LOG.
requirements: [enabled in callbacks_enabled]
'''

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'witness'
    CALLBACK_NEEDS_ENABLED = True

    def write(self, **record):
        with open(os.environ['WITNESS_LOG'], 'a', encoding='utf-8') as handle:
            handle.write(json.dumps(record, default=str) + '\n')

    def result(self, kind, result):
        self.write(event=kind, host=result.host.name, task=result.task.get_name())

    def v2_runner_on_ok(self, result):
        self.result('ok', result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.result('failed', result)

    def v2_runner_on_skipped(self, result):
        self.result('skipped', result)

    def v2_runner_on_unreachable(self, result):
        self.result('unreachable', result)

    def v2_playbook_on_stats(self, stats):
        self.write(event='stats', hosts=dict((host, stats.summarize(host)) for host in sorted(stats.processed)))

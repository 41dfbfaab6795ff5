# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pending Debian packages, security updates told apart, held packages, the reboot flag.

``apt-get -s dist-upgrade`` lists each upgrade as
``Inst NAME [CURRENT] (CANDIDATE LABEL:SUITE [ARCH])``; an update is a
security update when the label or suite it comes from says so
(``Debian-Security:12/stable-security``). Held packages are never in that list
(apt keeps them back); ``apt-mark showhold`` names them. ``apt_config`` (the
``APT_CONFIG`` file) points apt at another state, sources and dpkg root.
"""

from __future__ import annotations

import os
import re

INST = re.compile(r'^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) (.*?) \[([^\]]*)\]\)', re.M)


def parse_simulation(text):
    """The upgrades of an ``apt-get -s`` run: name, current, candidate, origin, security."""
    pending = []
    for name, current, candidate, origin, arch in INST.findall(text):
        pending.append(dict(name=name, current=current or None, candidate=candidate, origin=origin, arch=arch,
                            security='security' in origin.lower()))
    return pending


class Apt:
    def __init__(self, runner, apt_config=None):
        self.runner = runner
        self.env = dict(DEBIAN_FRONTEND='noninteractive')
        if apt_config:
            self.env['APT_CONFIG'] = apt_config

    def update(self):
        self.runner.run(['apt-get', 'update', '-q'], env=self.env, what='apt-get update')

    def pending(self):
        text = self.runner.run(['apt-get', '-s', '-q', '-o', 'Debug::NoLocking=1', 'dist-upgrade'], env=self.env,
                               what='apt-get -s dist-upgrade')
        return parse_simulation(text)

    def held(self):
        return sorted(self.runner.run(['apt-mark', 'showhold'], env=self.env, what='apt-mark showhold').split())

    def upgrade(self, names):
        if names:
            self.runner.run(['apt-get', 'install', '-y', '-q', '--only-upgrade', '-o', 'Dpkg::Options::=--force-confold']
                            + sorted(names), env=self.env, what='apt-get install --only-upgrade')


def reboot_required(path):
    """(flag, packages) from Debian's /var/run/reboot-required and its .pkgs list."""
    if not path or not os.path.exists(path):
        return False, []
    try:
        with open(path + '.pkgs') as handle:
            return True, sorted(set(handle.read().split()))
    except OSError:
        return True, []


def review_apt(runner, params, apply):
    """The apt part of the review; applies the (security) upgrades when asked."""
    apt = Apt(runner, params.get('apt_config'))
    if params['apt_update_cache']:
        apt.update()
    pending = apt.pending()
    held = apt.held()
    flag, packages = reboot_required(params['reboot_required_file'])
    report = dict(pending=pending, security=[p['name'] for p in pending if p['security']], held=held,
                  reboot_required=flag, reboot_packages=packages, applied=[])
    if apply and pending:
        chosen = [p['name'] for p in pending if p['security'] or not params['apt_security_only']]
        apt.upgrade(chosen)
        report['applied'] = chosen
        report['pending_after'] = apt.pending()
        report['reboot_required'], report['reboot_packages'] = reboot_required(params['reboot_required_file'])
    return report

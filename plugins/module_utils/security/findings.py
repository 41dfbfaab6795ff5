# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every check of the security audit hands back: findings, and the errors it raises.

A *finding* is a dict with ``code``, ``severity``, ``path`` (filesystem) or
``object`` (anything else), an operator-language ``message``, a ``status`` and
the safe ``fix`` (or None).
"""

from __future__ import annotations

import stat

SEVERITIES = ('critical', 'high', 'medium', 'low', 'info')
FILE_CHECKS = ('secret_files', 'world_writable_dirs', 'file_permissions', 'secret_scan')
DOCKER_CHECKS = ('docker_socket', 'docker_ports')
DB_CHECKS = ('superusers', 'stale_logins')
CHECKS = FILE_CHECKS + DOCKER_CHECKS + DB_CHECKS


class AuditConfigError(Exception):
    """A bad option, phrased for the operator (what, why, next step)."""


class AuditFailure(Exception):
    """A check that was asked for cannot run (a database that cannot be read); carries the commands run so far."""

    def __init__(self, message, executed=None):
        super().__init__(message)
        self.executed = list(executed or [])


def finding(code, severity, message, **fields):
    """One finding; ``fields`` carry ``path`` or ``object`` and the check's details."""
    entry = dict(code=code, severity=severity, message=message, status='open', fix=None)
    entry.update(fields)
    return entry


def octal(mode):
    return '%04o' % stat.S_IMODE(mode)

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every kind of update review shares: running a program, the error type, the health gate."""

from __future__ import annotations

import os
import subprocess

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import format_argv


class UpdateError(Exception):
    """One kind (or one item of it) cannot be reviewed or applied; phrased for an operator."""


class Runner:
    """Runs programs without a shell, records them, and turns failures into :class:`UpdateError`."""

    def __init__(self, timeout=600, env=None):
        self.timeout = timeout
        self.env = env or {}
        self.commands = []

    def run(self, argv, cwd=None, ok_codes=(0,), env=None, what=None):
        self.commands.append(format_argv(argv))
        environment = dict(os.environ, LC_ALL='C.UTF-8', **self.env)
        environment.update(env or {})
        try:
            completed = subprocess.run(argv, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       timeout=self.timeout, check=False)
        except OSError as exc:
            raise UpdateError('cannot run %s: %s' % (argv[0], exc.strerror or exc)) from exc
        except subprocess.TimeoutExpired as exc:
            raise UpdateError('%s did not finish within %s s' % (what or argv[0], self.timeout)) from exc
        stdout = completed.stdout.decode('utf-8', 'replace')
        if completed.returncode not in ok_codes:
            error = completed.stderr.decode('utf-8', 'replace').strip() or stdout.strip()
            what = what or ' '.join(argv[:3])
            raise UpdateError('%s failed (exit code %d): %s' % (what, completed.returncode, error[-800:]))
        return stdout


def health_gate(runner, argv):
    """Run the health command after an apply; return None when healthy, else the reason."""
    if not argv:
        return None
    try:
        runner.run(argv, what='health check %s' % argv[0])
    except UpdateError as exc:
        return str(exc)
    return None

"""Run real ``ansible-playbook`` against localhost and hand back each task's result.

The playbook is generated per call, run from the repository root with the
repository's ansible.cfg (so ``engineroom.maintenance`` resolves through
``collections/``), and read back through the ``json`` stdout callback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.dirname(sys.executable)


class PlaybookRun:
    """The outcome of one ansible-playbook run: return code, per-task results, raw output."""

    def __init__(self, completed, report):
        self.rc = completed.returncode
        self.stderr = completed.stderr
        self.report = report
        self.tasks = []
        for play in report.get('plays', []):
            for task in play.get('tasks', []):
                for host, result in task.get('hosts', {}).items():
                    self.tasks.append(dict(result, _task=task['task']['name'], _host=host))

    def result(self, name):
        """The result of the task called ``name`` (a role's tasks also match without the ``role : `` prefix)."""
        for task in self.tasks:
            if task['_task'] == name or task['_task'].endswith(' : ' + name):
                return task
        raise KeyError('no task %r in %s' % (name, [t['_task'] for t in self.tasks]))


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'),
        ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_FORCE_COLOR='0',
        PATH=BIN_DIR + os.pathsep + env.get('PATH', ''),
    )
    env.update(extra or {})
    return env


def run_tasks(tasks, check=False, diff=False, extra_vars=None, env=None, timeout=300):
    """Run ``tasks`` (a list of task dicts) in one play on localhost."""
    play = [dict(name='integration', hosts='localhost', gather_facts=False, tasks=tasks)]
    with tempfile.TemporaryDirectory(prefix='engineroom-play-') as workdir:
        playbook = os.path.join(workdir, 'play.yml')
        with open(playbook, 'w') as handle:
            json.dump(play, handle)  # JSON is YAML
        return run_playbook(playbook, check=check, diff=diff, extra_vars=extra_vars, env=env, timeout=timeout)


def run_playbook(playbook, inventory=None, check=False, diff=False, extra_vars=None, env=None, timeout=600):
    argv = [os.path.join(BIN_DIR, 'ansible-playbook'), playbook,
            '-i', inventory or os.path.join(REPO_ROOT, 'inventories', 'local')]
    if check:
        argv.append('--check')
    if diff:
        argv.append('--diff')
    if extra_vars:
        argv += ['-e', json.dumps(extra_vars)]
    completed = subprocess.run(argv, cwd=REPO_ROOT, env=ansible_env(env), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                               check=False)
    try:
        report = json.loads(completed.stdout)
    except ValueError:
        raise AssertionError('ansible-playbook printed no JSON (rc %d):\n%s\n%s'
                             % (completed.returncode, completed.stdout[-3000:], completed.stderr[-3000:])) from None
    return PlaybookRun(completed, report)

"""The test suite's one way to run ``ansible-playbook``: blocking (``run_playbook``) or started (``start_playbook``).

Every run goes from the repository root with the repository's ansible.cfg (so
``engineroom.maintenance`` resolves through ``collections/``); with the default
``ansible.posix.json`` stdout callback each task's result is read back, with any
other callback the output is kept as text. ``run_tasks`` wraps a list of tasks
in a one-play playbook on localhost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

JSON_CALLBACK = 'ansible.posix.json'
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.dirname(sys.executable)


class PlaybookRun:
    """The outcome of one ansible-playbook run: return code, per-task results, raw output."""

    def __init__(self, completed, report):
        self.rc = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.report = report or {}
        self.tasks = []
        for play in self.report.get('plays', []):
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
        ANSIBLE_STDOUT_CALLBACK=JSON_CALLBACK,
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


def playbook_argv(playbook, inventory=None, check=False, diff=False, extra_vars=None, args=()):
    """argv of ``ansible-playbook PLAYBOOK`` (a path, or a bare name under playbooks/), the variables as one JSON ``-e``."""
    path = playbook if os.sep in playbook else os.path.join(REPO_ROOT, 'playbooks', playbook)
    argv = [os.path.join(BIN_DIR, 'ansible-playbook'), path, '-i', inventory or os.path.join(REPO_ROOT, 'inventories', 'local')]
    if check:
        argv.append('--check')
    if diff:
        argv.append('--diff')
    if extra_vars:
        argv += ['-e', json.dumps(extra_vars)]
    return argv + list(args)


def start_playbook(playbook, inventory=None, check=False, diff=False, extra_vars=None, env=None, args=(),
                   callback=JSON_CALLBACK, merge_output=False, new_session=False):
    """Start ansible-playbook without waiting; hand the Popen to :func:`finish_playbook` (or signal it first).

    ``merge_output`` sends stderr into stdout; ``new_session`` starts it as a session leader, so that
    what it leaves running can be found by its session id.
    """
    return PlaybookProcess(callback, playbook_argv(playbook, inventory, check, diff, extra_vars, args), cwd=REPO_ROOT,
                           env=ansible_env(dict(env or {}, ANSIBLE_STDOUT_CALLBACK=callback)),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT if merge_output else subprocess.PIPE, text=True,
                           start_new_session=new_session)


class PlaybookProcess(subprocess.Popen):
    """A started ansible-playbook that knows its stdout callback (so finish_playbook knows how to read it)."""

    def __init__(self, callback, *args, **kwargs):
        self.callback = callback
        super().__init__(*args, **kwargs)


def finish_playbook(process, timeout=600):
    """Wait for a started playbook (killed after ``timeout`` s); its PlaybookRun.

    With the JSON callback (the default) the output must be its JSON report; with any other callback
    ``report`` and ``tasks`` stay empty and the output is in ``stdout``.
    """
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    completed = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr or '')
    if getattr(process, 'callback', JSON_CALLBACK) != JSON_CALLBACK:
        return PlaybookRun(completed, None)
    try:
        report = json.loads(stdout)
    except ValueError:
        raise AssertionError('ansible-playbook printed no JSON (rc %d):\n%s\n%s'
                             % (process.returncode, stdout[-3000:], (stderr or '')[-3000:])) from None
    return PlaybookRun(completed, report)


def run_playbook(playbook, inventory=None, check=False, diff=False, extra_vars=None, env=None, timeout=600,
                 args=(), callback=JSON_CALLBACK):
    """Run ansible-playbook to its end; its PlaybookRun (see :func:`finish_playbook`)."""
    return finish_playbook(start_playbook(playbook, inventory, check, diff, extra_vars, env, args, callback), timeout)

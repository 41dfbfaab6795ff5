"""Real ansible-playbook runs with the maintenance_log callback enabled, and reading what it wrote."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env

CALLBACK = 'engineroom.maintenance.maintenance_log'
SECRET = 'Pa55-w0rd-9f3a7c1e'


class LoggedRun:
    def __init__(self, completed):
        self.rc = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        # ansible.posix.json prints one document per playbook (each with every play so far):
        # the last one is the whole run.
        decoder, text, position, documents = json.JSONDecoder(), completed.stdout, 0, []
        while text[position:].strip():
            document, position = decoder.raw_decode(text, len(text) - len(text[position:].lstrip()))
            documents.append(document)
        self.report = documents[-1] if documents else None  # a fatal error prints no JSON

    def statuses(self):
        """{(host, task name): status} as ansible.posix.json saw them (the run's own view)."""
        found = {}
        for play in self.report['plays']:
            for task in play['tasks']:
                for host, result in task['hosts'].items():
                    status = ('unreachable' if result.get('unreachable') else 'failed' if result.get('failed')
                              else 'skipped' if result.get('skipped') else 'changed' if result.get('changed') else 'ok')
                    found[(host, task['task']['name'])] = status
        return found


def write_yaml(directory, name, data):
    path = os.path.join(directory, name)
    with open(path, 'w') as handle:
        json.dump(data, handle, indent=1)  # JSON is YAML
    return path


def run_logged(playbooks, log_dir=None, inventory=None, extra_vars=None, env=None, callback=True):
    """Run ``ansible-playbook`` on ``playbooks`` (paths) with the callback writing into ``log_dir``."""
    argv = [os.path.join(BIN_DIR, 'ansible-playbook')] + list(playbooks)
    argv += ['-i', inventory or os.path.join(REPO_ROOT, 'inventories', 'local')]
    for extra in extra_vars or ():
        argv += ['-e', extra if isinstance(extra, str) else json.dumps(extra)]
    settings = dict(env or {})
    if callback:
        settings.setdefault('ANSIBLE_CALLBACKS_ENABLED', CALLBACK)
        if log_dir:
            settings.setdefault('ENGINEROOM_MAINTENANCE_LOG_DIR', log_dir)
    else:
        # only the stdout callback, already loaded as such: maintenance_log stays off even if ansible.cfg enables it
        settings['ANSIBLE_CALLBACKS_ENABLED'] = 'ansible.posix.json'
    completed = subprocess.run(argv, cwd=REPO_ROOT, env=ansible_env(settings), stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=300, check=False)
    try:
        return LoggedRun(completed)
    except ValueError:
        raise AssertionError('ansible-playbook printed no JSON (rc %d):\n%s\n%s'
                             % (completed.returncode, completed.stdout[-3000:], completed.stderr[-3000:])) from None


def read_events(log_dir):
    """Every event of the log (rotated files first); fails the test on any line that is not JSON."""
    events = []
    paths = sorted(glob.glob(os.path.join(log_dir, 'maintenance.jsonl.*')),
                   key=lambda p: -int(p.rsplit('.', 1)[1])) + [os.path.join(log_dir, 'maintenance.jsonl')]
    for path in paths:
        if os.path.exists(path):
            with open(path, encoding='utf-8') as handle:
                for number, line in enumerate(handle, 1):
                    assert line.endswith('\n'), '%s line %d is torn' % (path, number)
                    events.append(json.loads(line))
    return events


def strict_events(log_dir):
    """Every line of every maintenance.jsonl* file, parsed by a parser that refuses NaN and Infinity (RFC 8259)."""
    def refuse(token):
        raise ValueError('non-standard JSON token %s' % token)
    events = []
    for name in sorted(os.listdir(log_dir)):
        if name.startswith('maintenance.jsonl'):
            with open(os.path.join(log_dir, name), encoding='utf-8') as handle:
                events += [json.loads(line, parse_constant=refuse) for line in handle]
    return events


def local_inventory(directory, extra_hosts=''):
    path = os.path.join(directory, 'inventory.ini')
    with open(path, 'w') as handle:
        handle.write('localhost ansible_connection=local ansible_python_interpreter=%s\n%s'
                     % (os.path.join(BIN_DIR, 'python'), extra_hosts))
    return path


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix='engineroom-mlog-')
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='session')
def chromium():
    """Debian's chromium, for loading the report the way a person would."""
    for name in ('chromium', 'chromium-browser'):
        path = shutil.which(name)
        if path:
            return path
    reason = 'chromium is not installed: apt-get install -y chromium (scripts/os-packages.sh test)'
    if os.environ.get('ENGINEROOM_REQUIRE_DOCKER') == '1':  # make test: the full environment is required
        pytest.fail(reason)
    pytest.skip(reason)


def chromium_run(binary, url, *args):
    """Run headless chromium offline with a throwaway profile; return its stdout."""
    profile = tempfile.mkdtemp(prefix='engineroom-chromium-')
    try:
        completed = subprocess.run(
            [binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--user-data-dir=' + profile] + list(args) + [url],
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout

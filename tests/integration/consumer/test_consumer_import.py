"""Another team's import: the collection as a tarball, installed and used from a project outside the checkout.

The consumer project is the template in tests/consumer/ (its own ansible.cfg,
inventory, playbook and molecule scenario). The test copies it to a temporary
directory, builds the tarball, installs it offline into the copy's
``collections/`` and runs the consumer's playbook there: syntax check, a real
run against a sandbox PostgreSQL on localhost, and ``molecule test`` on the
local image. Nothing of the checkout is on the collection path, so a file
missing from the build, a path that only resolves inside the checkout or a
role that needs an undocumented variable fails here.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sysconfig
import tarfile

import jinja2
import pytest
import yaml
from jinja2 import nodes

from tests.conftest import TEST_IMAGE
from tests.harness.playbook import BIN_DIR, REPO_ROOT
from tests.harness.sandbox import Sandbox

TEMPLATE = os.path.join(REPO_ROOT, 'tests', 'consumer')
ROLES = ('health_check', 'db_snapshot')
# What the collection needs at run time: every file of these folders must be in the tarball.
RUNTIME_DIRS = ('meta', 'plugins', 'roles', 'playbooks')
NOT_RUNTIME = ('__pycache__', 'maintenance-log')
# Ansible's own names a role may read without documenting them.
ANSIBLE_NAMES = {'item', 'omit', 'lookup', 'query', 'q', 'now', 'undef', 'inventory_hostname', 'hostvars',
                 'groups', 'group_names', 'role_path', 'playbook_dir'}
# Task keys whose values are bare Jinja expressions rather than templated strings.
EXPRESSION_KEYS = ('when', 'changed_when', 'failed_when', 'until', 'that')


# --- documented variables --------------------------------------------------------------

def role_options(role):
    with open(os.path.join(REPO_ROOT, 'roles', role, 'meta', 'argument_specs.yml')) as handle:
        return yaml.safe_load(handle)['argument_specs']['main']['options']


def _load_yaml(path):
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def _inventory_vars(group, where, found):
    """Variables set inline in a YAML inventory group (hosts' and the group's own, children recursively)."""
    for host, host_vars in (group.get('hosts') or {}).items():
        for name in host_vars or {}:
            found.setdefault(name, []).append('%s (host %s)' % (where, host))
    for name in group.get('vars') or {}:
        found.setdefault(name, []).append(where)
    for child in (group.get('children') or {}).values():
        _inventory_vars(child or {}, where, found)


def consumer_variables(project):
    """Every variable the consumer project sets for the roles, with where it is set.

    Inventory files and group_vars/host_vars (the project's and each molecule
    scenario's), and ``vars`` of the plays and tasks in the playbook.
    """
    found = {}
    for path in glob.glob(os.path.join(project, 'inventory', '*.yml')):
        for group in _load_yaml(path).values():
            _inventory_vars(group or {}, os.path.relpath(path, project), found)
    var_files = glob.glob(os.path.join(project, '**', 'group_vars', '*.yml'), recursive=True) + \
        glob.glob(os.path.join(project, '**', 'host_vars', '*.yml'), recursive=True)
    for path in var_files:
        if os.path.relpath(path, project).startswith('collections' + os.sep):
            continue
        for name in _load_yaml(path):
            found.setdefault(name, []).append(os.path.relpath(path, project))
    for play in _load_yaml(os.path.join(project, 'site.yml')):
        for block in [play] + play.get('tasks', []):
            for name in block.get('vars') or {}:
                found.setdefault(name, []).append('site.yml (%s)' % block.get('name'))
    return found


def undocumented_variables(project):
    """Consumer variables no role documents (ansible_* connection settings aside), and required options left unset."""
    options = {}
    for role in ROLES:
        options.update(role_options(role))
    found = consumer_variables(project)
    problems = ['%s set in %s is not documented in the argument specs of %s' % (name, ', '.join(where), ', '.join(ROLES))
                for name, where in sorted(found.items()) if not name.startswith('ansible_') and name not in options]
    problems += ['%s is required by the argument specs but the consumer does not set it' % name
                 for name, spec in sorted(options.items()) if spec.get('required') and name not in found]
    return problems


def test_the_consumer_sets_only_documented_variables(tmp_path):
    """The template as it is passes; an undocumented variable added to it is reported by name and file."""
    assert undocumented_variables(TEMPLATE) == []
    assert {'db_snapshot_database', 'db_snapshot_postgres', 'health_check_postgres'} <= set(consumer_variables(TEMPLATE))

    project = tmp_path / 'consumer'
    shutil.copytree(TEMPLATE, project)
    group_vars = project / 'inventory' / 'group_vars' / 'app_servers.yml'
    group_vars.write_text(group_vars.read_text() + 'engineroom_database: app\n')
    assert undocumented_variables(str(project)) == [
        'engineroom_database set in inventory/group_vars/app_servers.yml is not documented in the argument specs '
        'of health_check, db_snapshot']


# --- what the roles read ---------------------------------------------------------------

def _expressions(data, key=None):
    """Jinja sources in a parsed YAML document: templated strings, and the bare expressions of when/that/..."""
    if isinstance(data, dict):
        for child_key, value in data.items():
            yield from _expressions(value, child_key)
    elif isinstance(data, list):
        for value in data:
            yield from _expressions(value, key)
    elif isinstance(data, str):
        if key in EXPRESSION_KEYS:
            yield '{{ %s }}' % data
        elif '{{' in data or '{%' in data:
            yield data


def _defined_names(data):
    """Names a role gives values itself: register, set_fact keys, task and block vars, loop_var."""
    names = set()
    if isinstance(data, dict):
        names.update([data['register']] if 'register' in data else [])
        names.update(data.get('ansible.builtin.set_fact') or {})
        names.update(data.get('vars') or {})
        names.update([data['loop_control']['loop_var']] if 'loop_var' in data.get('loop_control', {}) else [])
        for value in data.values():
            names |= _defined_names(value)
    elif isinstance(data, list):
        for value in data:
            names |= _defined_names(value)
    return names


def unguarded_reads(source, environment):
    """Names ``source`` reads that are neither assigned in it nor guarded by ``default``/``is defined``."""
    tree = environment.parse(source)
    loaded = {n.name for n in tree.find_all(nodes.Name) if n.ctx == 'load'}
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ('store', 'param')}
    guarded = {n.node.name for n in tree.find_all((nodes.Filter, nodes.Test))
               if n.name in ('default', 'd', 'defined', 'undefined') and isinstance(n.node, nodes.Name)}
    return loaded - stored - guarded


def role_undocumented_reads(role):
    """Variables the role reads without a default that its argument spec does not document."""
    environment = jinja2.Environment()
    known = set(role_options(role)) | ANSIBLE_NAMES | set(environment.globals)
    role_dir = os.path.join(REPO_ROOT, 'roles', role)
    reads = set()
    for path in sorted(glob.glob(os.path.join(role_dir, '**', '*'), recursive=True)):
        if path.endswith(('.yml', '.yaml')) and os.sep + 'meta' + os.sep not in path:
            data = _load_yaml(path)
            known |= _defined_names(data)
            sources = list(_expressions(data))
        elif path.endswith('.j2'):
            with open(path) as handle:
                sources = [handle.read()]
        else:
            continue
        for source in sources:
            reads |= unguarded_reads(source, environment)
    return sorted(name for name in reads - known if not name.startswith('ansible_'))


@pytest.mark.parametrize('role', ROLES)
def test_the_roles_need_no_undocumented_variable(role):
    """Every variable a role reads is documented, set by the role itself, or read with a default."""
    with open(os.path.join(REPO_ROOT, 'roles', role, 'defaults', 'main.yml')) as handle:
        defaults = set(yaml.safe_load(handle))
    assert defaults == set(role_options(role))
    assert role_undocumented_reads(role) == []


def test_the_read_check_finds_an_undocumented_required_variable():
    """What the check above reports: a bare read, not one with a default or a name the template assigns."""
    environment = jinja2.Environment()
    assert unguarded_reads("{{ db_snapshot_dest ~ engineroom_site }}", environment) == \
        {'db_snapshot_dest', 'engineroom_site'}
    assert unguarded_reads("{{ engineroom_site | default('') }}", environment) == set()
    assert unguarded_reads("{% for x in names %}{{ x }}{% endfor %}", environment) == {'names'}


# --- the build, the install and the consumer's runs ------------------------------------

def run(argv, cwd, env, timeout=300, merge=False):
    """Run ``argv`` and return its output (stdout, or both streams with ``merge``: molecule logs to stderr)."""
    completed = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT if merge else subprocess.PIPE, text=True, timeout=timeout,
                               check=False)
    assert completed.returncode == 0, '%s failed (rc %d):\n%s\n%s' % (
        ' '.join(argv), completed.returncode, completed.stdout[-6000:], (completed.stderr or '')[-3000:])
    return completed.stdout


def consumer_env(install_dir, **extra):
    """The caller's environment without any Ansible or molecule setting of this checkout (make exports ANSIBLE_CONFIG)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'MOLECULE_'))}
    env.update(ANSIBLE_COLLECTIONS_PATH=install_dir, PATH=BIN_DIR + os.pathsep + env.get('PATH', ''),
               MOLECULE_TEST_IMAGE=TEST_IMAGE, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', PY_COLORS='0')
    env.update(extra)
    return env


def runtime_files():
    """The checkout's files the collection needs at run time, relative to the repository root."""
    files = set()
    for top in RUNTIME_DIRS:
        for folder, dirs, names in os.walk(os.path.join(REPO_ROOT, top)):
            dirs[:] = [d for d in dirs if d not in NOT_RUNTIME]
            files.update(os.path.relpath(os.path.join(folder, n), REPO_ROOT) for n in names if not n.endswith('.pyc'))
    return files


def build_tarball(dist):
    run([os.path.join(BIN_DIR, 'ansible-galaxy'), 'collection', 'build', '--output-path', dist, REPO_ROOT],
        cwd=dist, env=consumer_env(dist))
    tarball, = glob.glob(os.path.join(dist, 'engineroom-maintenance-*.tar.gz'))
    with tarfile.open(tarball) as archive:
        members = archive.getmembers()
    names = {m.name for m in members}
    missing = sorted(runtime_files() - names)
    assert missing == [], 'missing from the build (galaxy.yml build_ignore?): %s' % missing
    assert [n for n in names if n.startswith(('.venv', '.cache', '.demo', '.git/', 'collections/', 'tests/output'))
            or '__pycache__' in n or 'maintenance-log' in n.split('/')] == []
    assert [m.name for m in members if m.issym() or m.islnk()] == []
    return tarball


def sandbox_host_vars(box, project):
    """The sandbox's connection and a snapshot directory, as documented role variables of the consumer's host."""
    with open(box.vars_file) as handle:
        sandbox = json.loads(handle.read().split('\n', 1)[1])
    monitor = {k: v for k, v in sandbox['sandbox_postgres'].items() if k != 'login_db'}
    host_vars = dict(db_snapshot_postgres=sandbox['engineroom_postgres'], health_check_postgres=monitor,
                     db_snapshot_dest=os.path.join(box.root, 'consumer-backups'),
                     health_check_maintenance_lock_file=os.path.join(box.root, 'state', 'maintenance.json'))
    os.makedirs(os.path.join(project, 'inventory', 'host_vars'))
    with open(os.path.join(project, 'inventory', 'host_vars', 'app-local.yml'), 'w') as handle:
        handle.write('---\n' + json.dumps(host_vars, indent=2) + '\n')
    return host_vars


def task_results(report):
    """Each task result of an ansible.posix.json report, with the task's name and the file it is defined in."""
    return [dict(result, _task=task['task']['name'], _path=task['task']['path'])
            for play in report['plays'] for task in play['tasks'] for result in task['hosts'].values()]


@pytest.fixture
def consumer_sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp('consumer-sandbox')
    os.chmod(root, 0o755)
    box = Sandbox(str(root / 'sandbox'))
    box.up()
    yield box
    box.down()


@pytest.mark.docker
def test_another_team_installs_the_tarball_and_runs_the_roles(docker_client, consumer_sandbox, tmp_path):
    """Build, install offline, then syntax check, a localhost run and molecule test of the consumer project."""
    assert not str(tmp_path).startswith(REPO_ROOT + os.sep)
    project = str(tmp_path / 'consumer')
    shutil.copytree(TEMPLATE, project, ignore=shutil.ignore_patterns('collections', 'maintenance-log', '__pycache__'))
    dist = str(tmp_path / 'dist')
    os.makedirs(dist)
    tarball = build_tarball(dist)

    install_dir = os.path.join(project, 'collections')
    # molecule's working files stay in this test's directory too (not in ~/.ansible/tmp).
    env = consumer_env(install_dir, MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / 'molecule-ephemeral'))
    run([os.path.join(BIN_DIR, 'ansible-galaxy'), 'collection', 'install', '--offline', '-p', install_dir, tarball],
        cwd=project, env=env)
    installed = os.path.join(install_dir, 'ansible_collections', 'engineroom', 'maintenance')
    with open(os.path.join(installed, 'MANIFEST.json')) as handle:
        assert json.load(handle)['collection_info']['name'] == 'maintenance'

    host_vars = sandbox_host_vars(consumer_sandbox, project)
    assert undocumented_variables(project) == []

    # Where the collections resolve from: the project's ansible.cfg alone names the install, and nothing else.
    cfg_only = {k: v for k, v in env.items() if k != 'ANSIBLE_COLLECTIONS_PATH'}
    config = json.loads(run([os.path.join(BIN_DIR, 'ansible-config'), 'dump', '--format', 'json', '--only-changed'],
                            cwd=project, env=cfg_only))
    config = {item['name']: item['value'] for item in config if 'name' in item}
    assert config['CONFIG_FILE'] == os.path.join(project, 'ansible.cfg')
    assert config['COLLECTIONS_PATHS'] == [install_dir]
    listing = json.loads(run([os.path.join(BIN_DIR, 'ansible-galaxy'), 'collection', 'list', '--format', 'json'],
                             cwd=project, env=env))
    assert [path for path, found in listing.items() if 'engineroom.maintenance' in found] == \
        [os.path.join(install_dir, 'ansible_collections')]
    # The virtualenv's site-packages (community.docker & co., ansible-core's own) is the only other place.
    site_packages = sysconfig.get_paths()['purelib'] + os.sep
    assert [path for path in listing if path != os.path.join(install_dir, 'ansible_collections')
            and not path.startswith(site_packages)] == []

    playbook = [os.path.join(BIN_DIR, 'ansible-playbook'), 'site.yml']
    run(playbook + ['--syntax-check'], cwd=project, env=env)

    # The consumer's playbook on localhost against the sandbox PostgreSQL.
    output = run(playbook, cwd=project, env=dict(env, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json'))
    results = task_results(json.loads(output))
    # Each role checked the consumer's variables against its argument spec, and ran from the install.
    validations = [r for r in results if r['action'] == 'ansible.builtin.validate_argument_spec']
    assert sorted(r['_task'].split(' : ')[0] for r in validations) == \
        ['engineroom.maintenance.db_snapshot', 'engineroom.maintenance.health_check']
    role_tasks = [r for r in results if ' : ' in r['_task'] and r not in validations]
    assert role_tasks and [(r['_task'], r['_path']) for r in role_tasks
                           if not r['_path'].startswith(installed + os.sep)] == []
    health, = [r for r in results if r['_task'].endswith(" : Probe the host's services")]
    assert health['status'] == 'healthy', health['summary']
    assert {p['name'] for p in health['probes']} >= {'database', 'disks', 'maintenance', 'process postgres'}
    snapshot, = [r for r in results if 'db_snapshot : Take the database snapshot' in r['_task']]
    verified, = [r for r in results if 'db_snapshot : Re-verify the snapshot' in r['_task']]
    assert snapshot['snapshot']['status'] == 'written'
    assert os.path.dirname(snapshot['snapshot']['path']) == host_vars['db_snapshot_dest']
    assert os.path.getsize(snapshot['snapshot']['path']) > 0
    assert os.path.exists(snapshot['snapshot']['path'] + '.manifest.json')
    assert [v['ok'] for v in verified['verified']] == [True]
    # The collection's callback, enabled by the consumer's ansible.cfg, recorded the run next to the playbook.
    with open(os.path.join(project, 'maintenance-log', 'maintenance.jsonl')) as handle:
        records = [json.loads(line) for line in handle]
    assert [r['event'] for r in (records[0], records[-1])] == ['run_start', 'run_end']
    assert records[-1]['playbook'].endswith('site.yml') and records[-1]['status'] in ('ok', 'changed')
    assert 'engineroom.maintenance.snapshot_archive' in {r.get('module') for r in records}

    # The consumer's molecule scenario on the local image: converge, idempotence, verify.
    try:
        output = run([os.path.join(BIN_DIR, 'molecule'), 'test'], cwd=project, env=env, timeout=1200, merge=True)
    finally:
        subprocess.run([os.path.join(BIN_DIR, 'molecule'), 'destroy'], cwd=project, env=env, check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    for step in ('prepare', 'converge', 'idempotence', 'verify'):
        assert '[default > %s] Executed: Successful' % step in output
    assert 'included: %s/roles/health_check/tasks/build_probes.yml for mol-consumer' % installed in output
    # The checkout shows up only as the virtualenv molecule runs from.
    venv = os.path.dirname(BIN_DIR) + os.sep
    assert [line for line in output.splitlines() if REPO_ROOT in line.replace(venv, '')] == []

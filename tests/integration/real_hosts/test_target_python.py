"""Every module, module_utils file and the callback compiles and imports on each release's Python.

ansible-core 2.19 supports targets from Python 3.8, and sanity's compile and import tests run only
on the Pythons of the controller machine (3.11 here). The real-host images carry Debian 11's 3.9,
Debian 12's 3.11 and Debian 13's 3.13: each container imports the collection's plugins with its own
interpreter, with ansible-core's module_utils (pure Python, as Ansiballz ships them) beside them.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.harness.playbook import REPO_ROOT

RELEASES = {'bullseye': '3.9', 'bookworm': '3.11', 'trixie': '3.13'}

IMPORT_ALL = r'''
import importlib, pathlib, sys, traceback
root = pathlib.Path('/opt/collections/ansible_collections/engineroom/maintenance')
names = []
for kind in ('module_utils', 'modules'):
    for path in sorted((root / 'plugins' / kind).rglob('*.py')):
        if path.name == '__init__.py':
            continue
        rel = path.relative_to(root).with_suffix('')
        names.append('ansible_collections.engineroom.maintenance.' + '.'.join(rel.parts))
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ': ' + traceback.format_exc().strip().splitlines()[-1])
print('%d.%d imported %d, failed %d' % (sys.version_info[0], sys.version_info[1], len(names) - len(failed), len(failed)))
print('\n'.join(failed))
sys.exit(1 if failed else 0)
'''


def ansible_package_dir():
    import ansible
    return os.path.dirname(os.path.dirname(ansible.__file__))


def image_present(image):
    return subprocess.run(['docker', 'image', 'inspect', image], capture_output=True, check=False).returncode == 0


@pytest.mark.docker
@pytest.mark.parametrize('release', sorted(RELEASES))
def test_plugins_compile_and_import_on_the_release_python(release, tmp_path):
    image = 'engineroom-host:%s' % release
    if not image_present(image):
        pytest.skip('%s is missing: scripts/build-host-images.sh %s builds it' % (image, release))
    site = ansible_package_dir()
    argv = ['docker', 'run', '--rm', '--network', 'none',
            '-v', '%s:/opt/collections/ansible_collections/engineroom/maintenance:ro' % REPO_ROOT,
            '-v', '%s/ansible:/opt/ansible-core/ansible:ro' % site,
            '-e', 'PYTHONPATH=/opt/collections:/opt/ansible-core', '-e', 'PYTHONPYCACHEPREFIX=/tmp/pycache',
            image, 'sh', '-c',
            'python3 -m compileall -q -x "/tests/|/extensions/|/bench/|/scripts/" '
            '/opt/collections/ansible_collections/engineroom/maintenance/plugins >/tmp/compile.log 2>&1 '
            '|| { cat /tmp/compile.log; exit 3; }; python3 -c "$0"', IMPORT_ALL]
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert output.startswith(RELEASES[release] + ' imported'), output

"""The built tarball installs and works the same as the checkout.

Catches files missing from the build (build_ignore too wide) and paths that
only resolve inside the checkout.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import tarfile

from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env


def run(argv, **kwargs):
    completed = subprocess.run(argv, check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, **kwargs)
    assert completed.returncode == 0, '%s failed:\n%s\n%s' % (argv, completed.stdout[-2000:], completed.stderr[-2000:])
    return completed


def test_build_install_and_run_from_the_tarball(tmp_path):
    run([os.path.join(BIN_DIR, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(tmp_path), REPO_ROOT])
    tarball, = glob.glob(str(tmp_path / 'engineroom-maintenance-*.tar.gz'))
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert 'plugins/modules/health_probe.py' in names
    assert 'plugins/module_utils/health/probes.py' in names
    assert 'roles/health_check/meta/argument_specs.yml' in names
    assert not [n for n in names if n.startswith(('.venv', '.cache', '.demo', 'collections/'))]

    install_dir = tmp_path / 'installed'
    empty_cfg = tmp_path / 'ansible.cfg'
    empty_cfg.write_text('[defaults]\n')
    # Install and run from outside the checkout, with only the installed copy on the path.
    env = ansible_env(dict(ANSIBLE_COLLECTIONS_PATH=str(install_dir), ANSIBLE_CONFIG=str(empty_cfg)))
    run([os.path.join(BIN_DIR, 'ansible-galaxy'), 'collection', 'install', '--offline', '-p', str(install_dir),
         tarball], env=env, cwd=str(tmp_path))
    assert (install_dir / 'ansible_collections/engineroom/maintenance/MANIFEST.json').exists()
    doc = run([os.path.join(BIN_DIR, 'ansible-doc'), '--json', 'engineroom.maintenance.health_probe'],
              env=env, cwd=str(tmp_path))
    assert 'probes' in json.loads(doc.stdout)['engineroom.maintenance.health_probe']['doc']['options']
    adhoc = run([os.path.join(BIN_DIR, 'ansible'), 'localhost', '-m', 'engineroom.maintenance.health_probe',
                 '-a', json.dumps(dict(probes=[dict(name='mem', kind='memory')], fail_on='never')),
                 '-e', 'ansible_python_interpreter=' + os.path.join(BIN_DIR, 'python')],
                env=dict(env, ANSIBLE_STDOUT_CALLBACK='default'), cwd=str(tmp_path))
    assert '"status": "' in adhoc.stdout and str(install_dir) not in adhoc.stdout.split('=>')[0]

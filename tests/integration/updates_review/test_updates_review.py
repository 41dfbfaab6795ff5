"""updates_review through real ansible-playbook runs on real apt, pip, npm and a real registry."""

from __future__ import annotations

import os

import pytest

from tests.harness.playbook import run_tasks
from tests.integration.updates_review.conftest import OLD_SIX, build_and_push, make_venv, venv_version

MODULE = 'engineroom.maintenance.updates_review'
ONLY_APT = dict(venvs=[], npm_projects=[], images=False)


def task(check=False, **args):
    entry = {'name': 'review', MODULE: args, 'ignore_errors': True}
    if check:
        entry['check_mode'] = True
    return entry


def review(check=False, **args):
    return run_tasks([task(check=check, **args)]).result('review')


def apt_args(sandbox, **extra):
    return dict(ONLY_APT, apt_config=sandbox.config, reboot_required_file=sandbox.reboot_flag, **extra)


# --- apt ----------------------------------------------------------------------------------------

def test_apt_pending_with_security_told_apart_held_and_reboot_flag(apt_sandbox):
    with open(apt_sandbox.reboot_flag, 'w') as handle:
        handle.write('*** System restart required ***\n')
    with open(apt_sandbox.reboot_flag + '.pkgs', 'w') as handle:
        handle.write('linux-image-amd64\nlibc6\n')
    status_before = apt_sandbox.dpkg('-l')
    result = review(**apt_args(apt_sandbox))
    assert not result.get('failed'), result
    pending = dict((p['name'], p) for p in result['apt']['pending'])
    assert sorted(pending) == ['engineroom-sec', 'engineroom-upd']
    assert pending['engineroom-sec']['security'] is True and 'Debian-Security' in pending['engineroom-sec']['origin']
    assert pending['engineroom-upd']['security'] is False
    assert pending['engineroom-upd']['current'] == '1.0' and pending['engineroom-upd']['candidate'] == '1.1'
    assert result['apt']['security'] == ['engineroom-sec'] and result['apt']['held'] == ['engineroom-held']
    assert result['apt']['reboot_required'] is True and result['apt']['reboot_packages'] == ['libc6', 'linux-image-amd64']
    assert result['changed'] is False and result['metrics']['apt_security'] == 1 and result['metrics']['apt_held'] == 1
    assert result['summary'].startswith('update review: 2 OS package(s) pending (1 security, 1 held)')
    assert 'reboot required' in result['summary']
    assert apt_sandbox.dpkg('-l') == status_before                     # report only: nothing installed
    assert any('APT' not in c and 'dist-upgrade' in c for c in result['executed_commands'])


def test_apt_apply_security_only_then_nothing_more_to_do(apt_sandbox):
    args = apt_args(apt_sandbox, apply=['apt'], apt_security_only=True, health_command=['true'])
    planned = review(check=True, **args)
    assert planned['changed'] is False and apt_sandbox.installed('engineroom-sec') == '1.0'
    result = review(**args)
    assert not result.get('failed'), result
    assert result['changed'] is True and result['apt']['applied'] == ['engineroom-sec']
    assert apt_sandbox.installed('engineroom-sec') == '1.1' and apt_sandbox.installed('engineroom-upd') == '1.0'
    assert apt_sandbox.installed('engineroom-held') == '1.0'
    assert [p['name'] for p in result['apt']['pending_after']] == ['engineroom-upd']
    again = review(**args)
    assert again['changed'] is False and again['apt']['applied'] == []


def test_apt_apply_with_failing_health_gate_fails_and_says_what_was_upgraded(apt_sandbox):
    result = review(**apt_args(apt_sandbox, apply=['apt'], health_command=['false']))
    assert result['failed'] and 'health check failed after upgrading engineroom-sec, engineroom-upd' in result['msg']
    assert 'not rolled back' in result['msg']
    assert apt_sandbox.installed('engineroom-upd') == '1.1'


# --- pip ----------------------------------------------------------------------------------------

def test_pip_outdated_per_venv_and_a_path_that_is_not_a_venv(old_venv, tmp_path):
    plain = tmp_path / 'not-a-venv'
    plain.mkdir()
    result = review(apt=False, venvs=[dict(name='app', path=old_venv), dict(name='plain', path=str(plain)),
                                      dict(name='gone', path=str(tmp_path / 'missing'))])
    assert not result.get('failed'), result
    venvs = dict((v['name'], v) for v in result['pip'])
    six = [p for p in venvs['app']['outdated'] if p['name'] == 'six']
    assert six and six[0]['current'] == OLD_SIX and six[0]['latest'] != OLD_SIX and venvs['app']['error'] is None
    assert 'is not a Python virtual environment' in venvs['plain']['error']
    assert 'does not exist' in venvs['gone']['error']
    assert len(result['errors']) == 2 and any('not a Python virtual environment' in w for w in result['warnings'])
    assert venv_version(old_venv) == OLD_SIX


def test_pip_apply_rolls_back_on_a_failed_health_gate_then_applies(tmp_path):
    venv = make_venv(str(tmp_path / 'venv'))
    args = dict(apt=False, venvs=[dict(name='app', path=venv)], apply=['pip'])
    failed = review(health_command=['false'], **args)
    assert failed['failed'] and 'the previous versions are back' in failed['msg']
    assert 'previous versions reinstalled' in failed['msg']
    assert failed['pip'][0]['rolled_back'] is True and venv_version(venv) == OLD_SIX

    done = review(health_command=[os.path.join(venv, 'bin', 'python'), '-c', 'import six'], **args)
    assert not done.get('failed'), done
    assert done['changed'] is True and 'six' in done['pip'][0]['applied']
    assert venv_version(venv) != OLD_SIX
    again = review(**args)
    assert again['changed'] is False and again['pip'][0]['outdated'] == []


# --- npm ----------------------------------------------------------------------------------------

def test_npm_outdated_and_a_directory_without_package_json(npm_project, tmp_path):
    result = review(apt=False, npm_projects=[npm_project, str(tmp_path)])
    assert not result.get('failed'), result
    shop, empty = result['npm']
    assert shop['error'] is None
    ms = [p for p in shop['outdated'] if p['name'] == 'ms'][0]
    assert ms['current'] == '2.0.0' and ms['wanted'] == '2.0.0' and ms['latest'] != '2.0.0'
    assert 'has no package.json' in empty['error']
    assert result['metrics']['npm_outdated'] >= 1


# --- images -------------------------------------------------------------------------------------

@pytest.fixture
def containers(docker_client, registry):
    """moved: runs v1 of a tag the registry now serves as v2; current: up to date; unreachable: its registry is closed."""
    from tests.harness.ports import free_port
    moved = '%s/engineroom-upd-moved:stable' % registry.address
    current = '%s/engineroom-upd-current:stable' % registry.address
    closed = '127.0.0.1:%d/engineroom-upd-gone:1' % free_port()
    build_and_push(docker_client, moved, 'v1')
    build_and_push(docker_client, current, 'v1')
    started = []
    for reference in (moved, current):
        name = 'upd-%s-%d' % (reference.split('/')[1].split(':')[0], os.getpid())
        started.append(docker_client.containers.run(reference, name=name, detach=True))
    docker_client.images.get(current).tag(closed)
    started.append(docker_client.containers.run(closed, name='upd-gone-%d' % os.getpid(), detach=True))
    v2 = build_and_push(docker_client, moved, 'v2')            # the tag moves on in the registry
    yield dict(moved=started[0].name, current=started[1].name, gone=started[2].name, moved_ref=moved, v1=started[0].image.id,
               v2=v2.id)
    for container in docker_client.containers.list(all=True):
        if container.name.startswith('upd-') and container.name.split('-')[-1].isdigit() or 'engineroom-previous' in container.name:
            if str(os.getpid()) in container.name:
                container.remove(force=True)
    remove_images_of(docker_client, (registry.address, closed.split('/')[0]))


def remove_images_of(docker_client, registries):
    """Every image this run built, by id: removing a tag leaves the earlier versions behind under their digests."""
    for image in docker_client.images.list():
        references = (image.attrs.get('RepoTags') or []) + (image.attrs.get('RepoDigests') or [])
        if any(ref.startswith(address + '/') for ref in references for address in registries):
            try:
                docker_client.images.remove(image.id, force=True)
            except Exception:  # pylint: disable=broad-except
                pass


def test_images_compared_with_the_registry_and_an_unreachable_one_reported(containers):
    result = review(apt=False, images=True)
    assert not result.get('failed'), result
    images = dict((i['container'], i) for i in result['images'])
    moved, current, gone = images[containers['moved']], images[containers['current']], images[containers['gone']]
    assert moved['update_available'] is True and moved['local_digest'] != moved['registry_digest']
    assert moved['error'] is None
    assert current['update_available'] is False and current['local_digest'] == current['registry_digest']
    assert gone['update_available'] is False and 'cannot ask the registry' in gone['error']
    assert result['metrics']['images_outdated'] == 1


def test_images_apply_recreates_then_rolls_back_a_broken_image(containers, docker_client):
    from tests.integration.updates_review.conftest import build_and_push
    args = dict(apt=False, images=True, apply=['images'], image_settle_s=2, health_command=['true'])
    before = docker_client.containers.get(containers['moved']).attrs
    result = review(**args)
    assert not result.get('failed'), result
    images = dict((i['container'], i) for i in result['images'])
    assert images[containers['moved']]['applied'] is True and result['changed'] is True
    assert images[containers['current']]['applied'] is False and images[containers['gone']]['error']
    moved = docker_client.containers.get(containers['moved'])
    assert moved.image.id == containers['v2'] and moved.status == 'running'
    assert moved.attrs['Config']['Env'] == before['Config']['Env'] and moved.id != before['Id']
    assert not [c for c in docker_client.containers.list(all=True) if c.name.endswith('-engineroom-previous')]
    report_only = dict(args)
    report_only['apply'] = []
    assert review(**report_only)['metrics']['images_outdated'] == 0

    build_and_push(docker_client, containers['moved_ref'], 'v3-broken', seconds=0)   # exits at once
    broken = review(**args)
    assert broken.get('failed') and 'previous versions are back' in broken['msg'], broken['images']
    entry = [i for i in broken['images'] if i['container'] == containers['moved']][0]
    assert entry['rolled_back'] is True and 'exited' in entry['error']
    back = docker_client.containers.get(containers['moved'])
    assert back.id == moved.id and back.image.id == containers['v2'] and back.status == 'running'
    assert not [c for c in docker_client.containers.list(all=True) if c.name.endswith('-engineroom-previous')]

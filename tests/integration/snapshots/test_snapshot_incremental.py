"""Incremental archives of the full tier on real files: what a link holds, the chain, drills, retention, refusals."""

from __future__ import annotations

import datetime
import hashlib
import os
import random
import shutil

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.incremental import parse_entry
from tests.harness.backup_roles import role_task, show
from tests.harness.playbook import run_tasks
from tests.integration.snapshots.test_snapshot_roundtrip import ARCHIVE, RESTORE, assert_ok, manifest_of


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / 'uploads')
    for name, data in (('keep.txt', 'kept as it is'), ('change.txt', 'v1'), ('delete.txt', 'gone soon'),
                       ('rename_src.txt', 'moved'), ('touchr.txt', 'AAAA'), ('becomes_dir', 'a file first'),
                       ('perm.txt', 'mode only'), ('sub/nested.txt', 'deep')):
        write(os.path.join(root, name), data)
    os.symlink('keep.txt', os.path.join(root, 'link'))
    return root


def shell(script, root):
    return {'name': 'change the tree', 'ansible.builtin.shell': dict(cmd=script, chdir=root)}


def incremental(dest, root, **extra):
    return dict(dict(tier='full', dest=dest, paths=[root], mode='incremental', slot='always', prefix='up'), **extra)


def drill(dest, scratch, **extra):
    return dict(dict(tier='full', dest=dest, prefix='up', scratch_dir=scratch, keep=True), **extra)


def tree_hashes(root, member_root=None):
    """{relative path: ('f', sha256) | ('d',) | ('l', target)} of a tree."""
    found = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                found[rel] = ('l', os.readlink(full))
            elif os.path.isdir(full):
                found[rel] = ('d',)
            else:
                with open(full, 'rb') as handle:
                    found[rel] = ('f', hashlib.sha256(handle.read()).hexdigest())
    return found


def restored_root(scratch_dir, root):
    return os.path.join(scratch_dir, 'files', root.lstrip('/'))


CHANGES = '''
echo v2-longer >> change.txt
echo new > added.txt
rm delete.txt
mv rename_src.txt renamed.txt
cp -p touchr.txt /tmp/.ref-$$ && printf BBBB > touchr.txt && touch -r /tmp/.ref-$$ touchr.txt && rm /tmp/.ref-$$
rm becomes_dir && mkdir becomes_dir && echo inside > becomes_dir/inside.txt
ln -sfn perm.txt link
chmod 600 perm.txt
'''


def test_every_kind_of_change_is_archived_and_the_drill_restores_it(tree, dest, tmp_path):
    scratch = str(tmp_path / 'scratch')
    os.makedirs(scratch)
    before_touch = os.stat(os.path.join(tree, 'touchr.txt'))
    run = run_tasks([
        {'name': 'first', ARCHIVE: incremental(dest, tree)},
        shell(CHANGES, tree),
        {'name': 'second', ARCHIVE: incremental(dest, tree)},
        {'name': 'drill', RESTORE: drill(dest, scratch)},
    ])
    assert_ok(run)
    first, second = run.result('first'), run.result('second')
    # No verified archive yet: the first incremental run writes a full archive, the base, and says why.
    assert first['incremental']['written'] == 'full' and 'no verified archive' in first['incremental']['fallback']
    assert first['snapshot']['mode'] == 'full' and first['incremental']['changed_files'] == 8
    base = os.path.basename(first['snapshot']['path'])
    info = second['incremental']
    assert info['written'] == 'incremental' and info['base'] == base and info['chain'] == [base]
    assert second['snapshot']['mode'] == 'incremental' and info['fallback'] is None

    def member(name):
        return 'files/' + os.path.join(tree, name).lstrip('/')
    manifest = manifest_of(second['snapshot']['path'])
    changed = set(manifest['files']['sha256'])
    names = ('change.txt', 'added.txt', 'renamed.txt', 'touchr.txt', 'becomes_dir/inside.txt', 'perm.txt')
    assert changed == set(member(n) for n in names)
    assert info['changed_files'] == 6 and info['referenced_files'] == 2  # keep.txt, sub/nested.txt
    assert set(info['deleted']) == set(member(n) for n in ('delete.txt', 'rename_src.txt', 'becomes_dir'))
    # touch -r put size and mtime back: only ctime told the change, and the new bytes are in the link.
    index = dict((key, parse_entry(value)) for key, value in manifest['files']['index'].items())
    old = parse_entry(manifest_of(first['snapshot']['path'])['files']['index'][member('touchr.txt')])
    assert index[member('touchr.txt')][1:3] == old[1:3] == [4, before_touch.st_mtime_ns]
    assert index[member('touchr.txt')][5] == hashlib.sha256(b'BBBB').hexdigest() != old[5]
    assert index[member('keep.txt')][6] == 0 and index[member('change.txt')][6] == 1  # holders: base, this link
    assert manifest['incremental']['base'] == dict(file=base, sha256=first['snapshot']['sha256'])
    # The drill restored base + link and checked every file against the final index; the tree is the source's.
    done = run.result('drill')
    assert done['files']['chain'] == [base, os.path.basename(second['snapshot']['path'])]
    assert done['files']['checksums_checked'] == 8
    assert tree_hashes(restored_root(done['scratch_dir'], tree)) == tree_hashes(tree)
    assert oct(os.stat(os.path.join(restored_root(done['scratch_dir'], tree), 'perm.txt')).st_mode & 0o777) == '0o600'


def test_chain_of_six_restores_by_hash_and_idempotence_and_check_mode(tree, dest, tmp_path):
    scratch = str(tmp_path / 'scratch')
    os.makedirs(scratch)
    rng = random.Random(23)
    for number in range(40):
        write(os.path.join(tree, 'bulk', 'f%02d.bin' % number), bytes(rng.getrandbits(8) for _byte in range(2000)))
    tasks = [{'name': 'base', ARCHIVE: incremental(dest, tree, mode='full', file_checksums=True)}]
    for step in range(6):
        tasks += [shell('echo step%d >> bulk/f%02d.bin; rm -f bulk/f%02d.bin; echo %d > new%d.txt'
                        % (step, step, 39 - step, step, step), tree),
                  {'name': 'link %d' % step, ARCHIVE: incremental(dest, tree)}]
    tasks += [{'name': 'same slot', ARCHIVE: incremental(dest, tree, slot='daily')},
              {'name': 'drill', RESTORE: drill(dest, scratch)}]
    run = run_tasks(tasks)
    assert_ok(run)
    base = os.path.basename(run.result('base')['snapshot']['path'])
    assert run.result('base')['incremental']['written'] == 'full'
    for step in range(6):
        info = run.result('link %d' % step)['incremental']
        assert info['base'] == base and len(info['chain']) == step + 1
        assert info['changed_files'] == 2 and info['deleted_files'] == 1  # f<step> grown, new<step>; f<39-step> gone
    last = run.result('link 5')
    assert last['snapshot']['size_bytes'] < run.result('base')['snapshot']['size_bytes']
    again = run.result('same slot')  # a second run in the slot: nothing written, the link reported as it is
    assert again['changed'] is False and again['snapshot']['status'] == 'existing'
    assert again['snapshot']['path'] == last['snapshot']['path'] and again['incremental']['base'] == base
    done = run.result('drill')
    assert len(done['files']['chain']) == 7 and done['files']['checksums_checked'] == 8 + 40 - 6 + 6
    assert tree_hashes(restored_root(done['scratch_dir'], tree)) == tree_hashes(tree)
    # check mode: the plan (what changed, against which parent), nothing written.
    write(os.path.join(tree, 'planned.txt'), 'x')
    listing = sorted(os.listdir(dest))
    planned = run_tasks([{'name': 'plan', ARCHIVE: incremental(dest, tree)}], check=True)
    assert_ok(planned)
    plan = planned.result('plan')
    assert plan['snapshot']['status'] == 'planned' and plan['snapshot']['mode'] == 'incremental'
    assert plan['incremental']['changed_files'] == 1 and plan['incremental']['parent'] == os.path.basename(
        last['snapshot']['path'])
    assert sorted(os.listdir(dest)) == listing


def test_retention_keeps_what_a_kept_incremental_needs(tree, dest):
    run = run_tasks([
        {'name': 'base', ARCHIVE: incremental(dest, tree)},
        shell('echo 1 > a.txt', tree),
        {'name': 'one', ARCHIVE: incremental(dest, tree, keep_last=1)},
        shell('echo 2 > b.txt', tree),
        {'name': 'two', ARCHIVE: incremental(dest, tree, keep_last=1)},
        shell('echo 3 > c.txt', tree),
        {'name': 'plan three', ARCHIVE: incremental(dest, tree, keep_last=1), 'check_mode': True},
        {'name': 'new full', ARCHIVE: incremental(dest, tree, mode='full', file_checksums=True, keep_last=1)},
    ])
    assert_ok(run)
    base, one, two = (run.result(name)['snapshot']['path'] for name in ('base', 'one', 'two'))
    kept = run.result('two')
    assert kept['pruned'] == [] and sorted(kept['kept']) == sorted([base, one, two])
    assert kept['kept_reasons'][base] == ['base of %s' % os.path.basename(two)]
    assert kept['kept_reasons'][one] == ['link of %s' % os.path.basename(two)]
    assert 'last' in kept['kept_reasons'][two]
    # check mode: the planned link needs the whole chain, so nothing would be pruned.
    plan = run.result('plan three')
    assert plan['snapshot']['status'] == 'planned' and plan['pruned'] == []
    assert plan['kept_reasons'][base] == ['base of %s' % os.path.basename(plan['snapshot']['path'])]
    assert plan['kept_reasons'][two] == ['link of %s' % os.path.basename(plan['snapshot']['path'])]
    # A new full starts a new chain: the old one is no longer needed and goes.
    fresh = run.result('new full')
    assert sorted(fresh['pruned']) == sorted([base, one, two]) and fresh['kept'] == [fresh['snapshot']['path']]
    assert fresh['incremental']['written'] == 'full' and fresh['incremental']['fallback'] is None


def test_a_base_removed_or_damaged_is_refused_naming_it(tree, dest, tmp_path):
    scratch = str(tmp_path / 'scratch')
    os.makedirs(scratch)
    run = run_tasks([
        {'name': 'base', ARCHIVE: incremental(dest, tree)},
        shell('echo 1 > a.txt', tree),
        {'name': 'one', ARCHIVE: incremental(dest, tree)},
    ])
    assert_ok(run)
    base = run.result('base')['snapshot']['path']
    name = os.path.basename(base)
    saved = str(tmp_path / 'saved')
    shutil.copy2(base, saved)
    # Damaged in place with the same size and its mtime put back: only re-reading it finds it (the drill).
    stamp = os.stat(base)
    with open(base, 'r+b') as handle:
        handle.seek(stamp.st_size // 2)
        byte = handle.read(1)
        handle.seek(stamp.st_size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(base, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    quiet = run_tasks([{'name': 'drill', RESTORE: drill(dest, scratch), 'ignore_errors': True}])
    refused = quiet.result('drill')
    assert refused.get('failed') and 'base %s' % name in refused['msg'] and 'does not verify' in refused['msg']
    # Damaged and modified later (its mtime says so): the next incremental run refuses, naming it; nothing written.
    os.utime(base)
    listing = sorted(os.listdir(dest))
    damaged = run_tasks([{'name': 'next', ARCHIVE: incremental(dest, tree), 'ignore_errors': True},
                         {'name': 'verify', ARCHIVE: dict(tier='full', dest=dest, prefix='up', state='verified'),
                          'ignore_errors': True}])
    assert damaged.result('next').get('failed') and 'base %s' % name in damaged.result('next')['msg']
    assert 'modified after it was verified' in damaged.result('next')['msg']
    assert damaged.result('verify').get('failed') and 'base %s' % name in damaged.result('verify')['msg']
    assert sorted(os.listdir(dest)) == listing
    # Removed by hand (with its manifest): refused too, naming it.
    os.unlink(base)
    os.unlink(base + '.manifest.json')
    removed = run_tasks([{'name': 'next', ARCHIVE: incremental(dest, tree), 'ignore_errors': True},
                         {'name': 'drill', RESTORE: drill(dest, scratch), 'ignore_errors': True}])
    for task in ('next', 'drill'):
        result = removed.result(task)
        assert result.get('failed') and 'base %s is missing' % name in result['msg'], result.get('msg')
    assert 'mode: full' in removed.result('next')['msg']


def test_bad_inputs_fail_clearly(tree, dest):
    run = run_tasks([
        {'name': 'unknown mode', ARCHIVE: incremental(dest, tree, mode='differential'), 'ignore_errors': True},
        {'name': 'database tier', ARCHIVE: dict(dest=dest, database='x', mode='incremental'), 'ignore_errors': True},
        {'name': 'zip', ARCHIVE: incremental(dest, tree, archive_format='zip'), 'ignore_errors': True},
    ])
    assert 'differential' in run.result('unknown mode')['msg'] and 'incremental' in run.result('unknown mode')['msg']
    assert 'mode incremental applies to tier full' in run.result('database tier')['msg']
    assert 'needs archive_format tar.zst or tar.gz' in run.result('zip')['msg']
    assert not os.path.exists(dest)


def test_full_archive_role_calendar_weekly_full_daily_incremental(tree, tmp_path):
    today = datetime.datetime.now(datetime.timezone.utc).isoweekday()
    other = today % 7 + 1
    calendar = dict(full_archive_calendar='weekly_full_daily_incremental', full_archive_file_checksums=False,
                    full_archive_keep_weekly=0, full_archive_keep_monthly=0, full_archive_keep_daily=7)
    fleet = dict(engineroom_database='', engineroom_uploads_dir=tree, engineroom_logs_dir='')
    run = run_tasks([
        role_task('full_archive', dict(calendar, full_archive_full_weekday=other,
                                       full_archive_dest=str(tmp_path / 'a')), name='incremental day'),
        show('full_archive_result', 'incremental day result'),
        role_task('full_archive', dict(calendar, full_archive_full_weekday=other,
                                       full_archive_dest=str(tmp_path / 'a')), name='again'),
        show('full_archive_result', 'again result'),
        role_task('full_archive', dict(calendar, full_archive_full_weekday=today,
                                       full_archive_dest=str(tmp_path / 'b')), name='full day'),
        show('full_archive_result', 'full day result'),
    ], extra_vars=fleet)
    assert_ok(run)
    first = run.result('incremental day result')['full_archive_result']
    # An incremental day with nothing to compare with: a full archive with an index, the base, and the reason.
    assert first['incremental']['mode'] == 'incremental' and first['incremental']['written'] == 'full'
    assert 'no verified archive' in first['incremental']['fallback'] and first['changed'] is True
    assert manifest_of(first['snapshot']['path'])['files']['index']  # file_checksums forced on by the calendar
    again = run.result('again result')['full_archive_result']
    assert again['changed'] is False and again['snapshot']['status'] == 'existing'  # one archive a day
    full = run.result('full day result')['full_archive_result']
    assert full['incremental']['mode'] == 'full' and full['incremental']['written'] == 'full'
    assert full['incremental']['fallback'] is None


def test_incremental_with_a_database_holds_the_whole_dump_in_every_link(pg, sample_db, tree, dest, tmp_path):
    """Only files are incremental: each link carries the day's whole dump, and the drill restores the newest one."""
    from tests.integration.snapshots.test_snapshot_roundtrip import conn
    c = conn(pg)
    scratch = str(tmp_path / 'scratch')
    os.makedirs(scratch)
    pg.execute('INSERT INTO empty SELECT generate_series(1, 3)', dbname=sample_db)
    run = run_tasks([
        {'name': 'base', ARCHIVE: incremental(dest, tree, database=sample_db, **c)},
        shell('echo v2 >> change.txt', tree),
    ])
    assert_ok(run)
    pg.execute('INSERT INTO empty SELECT generate_series(4, 9)', dbname=sample_db)
    run = run_tasks([
        {'name': 'link', ARCHIVE: incremental(dest, tree, database=sample_db, **c)},
        {'name': 'drill', RESTORE: dict(drill(dest, scratch, database=sample_db), **c)},
    ])
    assert_ok(run)
    link = run.result('link')
    assert link['incremental']['written'] == 'incremental' and link['incremental']['changed_files'] == 1
    assert manifest_of(link['snapshot']['path'])['database']['tables']['public.empty']['rows'] == 9
    done = run.result('drill')
    assert done['matches'] is True and len(done['files']['chain']) == 2
    empty = [row for row in done['tables'] if row['table'] == 'public.empty'][0]
    assert empty['expected'] == empty['actual'] == 9 and empty['match']
    assert tree_hashes(restored_root(done['scratch_dir'], tree)) == tree_hashes(tree)

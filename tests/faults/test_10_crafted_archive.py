"""Case 10: crafted full-tier archives handed to the disaster-recovery drill.

Each archive looks like one of full_archive's own (``app-full-<stamp>.tar.zst``,
a manifest with its true size and sha256, a database member, files under
``files/``) but carries a path-traversal member: ``../`` components, an
absolute name, or a symlink to /etc with a file written through it. The drill
(quarterly.yml, tag drill, dr_drill_snapshot naming the archive) must refuse
each, naming the member, and write nothing outside its scratch directory.

A symlink to an absolute path on its own is not refused: a full archive keeps
links as they were (``current -> /var/www/releases/x``), and extraction creates
them inside the scratch directory without following them. What is refused is
any member that would be written through such a link.
"""

from __future__ import annotations

import datetime
import os

from tests.harness import faults, faults_fs, faults_snapshots

ETC_CANARY = '/etc/engineroom-fault-10-canary'


def test_crafted_archive_is_refused_and_nothing_lands_outside_scratch(sandbox, reliability, tmp_path):
    reliability.describe(
        '10-crafted-archive',
        'full-tier archives with a "../" member, an absolute member, and a symlink to /etc with a file behind it, '
        'each with a manifest that matches it, given to the DR drill',
        'each refused with the offending member named; nothing written outside the scratch directory (canaries '
        'absent, /etc untouched); the scratch directory removed')
    box = sandbox
    backups = os.path.join(box.root, 'backups')
    scratch = tmp_path / 'scratch'
    outside = tmp_path / 'outside'
    scratch.mkdir()
    outside.mkdir()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    good = [('files/srv/app/README', 'file', b'an ordinary file first\n')]
    # The drill extracts into scratch/restore_drill_XXXX/, so two ".." reach tmp_path.
    cases = dict(
        dotdot=(good + [('../../outside/canary-dotdot', 'file', b'escaped\n')],
                "member '../../outside/canary-dotdot' has a \"..\" path component"),
        absolute=(good + [(str(outside / 'canary-absolute'), 'file', b'escaped\n'), (ETC_CANARY, 'file', b'x\n')],
                  "member '%s' has absolute path" % (outside / 'canary-absolute')),
        symlink=(good + [('files/srv/app/etc', 'symlink', '/etc'),
                         ('files/srv/app/etc/engineroom-fault-10-canary', 'file', b'written through the link\n')],
                 "member 'files/srv/app/etc/engineroom-fault-10-canary' has a path through the link files/srv/app/etc"),
    )
    etc_before = set(os.listdir('/etc'))
    passwd_before = faults_fs.sha256_of('/etc/passwd')
    before = faults_fs.file_tree(os.path.join(box.root, 'uploads'))

    messages = {}
    for offset, (label, (members, refusal)) in enumerate(sorted(cases.items())):
        archive = faults_snapshots.crafted_full_archive(backups, members, now + datetime.timedelta(seconds=offset))
        run = box.play('quarterly.yml', extra_vars=dict(dr_drill_snapshot=archive, dr_drill_scratch_dir=str(scratch)),
                       env=dict(ANSIBLE_RUN_TAGS='drill'))
        assert run.rc == 2, (label, run.stderr[-2000:])
        drill = run.result('Restore drill of the latest snapshot of tier full')
        assert drill['failed'] and refusal in drill['msg'] and 'path-traversal' in drill['msg'], (label, drill['msg'])
        assert os.path.basename(archive) in drill['msg']
        messages[label] = drill['msg']
        # The refusal is in the maintenance log as it was reported.
        failed = [e for e in faults.log_events(box, 'task', status='failed') if e['task'].endswith('tier full')]
        assert failed[-1]['msg'] == drill['msg']
        # Nothing outside the scratch directory; the scratch directory itself cleaned up.
        assert os.listdir(outside) == [], label
        assert os.listdir(scratch) == [], (label, os.listdir(scratch))
        assert not os.path.lexists(ETC_CANARY)

    # "../" and absolute members are refused while the archive is verified, before any scratch directory exists;
    # the file behind the /etc link is refused while extracting, after the link itself was made inside scratch.
    assert messages['dotdot'].startswith('refusing to restore: snapshot ')
    assert messages['absolute'].startswith('refusing to restore: snapshot ')
    assert messages['symlink'].startswith('restore drill of ')
    assert set(os.listdir('/etc')) - etc_before == set()
    assert faults_fs.sha256_of('/etc/passwd') == passwd_before
    no_scratch_db = box.cluster.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'restore_drill_%'")
    assert no_scratch_db == [(0,)]

    reliability.data_lost_bytes = faults_fs.lost_bytes(before, faults_fs.file_tree(os.path.join(box.root, 'uploads')))
    reliability.observed = (
        'all three refused with the member named: "../" and absolute members while verifying (nothing extracted), '
        'the file behind the symlink to /etc while extracting (the link was only ever created inside scratch, '
        'never followed); canaries outside absent, /etc unchanged, scratch directory removed, no scratch database')
    assert reliability.data_lost_bytes == 0

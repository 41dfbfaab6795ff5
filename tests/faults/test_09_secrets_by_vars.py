"""Case 09: secrets passed by variables must not come out anywhere they are not meant to be.

The database passwords (the maintenance superuser's and the monitor role's,
as the sandbox passes them in extra vars) and the admin header secret of the
maintenance window's nginx gateway go through a whole weekly run at -vvv (the
most talkative output: task results with their module arguments), a manual
window (maintenance_on.yml, which leaves its lock file) and report.yml at -v. Every byte printed and every file under the sandbox, the
maintenance log included, is searched for them. The only places allowed to
hold them are the ones that must: the sandbox's own inventory files (which
are the input), the database's own files, and the nginx http{} part, whose
job is to hold the token (0640, outside the sandbox).
"""

from __future__ import annotations

import os
import secrets

from tests.harness import faults, faults_fs


def test_secrets_passed_by_vars_leak_nowhere(sandbox, reliability, tmp_path):
    reliability.describe(
        '09-secrets-by-vars',
        'database passwords and the nginx admin header secret passed by vars through weekly.yml (-vvv), '
        'maintenance_on.yml and report.yml (-v)',
        'found in none of: stdout/stderr, maintenance log files, manifests, lock file, report HTML, any other file '
        'the runs wrote')
    box = sandbox
    variables = box.variables()
    token = 'adm1n' + secrets.token_hex(16)  # letters and digits only: regex_escape leaves it greppable in nginx's file
    found = dict(superuser_password=variables['engineroom_postgres']['login_password'],
                 monitor_password=variables['sandbox_postgres']['login_password'], admin_token=token)
    nginx = tmp_path / 'nginx'
    nginx.mkdir()
    gate = dict(maintenance_window_nginx_enabled=True, maintenance_window_nginx_reload=False,
                maintenance_window_nginx_http_conf=str(nginx / 'engineroom-maintenance.conf'),
                maintenance_window_nginx_server_conf=str(nginx / 'engineroom-maintenance-server.conf'),
                maintenance_window_admin_token=token, maintenance_window_admin_networks=['127.0.0.1/32'],
                health_check_probes=faults.steady_probes(box))
    before = faults_fs.file_tree(os.path.join(box.root, 'uploads'))

    weekly = box.play('weekly.yml', gate, args=['-vvv'], callback='default')
    assert weekly.rc == 0, weekly.stdout[-4000:]
    assert 'Take the maintenance lock' in weekly.stdout and 'changed: [localhost]' in weekly.stdout
    # weekly.yml removes its lock at the end: a manual window leaves it (and the flag file) in place to be searched.
    manual = box.play('maintenance_on.yml', dict(gate, maintenance_reason='secret leak check'), args=['-v'],
                      callback='default')
    assert manual.rc == 0, manual.stdout[-4000:]
    lock_file = os.path.join(box.root, 'state', 'maintenance.json')
    assert os.path.exists(lock_file) and os.path.exists(os.path.join(box.root, 'state', 'maintenance.flag'))
    report_dest = os.path.join(box.maintenance_log_dir, 'report.html')
    report = box.play('report.yml', dict(maintenance_report_log_dir=box.maintenance_log_dir),
                      args=['-v'], with_box_vars=False, callback='default')
    assert report.rc == 0, report.stdout[-4000:]
    assert os.path.getsize(report_dest) > 0

    # The search works: the token is where it has to be (the gateway's config), the passwords in the inventory.
    assert faults_fs.find_secrets([str(nginx)], dict(admin_token=token)) == [
        (str(nginx / 'engineroom-maintenance.conf'), 'admin_token')]
    assert {label for dummy, label in faults_fs.find_secrets([box.root], found)} >= {'superuser_password',
                                                                                     'monitor_password'}

    outputs = (('weekly stdout', weekly.stdout), ('weekly stderr', weekly.stderr), ('maintenance_on stdout', manual.stdout),
               ('maintenance_on stderr', manual.stderr), ('report stdout', report.stdout), ('report stderr', report.stderr))
    printed = [(where, label) for where, text in outputs for label, value in found.items() if value in text]
    assert printed == []
    allowed = [box.vars_file, box.state_file, os.path.join(box.root, 'postgres')]
    in_files = faults_fs.find_secrets([box.root], found, skip=allowed)
    assert in_files == []

    # The artifacts that must have been searched were really there.
    backups = os.listdir(os.path.join(box.root, 'backups'))
    assert any(name.endswith('.tar.zst.manifest.json') for name in backups)
    log_files = set(os.listdir(box.maintenance_log_dir))
    assert {'maintenance.jsonl', 'MAINTENANCE_LOG.md', 'report.html'} <= log_files
    starts = faults.log_events(box, 'run_start')
    assert 'maintenance_window_admin_token' in starts[0]['extra_vars']  # the names are recorded, never the values

    reliability.data_lost_bytes = faults_fs.lost_bytes(before, faults_fs.file_tree(os.path.join(box.root, 'uploads')))
    reliability.observed = (
        'no secret in %d KiB of -vvv/-v output, nor in any of %d files the runs left under the sandbox '
        '(maintenance.jsonl, MAINTENANCE_LOG.md, report.html, archive manifests and archives, the lock and flag '
        'files of a manual window, state files); before a fix the health check\'s probe list printed both database '
        'passwords at -v (now no_log); '
        'the token is only in the gateway config that must hold it, the extra vars are logged by name'
        % (sum(len(text) for dummy, text in outputs) // 1024,
           sum(len(files) for dummy, dummy2, files in os.walk(box.root))))
    assert reliability.data_lost_bytes == 0

"""log_rotation_check through real ansible-playbook runs on real files, processes and logrotate.

Every test asserts on the module's JSON and on the files and processes
themselves; bad inputs on the message and on nothing having changed.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess

from tests.harness.logs import file_state, grep_count, write_app_log
from tests.harness.playbook import REPO_ROOT, run_tasks
from tests.integration.logs.conftest import MODULE, age, run_tasks_as_nobody

PATTERNS = ['ERROR', 'CRITICAL', 'FATAL', 'Traceback']
NO_LOGROTATE = dict(check_logrotate=False, ghost_scope='none')


def task(name, check=False, diff=False, **args):
    entry = {'name': name, MODULE: args, 'ignore_errors': True}
    if check:
        entry['check_mode'] = True
    if diff:
        entry['diff'] = True
    return entry


def write(path, data=b'x'):
    with open(path, 'wb') as handle:
        handle.write(data)


def codes(log):
    return sorted(v['code'] for v in log['violations'])


# --- audit and enforcement -------------------------------------------------------------------

def test_audit_then_enforce_oversized_and_over_versioned_logs(logdir):
    app = os.path.join(logdir, 'app.log')
    write_app_log(app, 30000, seed=1)                      # ~3.4 MB, over 1M
    for number in (1, 2, 3, 4, 5):
        write(os.path.join(logdir, 'app.log.%d' % number), b'old %d\n' % number * 100)
    age(os.path.join(logdir, 'app.log.5'), 40)
    small = os.path.join(logdir, 'small.log')
    write(small, b'fine\n')
    write(os.path.join(logdir, 'small.log.1.gz'), gzip.compress(b'older\n'))
    foreign = os.path.join(logdir, 'app.log.bak')           # not a rotated version: must survive everything
    write(foreign, b'keep me\n')
    policy = dict(max_size='1M', keep=3, compress=True, max_age_days=30)
    args = dict(NO_LOGROTATE, paths=[os.path.join(logdir, '*.log')], policy=policy)
    before = file_state(logdir)

    run = run_tasks([task('audit', **args),
                     task('plan', check=True, diff=True, enforce=True, **args)])
    audit, plan = run.result('audit'), run.result('plan')
    assert file_state(logdir) == before                    # audit and check mode changed nothing
    logs = dict((e['path'], e) for e in audit['logs'])
    assert sorted(logs) == [app, small]
    assert codes(logs[app]) == ['expired_version', 'oversized', 'too_many_versions', 'uncompressed_version']
    assert logs[app]['size_bytes'] == os.path.getsize(app)
    assert logs[app]['rotated_versions'] == 5
    assert logs[app]['oldest_version_age_days'] >= 40
    assert codes(logs[small]) == []
    assert audit['changed'] is False and audit['actions'] == []
    assert plan['changed'] is True
    assert {a['status'] for a in plan['actions']} == {'planned'}
    assert [a['action'] for a in plan['actions']] == ['rotate', 'delete', 'delete', 'delete', 'compress', 'compress', 'compress']
    assert plan['diff'][0]['before'] == 'app.log.1\napp.log.2\napp.log.3\napp.log.4\napp.log.5\n'
    assert plan['diff'][0]['after'] == 'app.log.1.gz\napp.log.2.gz\napp.log.3.gz\n'

    content = open(app, 'rb').read()
    run = run_tasks([task('enforce', diff=True, enforce=True, **args), task('again', enforce=True, **args)])
    enforced, again = run.result('enforce'), run.result('again')
    assert enforced['changed'] is True, enforced.get('msg')
    assert {a['status'] for a in enforced['actions']} == {'done'}
    assert sorted(os.listdir(logdir)) == ['app.log', 'app.log.1.gz', 'app.log.2.gz', 'app.log.3.gz', 'app.log.bak',
                                          'small.log', 'small.log.1.gz']
    assert os.path.getsize(app) == 0                        # copytruncate: same inode, emptied
    assert gzip.open(os.path.join(logdir, 'app.log.1.gz')).read() == content
    assert gzip.open(os.path.join(logdir, 'app.log.2.gz')).read() == b'old 1\n' * 100
    assert gzip.open(os.path.join(logdir, 'app.log.3.gz')).read() == b'old 2\n' * 100
    assert open(foreign, 'rb').read() == b'keep me\n'
    assert [e['violations_after'] for e in enforced['logs']] == [[], []]
    assert again['changed'] is False and again['actions'] == []
    assert again['metrics']['violations_total'] == 0


def test_rename_rotation_runs_postrotate_command(logdir):
    app = os.path.join(logdir, 'app.log')
    write(app, b'line\n' * 1000)
    os.chmod(app, 0o640)
    marker = os.path.join(logdir, 'reopened')
    run = run_tasks([task('rename', enforce=True, method='rename', postrotate_command=['touch', marker],
                          paths=[app], policy=dict(max_size='1K', keep=2, compress=False), **NO_LOGROTATE)])
    result = run.result('rename')
    assert result['changed'] is True, result.get('msg')
    assert os.path.exists(marker)
    assert open(os.path.join(logdir, 'app.log.1'), 'rb').read() == b'line\n' * 1000
    assert os.path.getsize(app) == 0 and oct(os.stat(app).st_mode & 0o777) == '0o640'
    assert 'touch %s' % marker in result['executed_commands']


# --- ghost handles ---------------------------------------------------------------------------

def test_ghost_handle_found_then_reclaimed(logdir, holder):
    ghost = os.path.join(logdir, 'worker.log')
    held = holder(ghost, 3 * 1024 * 1024)
    os.unlink(ghost)                                        # deleted by hand while the worker runs
    write(os.path.join(logdir, 'other.log'), b'ok\n')
    args = dict(paths=[os.path.join(logdir, '*.log')], check_logrotate=False)
    run = run_tasks([task('report', **args),
                     task('plan', check=True, diff=True, ghost_action='truncate', **args)])
    report, plan = run.result('report'), run.result('plan')
    found = [g for g in report['ghost_handles'] if g['pid'] == held.pid]
    comm = open('/proc/%d/comm' % held.pid).read().strip()
    assert found == [dict(pid=held.pid, process=comm, fd=held.fd, path=ghost, bytes_held=3 * 1024 * 1024,
                          size_bytes=3 * 1024 * 1024, anonymous=False, truncatable=True,
                          holders=[dict(pid=held.pid, process=comm, fd=held.fd)], status='reported')]
    assert report['changed'] is False
    assert plan['changed'] is True and plan['actions'][0]['status'] == 'planned'
    assert plan['diff'][0]['before'] == '%d bytes held\n' % (3 * 1024 * 1024)
    assert held.held_size() == 3 * 1024 * 1024              # check mode left it alone

    run = run_tasks([task('truncate', ghost_action='truncate', **args), task('after', **args)])
    truncate, after = run.result('truncate'), run.result('after')
    assert truncate['changed'] is True
    assert [g['status'] for g in truncate['ghost_handles'] if g['pid'] == held.pid] == ['truncated']
    assert held.held_size() == 0
    assert held.process.poll() is None                      # reclaimed without a restart
    assert [g['bytes_held'] for g in after['ghost_handles'] if g['pid'] == held.pid] == [0]
    assert after['changed'] is False


# --- error review ----------------------------------------------------------------------------

def test_counts_equal_grep_and_a_traceback_is_one_event(logdir):
    paths = []
    for seed in range(3):
        path = os.path.join(logdir, 'app%d.log' % seed)
        write_app_log(path, 20000, seed=seed)
        paths.append(path)
    with open(paths[0], 'ab') as handle:                   # junk that must not crash the scan
        handle.write(b'\xff\xfe\x00 binary FATAL junk \x80\x81\n\x00\x00\x00\n')
    run = run_tasks([task('scan', scan=True, top_n=10, paths=[os.path.join(logdir, '*.log')], **NO_LOGROTATE),
                     task('since', scan=True, paths=[paths[1]], since='2026-11-20T03:20:00Z', **NO_LOGROTATE)])
    errors = run.result('scan')['errors']
    assert ' -a -b -i -E --color=never -e ' in run.result('scan')['executed_commands'][0]  # the grep fast path ran
    assert {s['scanner'] for f in errors['files'] for s in f['segments']} == {'grep'}
    for pattern in PATTERNS:
        assert errors['counts'][pattern] == grep_count(pattern, *paths), pattern
    tracebacks = grep_count('Traceback (most recent call last)', *paths)
    assert errors['tracebacks'] == tracebacks == 15
    # three lines of each traceback match (the header, the frame line raising ValueError, the exception
    # line): counted per pattern like grep does, but together they are one event
    assert errors['events'] == errors['lines_matched'] - 2 * tracebacks
    assert errors['undecodable_lines'] == 1
    top = errors['top_messages']
    # 5 error templates, the line before each traceback, the tracebacks, the junk line: normalised, 8 messages
    assert len(top) == errors['distinct_messages'] == 8 and [m['count'] for m in top] == sorted((m['count'] for m in top), reverse=True)
    traceback_events = [m for m in top if m['message'] == 'Traceback: ValueError: bad payload <n>']
    assert traceback_events and traceback_events[0]['count'] == 15
    assert all(m['first_seen'] <= m['last_seen'] for m in top)

    # since: only lines logged from 03:20 on count (1 record per second from 00:00); traceback lines
    # without their own timestamp take the time of the line before them
    since = run.result('since')['errors']
    expected, stamp = 0, b''
    for line in open(paths[1], 'rb').read().split(b'\n'):
        stamp = line[:20] if line[:4] == b'2026' else stamp
        expected += stamp >= b'2026-11-20T03:20:00Z' and b'error' in line.lower()
    assert since['counts']['ERROR'] == expected > 0
    assert since['lines_before_since'] > 0


def test_incremental_scans_across_rotation_lose_and_repeat_nothing(logdir):
    app = os.path.join(logdir, 'app.log')
    state = os.path.join(logdir, 'state', 'cursors.json')
    everything = os.path.join(logdir, 'everything-written.txt')  # all chunks, to grep at the end
    chunks = []

    def append(count, seed, second):
        with open(app, 'ab') as log:
            before = log.tell()
            write_app_log(app, count, seed=seed, first_second=second, mode='ab')
        with open(app, 'rb') as log:
            log.seek(before)
            chunks.append(log.read())

    append(8000, 1, 0)
    args = dict(NO_LOGROTATE, paths=[app], scan=True, state_file=state)
    first = run_tasks([task('first', **args), task('second', **args)])
    one, two = first.result('first'), first.result('second')
    assert one['bytes_scanned'] == os.path.getsize(app) and one['state']['status'] == 'new'
    assert two['bytes_scanned'] == 0 and two['bytes_skipped_by_cursor'] == os.path.getsize(app)
    assert two['errors']['lines_matched'] == 0 and two['state']['status'] == 'loaded'

    append(3000, 2, 8000)                                   # new lines, then a rename rotation
    os.rename(app, app + '.1')
    append(2000, 3, 11000)                                  # the new file
    third = run_tasks([task('third', **args)]).result('third')
    assert third['bytes_scanned'] == len(chunks[1]) + len(chunks[2])
    assert [s['path'] for s in third['errors']['files'][0]['segments']] == [app + '.1', app]

    append(1000, 4, 13000)                                  # copytruncate by the module, then gzip
    fourth = run_tasks([task('enforce', enforce=True, policy=dict(max_size='1K', keep=5), **args),
                        task('fourth', **args)])
    assert fourth.result('enforce')['changed'] is True
    assert os.listdir(logdir).count('app.log.1.gz') == 1     # the copy holding the cursor was gzipped
    assert [s['path'] for s in fourth.result('fourth')['errors']['files'][0]['segments']] == [app + '.1.gz', app]
    append(500, 5, 14000)
    fifth = run_tasks([task('fifth', **args)]).result('fifth')

    with open(everything, 'wb') as handle:
        handle.write(b''.join(chunks))
    runs = [one, two, third, fourth.result('enforce'), fourth.result('fourth'), fifth]
    for pattern in PATTERNS:
        assert sum(r['errors']['counts'][pattern] for r in runs) == grep_count(pattern, everything), pattern
    assert sum(r['errors']['tracebacks'] for r in runs) == grep_count('Traceback (most recent', everything)
    assert all(not r['notes'] for r in runs), [r['notes'] for r in runs]
    cursors = json.load(open(state))['files']
    assert cursors[app]['offset'] == os.path.getsize(app)


# --- the role's logrotate template with Debian's logrotate ----------------------------------

def test_real_logrotate_with_role_template_leaves_zero_violations(logdir):
    logs = os.path.join(logdir, 'logs')
    confdir = os.path.join(logdir, 'logrotate.d')
    os.makedirs(logs)
    os.makedirs(confdir)
    paths = [os.path.join(logs, name) for name in ('audit.log', 'system.log')]
    for seed, path in enumerate(paths):
        write_app_log(path, 15000, seed=seed)               # ~1.7 MB each, over 1M
        for number in (1, 2, 3):
            write(path + '.%d.gz' % number, gzip.compress(b'version %d\n' % number))
    template_vars = dict(log_oversight_paths=paths, log_oversight_max_size='1M', log_oversight_keep=3,
                         log_oversight_compress=True, log_oversight_delay_compress=False,
                         log_oversight_max_age_days=30, log_oversight_method='copytruncate', log_oversight_su='',
                         log_oversight_postrotate_command=[])
    conf = os.path.join(confdir, 'app')
    policy = dict(max_size='1M', keep=3, compress=True, max_age_days=30)
    args = dict(paths=paths, policy=policy, logrotate_dir=confdir, logrotate_conf='', ghost_scope='none')
    run = run_tasks([{'name': 'render', 'ansible.builtin.template': dict(
        src=os.path.join(REPO_ROOT, 'roles', 'log_oversight', 'templates', 'logrotate.j2'), dest=conf, mode='0644'),
        'vars': template_vars},
        task('before', **args)])
    assert run.result('render')['changed'] is True
    before = run.result('before')
    assert [codes(e) for e in before['logs']] == [['oversized']] * 2
    assert {e['logrotate_config'] for e in before['logs']} == {conf}

    state = os.path.join(logdir, 'logrotate.status')
    completed = subprocess.run(['/usr/sbin/logrotate', '-s', state, conf], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, check=False)
    assert completed.returncode == 0, completed.stdout
    after = run_tasks([task('after', **args)]).result('after')
    assert [e['violations'] for e in after['logs']] == [[], []]
    assert sorted(os.listdir(logs)) == sorted(os.path.basename(p) + suffix for p in paths
                                              for suffix in ('', '.1.gz', '.2.gz', '.3.gz'))


def test_logrotate_stanza_that_disagrees_is_a_policy_mismatch(logdir):
    app = os.path.join(logdir, 'app.log')
    write(app, b'x\n')
    confdir = os.path.join(logdir, 'conf')
    os.makedirs(confdir)
    write(os.path.join(confdir, 'app'), ('%s {\n  size 10M\n  rotate 4\n  nocompress\n  postrotate\n    kill -HUP 1\n'
                                         '  endscript\n}\n' % app).encode())
    result = run_tasks([task('audit', paths=[app], policy=dict(max_size='5M', keep=10), logrotate_dir=confdir,
                             logrotate_conf='', ghost_scope='none')]).result('audit')
    violation = result['logs'][0]['violations'][0]
    assert violation['code'] == 'policy_mismatch'
    assert 'size 10485760, policy max_size 5M' in violation['message']
    assert 'rotate 4, policy keep 10' in violation['message']
    assert 'nocompress, policy compress True' in violation['message']


def test_without_logrotate_the_audit_and_enforcement_say_logrotate_missing(logdir):
    """A host without logrotate (logrotate_path names no program): the collection's parser reads the stanza, the
    module rotates with its own code, and the notes say logrotate_missing."""
    app = os.path.join(logdir, 'app.log')
    write(app, b'2026-11-20 10:00:00 INFO fine\n' * 200)        # 6 KB, over 1K
    confdir = os.path.join(logdir, 'conf')
    os.makedirs(confdir)
    write(os.path.join(confdir, 'app'), ('%s {\n  size 1k\n  rotate 3\n  compress\n}\n' % app).encode())
    absent = os.path.join(logdir, 'no-such-dir', 'logrotate')
    args = dict(paths=[app], policy=dict(max_size='1K', keep=3, compress=True), logrotate_dir=confdir, logrotate_conf='',
                ghost_scope='none', logrotate_path=absent, logrotate_state=os.path.join(logdir, 'state', 'lr.status'))
    run = run_tasks([task('audit', **args), task('enforce', enforce=True, **args)])
    audit, enforced = run.result('audit'), run.result('enforce')
    for result in (audit, enforced):
        assert not result.get('failed'), result.get('msg')
        assert any(n.startswith('logrotate_missing: ') for n in result['notes']), result['notes']
        assert not any('logrotate' in c for c in result['executed_commands'])
    assert audit['logs'][0]['logrotate_config'] == os.path.join(confdir, 'app')    # read by the collection's parser
    assert codes(audit['logs'][0]) == ['oversized']
    assert [(a['action'], a['status']) for a in enforced['actions']] == [('rotate', 'done'), ('compress', 'done')]
    assert os.path.getsize(app) == 0 and len(gzip.open(app + '.1.gz').read()) == 6000   # the module's own rotation
    assert not os.path.exists(os.path.join(logdir, 'state', 'lr.status'))      # logrotate never ran


def test_a_fifo_is_never_read_as_a_log(logdir):
    app, fifo = os.path.join(logdir, 'app.log'), os.path.join(logdir, 'pipe.log')
    write(app, b'2026-11-20 10:00:00 ERROR one\n')
    os.mkfifo(fifo)
    run = run_tasks([task('glob', scan=True, paths=[os.path.join(logdir, '*.log')], **NO_LOGROTATE),
                     task('literal', scan=True, paths=[fifo], **NO_LOGROTATE)], timeout=120)
    glob_result, literal = run.result('glob'), run.result('literal')
    assert [e['path'] for e in glob_result['logs']] == [app] and glob_result['errors']['counts']['ERROR'] == 1
    assert glob_result['skipped_paths'] == [dict(path=fifo, reason='is not a regular file')]
    assert literal['failed'] and literal['msg'].startswith('paths: %s is not a regular file' % fifo), literal['msg']


# --- bad inputs --------------------------------------------------------------------------------

def test_bad_inputs_fail_clearly_and_change_nothing(logdir):
    app = os.path.join(logdir, 'app.log')
    write(app, b'x' * 5000)
    loop = os.path.join(logdir, 'loop.log')
    os.symlink(loop, loop)
    subdir = os.path.join(logdir, 'archive')
    os.makedirs(subdir)
    state = os.path.join(logdir, 'state.json')
    base = dict(NO_LOGROTATE, enforce=True, scan=True, state_file=state)
    state_is_a_directory = dict(base)
    state_is_a_directory['state_file'] = subdir
    before = file_state(logdir)
    run = run_tasks([
        task('size', paths=[app], policy=dict(max_size='5X'), **base),
        task('keep', paths=[app], policy=dict(max_size='1K', keep=-1), **base),
        task('loop', paths=[loop], policy=dict(max_size='1K'), **base),
        task('directory', paths=[subdir], policy=dict(max_size='1K'), **base),
        task('unmatched', paths=[os.path.join(logdir, 'nothing-*.log')], check_logrotate=False, ghost_scope='none'),
        task('state_dir', paths=[app], policy=dict(max_size='1K'), **state_is_a_directory),
    ])
    assert run.result('state_dir')['msg'].startswith('state_file %s is a directory' % subdir)
    assert "policy.max_size: size '5X' is not a size" in run.result('size')['msg']
    assert 'policy.keep is -1' in run.result('keep')['msg']
    assert run.result('loop')['msg'].startswith('paths: %s is a symlink loop' % loop)
    assert run.result('directory')['msg'].startswith('paths: %s is a directory' % subdir)
    for name in ('size', 'keep', 'loop', 'directory', 'state_dir'):
        assert run.result(name)['failed'] is True
        assert 'nothing was read or changed' in run.result(name)['msg']
    unmatched = run.result('unmatched')
    assert unmatched.get('failed') is not True
    assert unmatched['unmatched_paths'] == [os.path.join(logdir, 'nothing-*.log')] and unmatched['logs'] == []
    assert file_state(logdir) == before                    # no rotation, no state file


def test_unreadable_log_is_a_violation_and_the_run_goes_on(logdir):
    secret = os.path.join(logdir, 'secret.log')
    public = os.path.join(logdir, 'public.log')
    write(secret, b'ERROR hidden\n')
    os.chmod(secret, 0o600)
    write(public, b'ERROR visible\n')
    os.chmod(public, 0o644)
    run = run_tasks_as_nobody([task('audit', scan=True, paths=[os.path.join(logdir, '*.log')], **NO_LOGROTATE)],
                              logdir)
    result = run.result('audit')
    assert 'logs' in result, json.dumps(result)[:3000]
    logs = dict((e['path'], e) for e in result['logs'])
    assert codes(logs[secret]) == ['unreadable']
    assert 'Permission denied' in logs[secret]['violations'][0]['message']
    assert codes(logs[public]) == []
    assert result['errors']['counts']['ERROR'] == 1         # the readable log was still scanned
    assert open(secret, 'rb').read() == b'ERROR hidden\n'


def test_corrupt_state_file_is_reported_and_rebuilt(logdir):
    app = os.path.join(logdir, 'app.log')
    write_app_log(app, 2000, seed=3)
    state = os.path.join(logdir, 'cursors.json')
    write(state, b'{"schema_version": 1, "files": {"x": {"offset": "garbage"')
    run = run_tasks([task('rebuild', scan=True, paths=[app], state_file=state, **NO_LOGROTATE),
                     task('next', scan=True, paths=[app], state_file=state, **NO_LOGROTATE)])
    rebuilt, following = run.result('rebuild'), run.result('next')
    assert rebuilt['state']['status'] == 'rebuilt' and rebuilt['state']['written'] is True
    assert any('was corrupt' in n and 'may repeat' in n for n in rebuilt['notes'])
    assert any('was corrupt' in w for w in rebuilt['warnings'])
    assert rebuilt['bytes_scanned'] == os.path.getsize(app)
    assert rebuilt['errors']['counts']['ERROR'] == grep_count('ERROR', app)
    assert json.load(open(state))['files'][app]['offset'] == os.path.getsize(app)
    assert following['state']['status'] == 'loaded' and following['bytes_scanned'] == 0


def test_two_gigabytes_without_a_newline_do_not_break_the_scan(logdir):
    blob = os.path.join(logdir, 'blob.log')
    with open(blob, 'wb') as handle:                        # sparse: 2 GiB on paper, a few blocks on disk
        handle.truncate(2 * 1024 ** 3)
        for offset in (0, 1024 ** 3, 2 * 1024 ** 3 - 100):
            handle.seek(offset)
            handle.write(b' ERROR in one endless line ')
    result = run_tasks([task('blob', scan=True, paths=[blob], **NO_LOGROTATE)]).result('blob')
    assert result.get('failed') is not True, result.get('msg')
    assert result['bytes_scanned'] == 2 * 1024 ** 3
    assert result['errors']['counts']['ERROR'] == 1         # one line, as grep -c would count it
    assert result['errors']['lines_matched'] == 1
    assert any('built-in scanner' in n for n in result['notes'])


# --- the role ------------------------------------------------------------------------------------

def test_role_installs_the_policy_and_audits_against_it(logdir):
    logs = os.path.join(logdir, 'logs')
    os.makedirs(logs)
    app = os.path.join(logs, 'app.log')
    write_app_log(app, 500, seed=4)
    conf = os.path.join(logdir, 'logrotate.d', 'app')
    os.makedirs(os.path.dirname(conf))
    state = os.path.join(logdir, 'state', 'cursors.json')
    run = run_tasks([{'name': 'role', 'ansible.builtin.include_role': {'name': 'log_oversight'},
                      'vars': dict(log_oversight_paths=[os.path.join(logs, '*.log')], log_oversight_logrotate_file=conf,
                                   log_oversight_state_file=state, log_oversight_max_age_days=0)}])
    assert run.rc == 0, run.stderr[-2000:]
    install = run.result('Install logrotate, which rotates the logs and whose reading of its configuration the audit uses')
    assert not install.get('skipped') and not install.get('failed')      # the role installs logrotate (present here)
    assert subprocess.run(['dpkg-query', '-W', '-f', '${Status}', 'logrotate'], stdout=subprocess.PIPE,
                          check=True).stdout == b'install ok installed'
    result = run.result('log_oversight : Audit the logs, find ghost handles, review errors')
    assert not any(n.startswith('logrotate_missing') for n in result['notes'])
    assert result['logs'][0]['violations'] == [] and result['logs'][0]['logrotate_config'] == conf
    assert result['errors']['counts']['ERROR'] == grep_count('ERROR', app)
    text = open(conf).read()
    assert '"%s" {' % os.path.join(logs, '*.log') in text
    assert all(directive in text for directive in ('size 5M', 'rotate 10', 'compress', 'copytruncate'))
    assert 'maxage' not in text
    assert os.path.exists(state)

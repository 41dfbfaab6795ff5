"""The audit reads logrotate configurations as the installed logrotate does.

Three corpora, each compared log by log with what ``logrotate -d`` (private
state file) itself prints: logrotate's own upstream test configurations
(``../shared/logrotate-tests/test.tar.zst``, extracted to a temp dir), Debian's
packaged logrotate.d files, and every defect of the issue "logs as logrotate and
real applications write them" written as a small configuration.
"""

from __future__ import annotations

import glob
import gzip
import os
import re
import shutil
import subprocess

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.audit import audit_log
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_config import load_logrotate
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_reading import (
    find_logrotate,
    read_logrotate,
)
from tests.harness.playbook import REPO_ROOT

LOGROTATE = find_logrotate()
pytestmark = pytest.mark.skipif(LOGROTATE is None, reason='logrotate is not installed (apt-get install logrotate)')
POLICY = dict(max_size=None, max_size_bytes=None, keep=4, compress=True, delay_compress=False, max_age_days=None,
              rotated_pattern='auto')
SET_RE = re.compile(r'^rotating pattern: .*? \((?:(-?\d+) rotations|no old logs will be kept)\)$')
BYTES_RE = re.compile(r' (\d+) bytes \(')
# Debian 12's rsyslog package file (rsyslog is not installed on the test host); the others are read from /etc.
RSYSLOG = '''/var/log/syslog
/var/log/mail.info
/var/log/mail.warn
/var/log/mail.err
/var/log/mail.log
/var/log/daemon.log
/var/log/kern.log
/var/log/auth.log
/var/log/user.log
/var/log/lpr.log
/var/log/cron.log
/var/log/debug
/var/log/messages
{
\trotate 4
\tweekly
\tmissingok
\tnotifempty
\tcompress
\tdelaycompress
\tsharedscripts
\tpostrotate
\t\t/usr/lib/rsyslog/rsyslog-rotate
\tendscript
}
'''


def shared_corpus():
    """logrotate's test folder archive beside the project (../shared), or None."""
    for shared in (os.path.join(REPO_ROOT, '..', 'shared'), os.path.join(REPO_ROOT, '..', '..', 'shared')):
        archive = os.path.join(shared, 'logrotate-tests', 'test.tar.zst')
        if os.path.isfile(archive):
            return os.path.abspath(archive)
    return None


def logrotate_says(conf):
    """{log: (rotate, size bytes or None)} for every log ``logrotate -d`` considers, read from its output here."""
    state = conf + '.teststate'
    text = subprocess.run([LOGROTATE, '-d', '-s', state, conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=False).stdout.decode('utf-8', 'replace')
    considered, header, partial = {}, None, ''
    for line in text.splitlines():
        line = (partial + ' ' + line.strip()).strip()
        partial = ''
        match = SET_RE.match(line)
        if line.startswith('rotating pattern: ') and not match:
            partial = line  # a pattern over several lines
        elif match:
            size = BYTES_RE.search(line)
            header = (int(match.group(1) or 0), int(size.group(1)) if size else None)
        elif line.startswith('considering log ') and header:
            considered[os.path.realpath(line[len('considering log '):])] = header
    return considered, text


def audit_all(conf, logs, policy=None):
    stanzas, dummy, dummy = load_logrotate(conf, '')
    reading = read_logrotate(conf, '', stanzas, LOGROTATE)
    return dict((os.path.realpath(log), audit_log(log, policy or POLICY, reading)) for log in logs)


def assert_agreement(conf, logs):
    """Every log: covered exactly when logrotate considers it, with logrotate's rotate count and size."""
    considered, text = logrotate_says(conf)
    entries = audit_all(conf, logs)
    covered = rejected = 0
    for real, entry in entries.items():
        codes = [v['code'] for v in entry['violations']]
        if real in considered:
            rotate, size = considered[real]
            assert 'no_logrotate_policy' not in codes and 'invalid_logrotate_policy' not in codes, (conf, real, text)
            assert entry['logrotate']['rotate'] == rotate, (conf, real, text)
            assert entry['logrotate'].get('size') == size, (conf, real, entry['logrotate'], text)
            covered += 1
        else:
            assert ('no_logrotate_policy' in codes) != ('invalid_logrotate_policy' in codes), (conf, real, codes, text)
            rejected += 'invalid_logrotate_policy' in codes
    return covered, rejected


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        handle.write(text)


# --- logrotate's upstream test configurations -----------------------------------------------------------

def corpus_logs(text, directory):
    """Create the logs and olddirs a test configuration names (the test scripts would); return the logs."""
    logs = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == 'olddir':
            target = words[1].strip('"')
            os.makedirs(target if os.path.isabs(target) else os.path.join(directory, target), exist_ok=True)
            continue
        if not line.lstrip().startswith(directory) and '{' not in line:
            continue
        for word in line.split('{')[0].split():
            word = word.strip('"')
            if word.startswith(directory) and not glob.has_magic(word) and word not in logs:
                write(word, 'a line of log\n' * 100)
                logs.append(word)
    return logs


def test_agrees_with_logrotate_on_its_upstream_test_configurations(tmp_path):
    archive = shared_corpus()
    if archive is None:
        pytest.skip('logrotate upstream test corpus absent: ../shared/logrotate-tests/test.tar.zst beside the project')
    if not shutil.which('zstd'):
        pytest.skip('zstd is not installed: cannot extract ../shared/logrotate-tests/test.tar.zst')
    subprocess.run(['tar', '--zstd', '-xf', archive, '-C', str(tmp_path)], check=True)
    configs = sorted(glob.glob(str(tmp_path / 'test' / 'test-config.*.in')))
    assert len(configs) >= 100
    totals = dict(configs=0, covered=0, rejected=0)
    for template in configs:
        directory = str(tmp_path / 'runs' / os.path.basename(template)[:-3])
        os.makedirs(directory)
        with open(template, encoding='utf-8', errors='replace') as handle:
            text = handle.read().replace('&DIR&', directory).replace('&USER&', '"root"').replace(
                '&GROUP&', '"root"').replace('&ROOTGROUP&', '"root"')
        conf = os.path.join(directory, 'logrotate.conf')
        write(conf, text)
        logs = corpus_logs(text, directory)
        covered, rejected = assert_agreement(conf, logs)
        totals['configs'] += 1
        totals['covered'] += covered
        totals['rejected'] += rejected
    print('logrotate upstream corpus: %(configs)d configurations, %(covered)d logs covered as logrotate says, '
          '%(rejected)d reported invalid_logrotate_policy' % totals)
    assert totals['covered'] >= 80 and totals['rejected'] >= 3


# --- Debian's packaged logrotate.d files ----------------------------------------------------------------

@pytest.mark.parametrize('name', ['rsyslog', 'nginx', 'postgresql-common', 'apt', 'dpkg'])
def test_agrees_with_logrotate_on_debian_packaged_files(tmp_path, name):
    if name != 'rsyslog' and not os.path.isfile('/etc/logrotate.d/' + name):
        pytest.skip('/etc/logrotate.d/%s absent: the %s package is not installed here' % (name, name))
    text = RSYSLOG
    if name != 'rsyslog':
        with open('/etc/logrotate.d/' + name) as handle:
            text = handle.read()
    root = str(tmp_path)
    text = text.replace('/var/log/', root + '/var/log/')
    logs = []
    for pattern in re.findall(re.escape(root) + r'/var/log/\S+', text):
        pattern = pattern.strip('"{')
        path = pattern.replace('*', 'main') if glob.has_magic(pattern) else pattern
        write(path, 'x' * 2048)
        logs.append(path)
    conf = os.path.join(root, 'logrotate.conf')
    write(conf, 'weekly\nrotate 4\ncreate\n' + text)
    covered, rejected = assert_agreement(conf, logs)
    assert covered == len(logs) and rejected == 0


# --- each defect of the issue, on a small configuration ---------------------------------------------------

@pytest.mark.parametrize('stanza, expected', [  # logrotate 3.21's reasons, with file and line
    ('rotate 1 # keep one', "logrotate.conf:2: bad rotation count '1 # keep one'"),
    ('monthly 31', 'logrotate.conf:2: lines must begin with a keyword or a filename'),
    ('size 10MB', "logrotate.conf:2: unknown unit 'B'"),
    ('size 2m', "logrotate.conf:2: unknown unit 'm'"),
    ('maxsize 1.5M', "logrotate.conf:2: bad size '1.5'"),
])
def test_a_stanza_logrotate_rejects_is_invalid_never_coverage(tmp_path, stanza, expected):
    log = str(tmp_path / 'app.log')
    write(log, 'x\n')
    conf = str(tmp_path / 'logrotate.conf')
    write(conf, '%s {\n    %s\n    rotate 4\n}\n' % (log, stanza))
    considered, text = logrotate_says(conf)
    entry = audit_all(conf, [log])[os.path.realpath(log)]
    if os.path.realpath(log) in considered:  # this logrotate accepts it: then so does the audit
        assert 'logrotate' in entry, text
        return
    invalid = [v for v in entry['violations'] if v['code'] == 'invalid_logrotate_policy']
    assert invalid and expected in invalid[0]['message'], (entry['violations'], text)


def test_crlf_config_and_duplicate_entry_are_as_logrotate_reads_them(tmp_path):
    crlf, dup, other = (str(tmp_path / n) for n in ('crlf.log', 'dup.log', 'other.log'))
    for log in (crlf, dup, other):
        write(log, 'x\n')
    confdir = tmp_path / 'conf.d'
    write(str(confdir / 'a'), '%s {\r\n    rotate 4\r\n}\r\n' % crlf)
    write(str(confdir / 'b'), '%s {\n    rotate 4\n}\n' % dup)
    write(str(confdir / 'c'), '%s {\n    rotate 2\n}\n%s {\n    rotate 4\n}\n' % (dup, other))
    conf = str(tmp_path / 'logrotate.conf')
    write(conf, 'include %s\n' % confdir)
    covered, rejected = assert_agreement(conf, [crlf, dup, other])
    entries = audit_all(conf, [crlf])
    assert 'invalid_logrotate_policy' in [v['code'] for v in entries[os.path.realpath(crlf)]['violations']]
    # logrotate 3.21 drops the duplicate stanza of file c ("found error in file c") but keeps the rest of c
    assert covered == 2 and rejected == 1


@pytest.mark.parametrize('directives, size', [
    ('size 100k\n    daily', None),            # the interval given last wins
    ('size +100k', 102400),
    ('size=100k', 102400),
    ('rotate 2', 1048576),                     # no size, no interval: logrotate's built-in 1 MiB
    ('daily\n    size 100k', 102400),
])
def test_size_is_read_as_logrotate_reads_it(tmp_path, directives, size):
    log = str(tmp_path / 'app.log')
    write(log, 'x\n')
    conf = str(tmp_path / 'logrotate.conf')
    write(conf, '%s {\n    %s\n}\n' % (log, directives))
    assert assert_agreement(conf, [log]) == (1, 0)
    assert audit_all(conf, [log])[os.path.realpath(log)]['logrotate'].get('size') == size


def test_globals_include_and_taboo_names_follow_logrotate(tmp_path):
    first, second, taboo = (str(tmp_path / n) for n in ('first.log', 'second.log', 'taboo.log'))
    for log in (first, second, taboo):
        write(log, 'x\n')
    confdir = tmp_path / 'conf.d'
    write(str(confdir / 'a'), 'rotate 7\n%s {\n    daily\n}\n' % first)   # a global in a drop-in
    write(str(confdir / 'b'), '%s {\n    daily\n}\n' % second)
    write(str(confdir / 'c.dpkg-new'), '%s {\n    daily\n}\n' % taboo)
    conf = str(tmp_path / 'logrotate.conf')
    write(conf, 'rotate 3\ninclude %s\nrotate 9\n' % confdir)
    assert assert_agreement(conf, [first, second, taboo]) == (2, 0)
    entries = audit_all(conf, [first, second, taboo])
    considered, dummy = logrotate_says(conf)
    assert entries[os.path.realpath(second)]['logrotate']['rotate'] == considered[os.path.realpath(second)][0]
    assert [v['code'] for v in entries[os.path.realpath(taboo)]['violations']][-1] == 'no_logrotate_policy'


def test_rotated_versions_are_found_where_logrotate_puts_them(tmp_path):
    olddir = tmp_path / 'old'
    log = str(tmp_path / 'app.log')
    write(log, 'x\n')
    for name in ('app-20260101-1767225600.log.gz', 'app-20260102-1767312000.log.gz', 'app-20260103-1767398400.log.gz'):
        write(str(olddir / name), '')
    write(str(tmp_path / 'app.log.1'), '')  # not a version under this configuration
    conf = str(tmp_path / 'logrotate.conf')
    write(conf, '%s {\n    rotate 2\n    dateext\n    dateformat -%%Y%%m%%d-%%s\n    extension .log\n    olddir %s\n'
          '    compress\n    copytruncate\n}\n' % (log, olddir))
    policy = dict(POLICY, keep=2)
    entry = audit_all(conf, [log], policy)[os.path.realpath(log)]
    assert [v['name'] for v in entry['versions']] == ['app-20260103-1767398400.log.gz', 'app-20260102-1767312000.log.gz',
                                                      'app-20260101-1767225600.log.gz']
    assert [v['code'] for v in entry['violations']] == ['too_many_versions']
    # and after a real rotation, the new version is found too
    subprocess.run([LOGROTATE, '-f', '-s', str(tmp_path / 'state'), conf], check=True)
    entry = audit_all(conf, [log], policy)[os.path.realpath(log)]
    assert sorted(v['name'] for v in entry['versions']) == sorted(os.listdir(str(olddir)))
    assert entry['rotated_versions'] == 2  # logrotate added one and removed the two oldest (rotate 2)
    assert gzip.open(str(olddir / entry['versions'][0]['name'])).read() == b'x\n'


# --- bad input ------------------------------------------------------------------------------------------

def test_bad_configurations_are_reported_with_logrotates_reason(tmp_path):
    good = str(tmp_path / 'good.log')
    open_ended = str(tmp_path / 'open.log')
    for log in (good, open_ended):
        write(log, 'x\n')
    confdir = tmp_path / 'conf.d'
    write(str(confdir / 'good'), '%s {\n    rotate 4\n}\n' % good)
    write(str(confdir / 'open'), '%s {\n    rotate 4\n' % open_ended)            # unterminated {
    with open(str(confdir / 'binary'), 'wb') as handle:
        handle.write(b'\x00\x01\x7fELF\xff\xfe' * 100)
    conf = str(tmp_path / 'logrotate.conf')
    write(conf, 'include %s\ninclude %s\ninclude %s\n' % (confdir, tmp_path / 'missing.d', conf))  # missing, loop
    stanzas, dummy, dummy = load_logrotate(conf, '')
    reading = read_logrotate(conf, '', stanzas, LOGROTATE)
    text = '\n'.join(reading.messages)
    assert 'missing.d' in text and 'binary' in text and 'nesting too deep' in text
    assert_agreement(conf, [good, open_ended])

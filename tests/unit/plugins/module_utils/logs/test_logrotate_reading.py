"""Reading logrotate's debug output (logrotate 3.21's exact wording)."""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_reading import find_logrotate, parse_debug
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.versions import version_rule

OUTPUT = '''warning: logrotate in debug mode does nothing except printing debug messages!

reading config file c2
error: c2:2 bad rotation count '1 # keep one'
error: found error in /srv/a.log , skipping
removing last 1 log configs
note: 'daily' overrides previously specified 'size'
reading config file c
error: c:1 duplicate log entry for /srv/dup.log
error: found error in file c, skipping
error: c3:16 error verifying olddir path /srv/old: No such file or directory
removing last 1 log configs

Handling 2 logs

rotating pattern: /srv/b.log /srv/b2.log  after 1 days (no old logs will be kept)
olddir is old, empty log files are not rotated, only log files >= 1024 bytes are rotated, log files >= 2097152 are rotated earlier, old logs are removed
considering log /srv/b.log
  log needs rotating
considering log /srv/b2.log
  log /srv/b2.log does not exist -- skipping

rotating pattern: /srv/x1.log
/srv/x2.log
 102400 bytes (3 rotations)
empty log files are rotated, old logs are removed
considering log /srv/x1.log
  log needs rotating
considering log /srv/x2.log
  log needs rotating
rotating log /srv/x1.log, log->rotateCount is 3
dateext suffix '-20261205'
glob pattern '-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'
compressing log with: /bin/gzip
renaming /srv/x1.log.1.gz to /srv/x1.log.2.gz (rotatecount 3, logstart 1, i 1),
renaming /srv/x1.log to /srv/x1.log.1
rotating log /srv/x2.log, log->rotateCount is 3
dateext suffix '-20261205'
glob pattern '-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'
copying /srv/x2.log to /srv/old/x2-20261205.log
truncating /srv/x2.log
compressing log with: /bin/gzip
'''


def test_log_sets_criteria_and_flags():
    sets, dummy, dummy = parse_debug(OUTPUT)
    first, second = sets
    assert first['criterion'] == 'daily' and first['rotate'] == 0 and first['size_bytes'] is None
    assert (first['olddir'], first['ifempty'], first['minsize'], first['maxsize']) == ('old', False, 1024, 2097152)
    assert first['logs'] == ['/srv/b.log']
    assert second['pattern'] == '/srv/x1.log /srv/x2.log' and second['logs'] == ['/srv/x1.log', '/srv/x2.log']
    assert (second['criterion'], second['size_bytes'], second['rotate']) == ('size', 102400, 3)


def test_plans_per_log_of_a_set():
    plans = parse_debug(OUTPUT)[0][1]['plans']
    assert plans['/srv/x1.log'] == dict(target='/srv/x1.log.1', copytruncate=False, compress=True, delaycompress=True,
                                        suffix='-20261205', glob='-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]')
    assert plans['/srv/x2.log']['target'] == '/srv/old/x2-20261205.log'
    assert plans['/srv/x2.log']['copytruncate'] is True and plans['/srv/x2.log']['delaycompress'] is False


def test_rejections_carry_logrotates_reasons():
    dummy, rejected, messages = parse_debug(OUTPUT)
    assert rejected[0] == dict(kind='stanza', pattern='/srv/a.log', reasons=["c2:2: bad rotation count '1 # keep one'"])
    assert rejected[1] == dict(kind='file', source='c', reasons=['c:1: duplicate log entry for /srv/dup.log'])
    assert rejected[2]['source'] == 'c3' and 'error verifying olddir path' in rejected[2]['reasons'][0]
    assert len(messages) == 5


def test_version_rules_from_the_planned_name():
    directory, regex = version_rule('/srv/x2.log', dict(target='/srv/old/x2-20261205.log', suffix='-20261205',
                                                        glob='-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'))
    assert directory == '/srv/old'
    assert regex.match('x2-20260101.log.gz') and not regex.match('x2.log.1') and not regex.match('x2-2026.log')
    directory, regex = version_rule('/srv/x1.log', dict(target='/srv/x1.log.1'))
    assert regex.match('x1.log.12.gz').groups() == ('12', '', '.gz')
    assert version_rule('/srv/x1.log', dict(target='/srv/x1.log.1', suffix='-20261205'))[1].match('x1.log.2')
    assert version_rule('/srv/a.log', dict(target=None)) is None


def test_an_explicit_logrotate_path_must_be_an_executable_file(tmp_path):
    script = tmp_path / 'logrotate'
    script.write_text('#!/bin/sh\n')
    assert find_logrotate(str(tmp_path / 'absent')) is None
    assert find_logrotate(str(tmp_path)) is None                 # a directory
    assert find_logrotate(str(script)) is None                   # not executable
    script.chmod(0o755)
    assert find_logrotate(str(script)) == str(script)

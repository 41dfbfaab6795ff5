"""enforce rotates through logrotate, with the stanza that covers the log and a state file of its own."""

from __future__ import annotations

import gzip
import os
import subprocess

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.audit import audit_log
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.enforcement import enforce
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_config import load_logrotate
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.logrotate_reading import (
    find_logrotate,
    read_logrotate,
)

LOGROTATE = find_logrotate()
pytestmark = pytest.mark.skipif(LOGROTATE is None, reason='logrotate is not installed (apt-get install logrotate)')
POLICY = dict(max_size='1K', max_size_bytes=1024, keep=3, compress=True, delay_compress=False, max_age_days=None,
              rotated_pattern='auto')


def run_enforce(tmp_path, logs, conf, check_mode=False, conf_dir=''):
    stanzas, dummy, dummy = load_logrotate(conf, conf_dir)
    reading = read_logrotate(conf, '', stanzas, LOGROTATE)
    entries = [audit_log(log, POLICY, reading) for log in logs]
    actions, diff, executed = [], [], []
    notes = enforce(entries, POLICY, dict(method='copytruncate', postrotate_command=None, check_mode=check_mode,
                                          reading=reading, logrotate=LOGROTATE, logrotate_conf=conf,
                                          logrotate_state=str(tmp_path / 'state' / 'logrotate.status')),
                    actions, diff, executed)
    return actions, notes


def test_an_oversized_covered_log_is_rotated_by_logrotate_only(tmp_path):
    app, other, loose = (str(tmp_path / n) for n in ('app.log', 'other.log', 'loose.log'))
    for path in (app, other, loose):
        with open(path, 'w') as handle:
            handle.write('line\n' * 1000)                       # 5 KB, over 1K
    conf = str(tmp_path / 'logrotate.conf')
    with open(conf, 'w') as handle:
        handle.write('compress\n"%s" "%s" {\n    rotate 3\n    create\n    postrotate\n        touch %s/reopened\n'
                     '    endscript\n}\n' % (app, other, tmp_path))
    planned, dummy = run_enforce(tmp_path, [app], conf, check_mode=True)
    assert [(a['action'], a['status']) for a in planned] == [('logrotate', 'planned')]
    assert os.path.getsize(app) == 5000                          # check mode touched nothing
    actions, notes = run_enforce(tmp_path, [app, loose], conf)
    assert [(a['action'], a['path'], a['status']) for a in actions][0] == ('logrotate', app, 'done')
    assert os.path.getsize(app) == 0 and os.path.exists(str(tmp_path / 'reopened'))   # create + postrotate ran
    assert gzip.open(app + '.1.gz').read() == b'line\n' * 1000   # the global "compress" applied
    assert os.path.getsize(other) == 5000                        # the other log of the stanza: not rotated
    assert os.path.exists(str(tmp_path / 'state' / 'logrotate.status'))
    # loose.log has no stanza: the module's own rotation, said in the notes
    assert [a['action'] for a in actions if a['path'] == loose] == ['rotate']
    assert any(n.startswith(loose + ': no logrotate stanza covers it') for n in notes)
    again, dummy = run_enforce(tmp_path, [app], conf)
    assert again == []                                           # in policy now: nothing to do


def logrotate_rotate_count(conf, log):
    """The rotate count ``logrotate -d`` itself prints for ``log`` (the truth the audit and the copy must agree with)."""
    text = subprocess.run([LOGROTATE, '-d', '-s', '/dev/null', conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=False).stdout.decode()
    block = text.split('rotating pattern: %s ' % log, 1)[1]
    return int(block.split('(', 1)[1].split(' rotations', 1)[0])


def test_globals_carried_from_one_drop_in_into_the_next_are_enforced(tmp_path):
    """logrotate 3.21 carries a drop-in's globals into the drop-ins read after it: the private copy does the same."""
    first, second = str(tmp_path / 'first.log'), str(tmp_path / 'second.log')
    for path in (first, second):
        with open(path, 'w') as handle:
            handle.write('line\n' * 1000)
    confdir = tmp_path / 'conf.d'
    confdir.mkdir()
    (confdir / 'a').write_text('rotate 7\ncompress\n%s {\n    size 1k\n}\n' % first)     # globals of drop-in a
    (confdir / 'a.dpkg-new').write_text('rotate 2\nnocompress\n')                    # a taboo name: not read
    (confdir / 'b').write_text('%s {\n    size 1k\n    create\n}\n' % second)         # inherits rotate 7, compress
    conf = str(tmp_path / 'logrotate.conf')
    with open(conf, 'w') as handle:
        handle.write('rotate 3\ninclude %s\n' % confdir)
    assert logrotate_rotate_count(conf, second) == 7
    stanzas, dummy, dummy = load_logrotate(conf, str(confdir))
    assert audit_log(second, POLICY, read_logrotate(conf, '', stanzas, LOGROTATE))['logrotate']['rotate'] == 7
    actions, dummy = run_enforce(tmp_path, [second], conf, conf_dir=str(confdir))
    assert [(a['action'], a['path'], a['status']) for a in actions] == [('logrotate', second, 'done')], actions
    assert os.path.getsize(second) == 0 and gzip.open(second + '.1.gz').read() == b'line\n' * 1000  # a's compress
    assert os.path.getsize(first) == 5000                                            # not rotated


def test_globals_the_copy_cannot_reproduce_are_refused_clearly(tmp_path):
    """An include nested in a drop-in sets a global for the next drop-in: the copy would read it otherwise, so nothing
    is rotated and the action says why."""
    second = str(tmp_path / 'second.log')
    with open(second, 'w') as handle:
        handle.write('line\n' * 1000)
    extra, confdir = tmp_path / 'extra.d', tmp_path / 'conf.d'
    extra.mkdir()
    confdir.mkdir()
    (extra / 'g').write_text('rotate 5\n')
    (confdir / 'a').write_text('include %s\n' % extra)
    (confdir / 'b').write_text('%s {\n    size 1k\n}\n' % second)
    conf = str(tmp_path / 'logrotate.conf')
    with open(conf, 'w') as handle:
        handle.write('include %s\n' % confdir)
    assert logrotate_rotate_count(conf, second) == 5
    actions, dummy = run_enforce(tmp_path, [second], conf, conf_dir=str(confdir))
    assert [(a['action'], a['status']) for a in actions] == [('logrotate', 'failed')]
    error = actions[0]['error']
    assert error.startswith('a private copy of the stanza of %s is not read by logrotate as the real configuration' % second)
    assert 'rotate 5' in error and 'the copy: rotate 0' in error and 'nothing was rotated' in error, error
    assert os.path.getsize(second) == 5000 and not os.path.exists(second + '.1')    # nothing changed

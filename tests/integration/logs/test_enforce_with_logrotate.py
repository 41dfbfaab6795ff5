"""enforce rotates through logrotate, with the stanza that covers the log and a state file of its own."""

from __future__ import annotations

import gzip
import os

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


def run_enforce(tmp_path, logs, conf, check_mode=False):
    stanzas, dummy, dummy = load_logrotate(conf, '')
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

"""Tracebacks as Python writes them, CRLF lines and NUL bytes, counted like grep."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs import scan as logscan
from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.scan import DEFAULT_PATTERNS, Scanner

GREP = shutil.which('grep')
WRITER = r'''
import logging, sys
logging.basicConfig(filename=sys.argv[1], format='%(asctime)s %(levelname)s %(message)s', level=logging.INFO)
log = logging.getLogger('app')
try:
    try:
        raise KeyError('id')
    except KeyError as exc:
        raise RuntimeError('duplicate key value violates unique constraint "orders_pkey"\n'
                           'DETAIL:  Key (id)=(1) already exists.') from exc
except RuntimeError:
    try:
        raise ValueError('save failed')
    except ValueError:
        log.exception('saving order 1 failed')
log.info('between the two')
try:
    raise ExceptionGroup('many', [ValueError('a'), TypeError('b')])
except ExceptionGroup:
    log.exception('batch failed')
log.error('the line right after the group')
log.info('done')
'''


@pytest.fixture(params=['grep', 'python'])
def grep(request, monkeypatch):
    monkeypatch.setattr(logscan, 'SMALL_RANGE_BYTES', 0)
    return GREP if request.param == 'grep' else None


def review(path, grep):
    scanner = Scanner(DEFAULT_PATTERNS, grep_path=grep, fmt='text')
    scanner.scan([(path, None, [])])
    return scanner.review.result(20)


@pytest.mark.skipif(sys.version_info < (3, 11), reason='ExceptionGroup needs Python 3.11')
def test_chained_multi_line_message_and_exception_group_tracebacks(tmp_path, grep):
    log = str(tmp_path / 'app.log')
    subprocess.run([sys.executable, '-c', WRITER, log], check=True)
    result = review(log, grep)
    messages = dict((m['message'], m['count']) for m in result['top_messages'])
    assert result['tracebacks'] == 2, open(log).read()
    assert messages['Traceback: ValueError: save failed'] == 1          # one event for the whole chain
    assert messages['Traceback: ExceptionGroup: many (<n> sub-exceptions)'] == 1
    assert messages['ERROR the line right after the group'] == 1         # not swallowed by the group
    assert result['events'] == 5  # 3 ERROR lines and 2 tracebacks


def test_crlf_lines_give_clean_messages(tmp_path, grep):
    log = str(tmp_path / 'win.log')
    with open(log, 'wb') as handle:
        handle.write(b'2026-11-20 10:00:00 ERROR disk full\r\n' * 3)
        handle.write(b'2026-11-20 10:00:01 ERROR failed\r\nTraceback (most recent call last):\r\n'
                     b'  File "a.py", line 1, in f\r\nValueError: bad\r\n2026-11-20 10:00:02 INFO ok\r\n')
    result = review(log, grep)
    messages = [m['message'] for m in result['top_messages']]
    assert messages == ['ERROR disk full', 'ERROR failed', 'Traceback: ValueError: bad']
    assert all('\r' not in m['sample'] for m in result['top_messages'])


def test_nul_bytes_are_counted_like_grep_a(tmp_path, grep):
    log = str(tmp_path / 'nul.log')
    with open(log, 'wb') as handle:
        handle.write(b'2026-11-20 10:00:00 ERROR one\n\x00\x00\x00 ERROR two after NULs\nok\n' * 5)
    result = review(log, grep)
    expected = int(subprocess.run([GREP, '-aci', 'error', log], stdout=subprocess.PIPE, check=True).stdout)
    assert result['counts']['ERROR'] == expected == 10

"""Structured and known log formats are counted by the record's own level, not by the word "error"."""

from __future__ import annotations

import json
import shutil

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.scan import Scanner

GREP = shutil.which('grep')


def review(path, fmt='auto', grep=GREP):
    scanner = Scanner(['ERROR', 'CRITICAL', 'FATAL', 'Traceback'], grep_path=grep, fmt=fmt)
    scanner.scan([(path, None, [])])
    return scanner.review.result(10), scanner.files[0]


@pytest.fixture(params=['grep', 'python'])
def grep(request):
    return GREP if request.param == 'grep' else None


def test_json_lines_where_every_line_says_error(tmp_path, grep):
    log = str(tmp_path / 'app.json')
    with open(log, 'w') as handle:
        for number in range(50000):
            level = 'error' if number % 500 == 0 else 'info'
            handle.write(json.dumps({'time': '2026-11-20T10:00:00Z', 'level': level, 'msg': 'request %d' % number,
                                     'error': None}) + '\n')
        handle.write('{"level":50,"time":1763632800000,"msg":"pino error","pid":1}\n')       # pino
        handle.write('{"level":60,"msg":"pino fatal"}\n')
        handle.write('{"levelname": "ERROR", "message": "python-json-logger", "error": "x"}\n')
        handle.write('{"severity": "CRITICAL", "message": "gcp style"}\n')
        handle.write('["error", "not an object"]\n')                                     # no level: not counted
        handle.write('{"level": "error", "msg": "cut in the mid\n')                      # not JSON: not counted
    result, entry = review(log, grep=grep)
    assert entry['format'] == 'json'
    assert result['levels'] == dict(error=100 + 2, fatal=1, critical=1)
    assert result['counts']['ERROR'] == 0 and result['lines_matched'] == 104
    assert result['top_messages'][0]['message'] == 'request <n>' and result['top_messages'][0]['count'] == 100


def test_a_huge_single_line_json_record_counts_once(tmp_path, grep):
    log = str(tmp_path / 'big.json')
    with open(log, 'w') as handle:
        handle.write('{"level": "error", "msg": "big", "payload": "%s"}\n' % ('e' * (100 * 1024 * 1024)))
        handle.write('{"level": "info", "msg": "after"}\n')
        handle.write('{"level": "error", "msg": "small"}\n')
    result, entry = review(log, grep=grep)
    assert entry['format'] == 'json' and result['levels'] == dict(error=2)


def test_syslog_priorities(tmp_path, grep):
    log = str(tmp_path / 'syslog')
    with open(log, 'w') as handle:
        handle.write('<11>1 2026-11-20T10:00:00Z web app 123 - - disk write failed\n')          # user.err
        handle.write('<30>Nov 20 10:00:01 web app[123]: retrying after error 5\n')              # daemon.info
        handle.write('<130>Nov 20 10:00:02 web kernel: something critical happened\n')          # local0.crit
        handle.write('<14>Nov 20 10:00:03 web app: ERROR in the text only\n')                   # user.info
    result, entry = review(log, grep=grep)
    assert entry['format'] == 'syslog' and result['levels'] == dict(error=1, critical=1)


def test_postgresql_log(tmp_path, grep):
    log = str(tmp_path / 'postgresql-16-main.log')
    with open(log, 'w') as handle:
        handle.write('2026-11-20 10:00:00.123 UTC [1234] LOG:  database system is ready to accept connections\n')
        handle.write('2026-11-20 10:00:01.001 UTC [1240] app@shop ERROR:  relation "orders" does not exist at character 15\n')
        handle.write('2026-11-20 10:00:01.001 UTC [1240] app@shop STATEMENT:  SELECT * FROM orders WHERE error = 1\n')
        handle.write('2026-11-20 10:00:02.500 UTC [1241] app@shop FATAL:  password authentication failed for user "app"\n')
        handle.write('2026-11-20 10:00:03.000 UTC [1234] LOG:  background worker "logical replication launcher" (PID 9) '
                     'exited with exit code 1 after an error\n')
    result, entry = review(log, grep=grep)
    assert entry['format'] == 'postgresql' and result['levels'] == dict(error=1, fatal=1)


def test_nginx_error_log(tmp_path, grep):
    log = str(tmp_path / 'error.log')
    with open(log, 'w') as handle:
        handle.write('2026/11/20 10:00:00 [notice] 1#1: start worker processes\n')
        handle.write('2026/11/20 10:00:01 [error] 29#29: *1 open() "/usr/share/nginx/html/x" failed (2: No such file or '
                     'directory), client: 172.17.0.1, server: localhost, request: "GET /x HTTP/1.1", host: "localhost"\n')
        handle.write('2026/11/20 10:00:02 [warn] 29#29: *2 an upstream response is buffered (error_page)\n')
        handle.write('2026/11/20 10:00:03 [crit] 29#29: *3 SSL_do_handshake() failed\n')
    result, entry = review(log, grep=grep)
    assert entry['format'] == 'nginx_error' and result['levels'] == dict(error=1, critical=1)


def test_text_stays_a_pattern_search_and_format_can_be_forced(tmp_path):
    log = str(tmp_path / 'app.log')
    with open(log, 'w') as handle:
        handle.write('{"level": "info", "msg": "an ERROR word in json"}\n' * 3)
    result, entry = review(log, fmt='text')
    assert entry['format'] == 'text' and result['counts']['ERROR'] == 3 and result['levels'] == {}

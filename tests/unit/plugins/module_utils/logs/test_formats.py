"""Format detection and the level of one record."""

from __future__ import annotations

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs.formats import detect, level_of


@pytest.mark.parametrize('head, expected', [
    (b'{"level": "info", "msg": "a"}\n{"level": "error", "msg": "b"}\n', 'json'),
    (b'<30>Nov 20 10:00:01 web app[1]: ok\n<11>Nov 20 10:00:02 web app[1]: bad\n', 'syslog'),
    (b'2026-11-20 10:00:00.123 UTC [1] LOG:  ready\n2026-11-20 10:00:01.000 UTC [2] ERROR:  bad\n', 'postgresql'),
    (b'2026/11/20 10:00:00 [notice] 1#1: start\n2026/11/20 10:00:01 [error] 1#1: *1 bad\n', 'nginx_error'),
    (b'2026-11-20 10:00:00 ERROR plain text\n', 'text'),
    (b'', 'text'),
])
def test_detect(head, expected):
    assert detect(head) == expected


@pytest.mark.parametrize('fmt, line, level', [
    ('json', b'{"level": "ERROR", "msg": "x", "error": null}', 'error'),
    ('json', b'{"level": "info", "msg": "x", "error": "boom"}', None),
    ('json', b'{"lvl": "crit"}', 'critical'),
    ('json', b'{"level": 50}', 'error'),
    ('json', b'{"level": 60}', 'fatal'),
    ('json', b'{"level": true}', None),
    ('json', b'{"log": {"level": "error"}}', 'error'),
    ('json', b'[1, 2]', None),
    ('json', b'not json "level": "error"', None),
    ('json', b'{"level": "error", "x": "' + b'y' * (2 * 1024 * 1024) + b'"}', 'error'),
    ('syslog', b'<3>kernel: x', 'error'),
    ('syslog', b'<131>x', 'error'),
    ('syslog', b'<134>x error', None),
    ('postgresql', b'2026-11-20 10:00:00 UTC [1] PANIC:  x', 'panic'),
    ('postgresql', b'2026-11-20 10:00:00 UTC [1] LOG:  an error', None),
    ('nginx_error', b'2026/11/20 10:00:00 [emerg] 1#1: x', 'emergency'),
    ('nginx_error', b'2026/11/20 10:00:00 [warn] 1#1: error_page', None),
])
def test_level_of(fmt, line, level):
    assert level_of(fmt, line)[0] == level


def test_json_message_is_the_records_msg():
    assert level_of('json', b'{"level": "error", "msg": "payment failed"}\r') == ('error', 'payment failed')

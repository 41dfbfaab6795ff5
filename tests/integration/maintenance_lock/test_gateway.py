"""The nginx maintenance gateway: Debian's nginx with the role's snippets, on a loopback port.

With the flag file, writes get 503 + JSON + Retry-After, reads pass,
administrators (allow-listed network, or the admin header with the token)
pass; without it everything passes. The last test drives the flag through
maintenance_lock itself.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.integration.maintenance_lock.conftest import (
    ADMIN_HEADER,
    ADMIN_SOURCE,
    ADMIN_TOKEN,
    GATEWAY_MESSAGE,
    RETRY_AFTER_S,
    run_lock,
)
from tests.harness.playbook import run_tasks

WRITES = ('POST', 'PUT', 'PATCH', 'DELETE')
READS = ('GET', 'HEAD', 'OPTIONS')


@pytest.fixture
def flagged(gateway):
    gateway.flag(True)
    yield gateway
    gateway.flag(False)


def test_writes_get_503_json_and_retry_after_while_flagged(flagged):
    before = len(flagged.backend.seen)
    for method in WRITES:
        status, headers, body = flagged.request(method, body=b'{"qty": 1}', headers={'Content-Type': 'application/json'})
        assert status == 503, method
        assert headers['retry-after'] == str(RETRY_AFTER_S)
        assert headers['content-type'].startswith('application/json')
        payload = json.loads(body)
        assert payload == dict(status='maintenance', message=GATEWAY_MESSAGE, retry_after_s=RETRY_AFTER_S)
    assert len(flagged.backend.seen) == before  # no write reached the application


def test_reads_pass_while_flagged(flagged):
    for method in READS:
        status, headers, body = flagged.request(method, path='/api/orders?page=2')
        assert status == 200, method
        assert 'retry-after' not in headers
        if method != 'HEAD':
            assert json.loads(body)['method'] == method
    assert flagged.backend.seen[-3:] == [(m, '/api/orders?page=2') for m in READS]


def test_admins_write_while_flagged(flagged):
    status, headers, body = flagged.request('POST', body=b'x', headers={ADMIN_HEADER: ADMIN_TOKEN})
    assert status == 200 and json.loads(body)['method'] == 'POST'
    status, headers, body = flagged.request('DELETE', path='/api/orders/7', source=ADMIN_SOURCE)
    assert status == 200 and json.loads(body)['path'] == '/api/orders/7'
    # A wrong or empty token is not an administrator.
    for token in ('wrong-token', '', ADMIN_TOKEN + 'x', ADMIN_TOKEN.upper()):
        status, headers, body = flagged.request('POST', body=b'x', headers={ADMIN_HEADER: token})
        assert status == 503, token


def test_everything_passes_without_flag(gateway):
    gateway.flag(False)
    for method in WRITES + READS:
        status, headers, body = gateway.request(method, body=b'{}' if method in WRITES else None)
        assert status == 200, method
    # The upstream's own 503 goes through untouched (not replaced by the maintenance answer).
    status, headers, body = gateway.request('POST', path='/status/503', body=b'{}')
    assert status == 503 and json.loads(body)['backend'] is True and 'retry-after' not in headers


def test_rendered_snippets_keep_secret_out_of_server_part_and_escape_message(gateway):
    with open(os.path.join(gateway.work_dir, 'maintenance.conf')) as handle:
        server_part = handle.read()
    with open(os.path.join(gateway.work_dir, 'maintenance-http.conf')) as handle:
        http_part = handle.read()
    assert ADMIN_TOKEN not in server_part
    assert '"~^%s$" 1;' % re.escape(ADMIN_TOKEN).replace('\\', '\\\\') in http_part  # case-sensitive match
    assert oct(os.stat(os.path.join(gateway.work_dir, 'maintenance-http.conf')).st_mode & 0o777) == '0o640'
    assert '$free' not in server_part  # would be an nginx variable: JSON-escaped instead
    assert gateway.flag_file in server_part


def test_maintenance_lock_flag_file_drives_the_gateway(gateway, lock_dir):
    lock_file = os.path.join(lock_dir, 'maintenance.json')
    common = dict(owner='gateway-test', lock_file=lock_file, flag_file=gateway.flag_file)
    gateway.flag(False)
    run, result = run_lock(reason='deploy', **common)
    assert result['changed'] is True and os.path.exists(gateway.flag_file)
    with open(gateway.flag_file) as handle:
        flag = json.load(handle)
    assert flag['owner'] == 'gateway-test' and flag['reason'] == 'deploy'
    assert gateway.request('POST', body=b'{}')[0] == 503
    assert gateway.request('GET')[0] == 200

    # Released: the flag is gone (without naming it again: the record remembers it), writes pass.
    run = run_tasks([{'name': 'release', 'engineroom.maintenance.maintenance_lock': dict(
        state='absent', owner='gateway-test', lock_file=lock_file)}])
    assert run.result('release')['released'] is True
    assert not os.path.exists(gateway.flag_file) and not os.path.exists(lock_file)
    assert gateway.request('POST', body=b'{}')[0] == 200

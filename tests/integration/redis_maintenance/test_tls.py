"""redis_maintenance over TLS to a real redis-server with a certificate from a throwaway CA."""

from __future__ import annotations

import subprocess

from tests.harness.playbook import run_tasks
from tests.integration.redis_maintenance.conftest import MODULE, Redis


def make_certs(tmp_path):
    """A CA and a server certificate for 127.0.0.1 (IP SAN), made with the openssl CLI."""
    ca_key, ca_cert = tmp_path / 'ca.key', tmp_path / 'ca.crt'
    key, csr, cert, ext = tmp_path / 'server.key', tmp_path / 'server.csr', tmp_path / 'server.crt', tmp_path / 'san.cnf'
    ext.write_text('subjectAltName=IP:127.0.0.1\n')
    for argv in (['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=engineroom-test-ca',
                  '-keyout', ca_key, '-out', ca_cert],
                 ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', csr],
                 ['x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key, '-CAcreateserial', '-days', '2',
                  '-extfile', ext, '-out', cert]):
        subprocess.run(['openssl'] + [str(a) for a in argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(ca_cert), str(cert), str(key)


def test_tls_verified_refused_without_ca_and_unverified(tmp_path):
    ca_cert, cert, key = make_certs(tmp_path)
    server = Redis(tmp_path / 'redis', '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', ca_cert,
                   '--tls-auth-clients', 'no')
    server.extra += ['--tls-port', str(server.port), '--port', '0']  # TLS on the chosen port, plain TCP off
    server.start()
    try:
        check(server, ca_cert, tmp_path)
    finally:
        server.stop()


def check(server, ca_cert, tmp_path):
    base = dict(login_port=server.port, tls=True, state_file=str(tmp_path / 'state.json'))
    run = run_tasks([{'name': 'verified', MODULE: dict(base, ca_cert=ca_cert), 'ignore_errors': True},
                     {'name': 'unknown ca', MODULE: dict(base), 'ignore_errors': True},
                     {'name': 'unverified', MODULE: dict(base, validate_certs=False), 'ignore_errors': True},
                     {'name': 'plain', MODULE: dict(base, tls=False, timeout=3), 'ignore_errors': True}])
    assert run.result('verified')['status'] == 'healthy' and not run.result('verified').get('failed')
    refused = run.result('unknown ca')
    assert refused['failed'] and 'TLS handshake with Redis at 127.0.0.1:%d failed' % server.port in refused['msg']
    assert 'CERTIFICATE_VERIFY_FAILED' in refused['msg']
    assert not run.result('unverified').get('failed')
    assert run.result('plain')['failed']

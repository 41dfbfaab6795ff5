"""The shared connection options ca_cert, ssl_cert and ssl_key against a real PostgreSQL 15 server with TLS.

openssl makes a CA, a server certificate for 127.0.0.1 and a client
certificate for the role ``certuser``; a cluster of its own (the session's
``pg`` stays plain) serves TLS and lets ``certuser`` in over TLS by
certificate only. Through real ansible-playbook runs of pg_insight:

* ``ssl_mode: verify-full`` with ``ca_cert`` connects; the CA that did not
  sign the server certificate fails with a message naming the options;
* ``ssl_cert``/``ssl_key`` log ``certuser`` in with no password at all (its
  only pg_hba.conf rule is ``hostssl ... cert``, so getting in proves both the
  TLS session and the client certificate), set once through ``module_defaults``
  with ``group/engineroom.maintenance.postgres``.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.harness.playbook import run_tasks
from tests.harness.postgres import PostgresCluster

MODULE = 'engineroom.maintenance.pg_insight'
CERT_USER = 'certuser'


def openssl(*args, cwd):
    subprocess.run(('openssl',) + args, cwd=cwd, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def make_ca(directory, name):
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=%s' % name,
            '-keyout', name + '.key', '-out', name + '.crt', cwd=directory)


def make_signed(directory, ca, name, subject, extension=None):
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', name + '.key', '-out', name + '.csr',
            cwd=directory)
    argv = ['x509', '-req', '-in', name + '.csr', '-CA', ca + '.crt', '-CAkey', ca + '.key', '-CAcreateserial',
            '-days', '2', '-out', name + '.crt']
    if extension:
        with open(os.path.join(directory, name + '.ext'), 'w') as handle:
            handle.write(extension + '\n')
        argv += ['-extfile', name + '.ext']
    openssl(*argv, cwd=directory)
    os.chmod(os.path.join(directory, name + '.key'), 0o600)


@pytest.fixture(scope='module')
def tls_pg(scratch_dir):
    """A cluster serving TLS with a server certificate for 127.0.0.1; certuser may log in by certificate only."""
    certs = os.path.join(scratch_dir, 'tls-certs')
    os.makedirs(certs, exist_ok=True)
    make_ca(certs, 'ca')
    make_ca(certs, 'other-ca')
    make_signed(certs, 'ca', 'server', '/CN=127.0.0.1', 'subjectAltName = IP:127.0.0.1')
    make_signed(certs, 'ca', 'client', '/CN=%s' % CERT_USER)
    cluster = PostgresCluster(os.path.join(scratch_dir, 'pg-tls'))
    cluster.init()
    server_dir = os.path.join(cluster.base_dir, 'tls')
    os.makedirs(server_dir, exist_ok=True)
    for name in ('server.crt', 'server.key', 'ca.crt'):
        with open(os.path.join(certs, name), 'rb') as source, open(os.path.join(server_dir, name), 'wb') as target:
            target.write(source.read())
        os.chmod(os.path.join(server_dir, name), 0o600)
        cluster._give_to_server_user(os.path.join(server_dir, name))
    with open(os.path.join(cluster.data_dir, 'postgresql.conf'), 'a') as conf:
        conf.write("ssl = on\nssl_cert_file = '%s/server.crt'\nssl_key_file = '%s/server.key'\n"
                   "ssl_ca_file = '%s/ca.crt'\n" % (server_dir, server_dir, server_dir))
    hba = os.path.join(cluster.data_dir, 'pg_hba.conf')
    with open(hba) as handle:
        rules = handle.read()
    with open(hba, 'w') as handle:
        handle.write('hostssl all %s 127.0.0.1/32 cert\nhost all %s 0.0.0.0/0 reject\n' % (CERT_USER, CERT_USER) + rules)
    cluster.start()
    try:
        cluster.execute('CREATE ROLE %s LOGIN' % CERT_USER)
        cluster.execute('GRANT pg_monitor TO %s' % CERT_USER)
        yield cluster, certs
    finally:
        cluster.stop()


def insight(name, **args):
    return {'name': name, MODULE: dict(dict(sections=['connections'], databases=['postgres']), **args),
            'ignore_errors': True}


def test_verify_full_with_ca_cert_connects_and_a_wrong_ca_is_named(tls_pg):
    cluster, certs = tls_pg
    login = dict(login_host=cluster.host, login_port=cluster.port, login_user='postgres',
                 login_password=cluster.superuser_password, ssl_mode='verify-full')
    plain = dict(login)
    plain.update(ssl_mode='disable', login_user=CERT_USER, login_password='')
    run = run_tasks([insight('verified', ca_cert=os.path.join(certs, 'ca.crt'), **login),
                     insight('wrong ca', ssl_rootcert=os.path.join(certs, 'other-ca.crt'), **login),
                     insight('plain refused', **plain)])
    verified = run.result('verified')
    assert 'failed' not in verified, verified.get('msg')
    assert verified['errors'] == {}

    wrong = run.result('wrong ca')
    assert wrong['failed'] is True
    assert 'certificate verify failed' in wrong['msg'] and 'ca_cert' in wrong['msg'], wrong['msg']

    plain = run.result('plain refused')
    assert plain['failed'] is True and 'pg_hba.conf' in plain['msg'], plain['msg']


def test_client_certificate_logs_in_without_password_through_module_defaults(tls_pg):
    cluster, certs = tls_pg
    defaults = {'group/engineroom.maintenance.postgres': dict(
        login_host=cluster.host, login_port=cluster.port, login_user=CERT_USER, ssl_mode='verify-full',
        ca_cert=os.path.join(certs, 'ca.crt'), ssl_cert=os.path.join(certs, 'client.crt'),
        ssl_key=os.path.join(certs, 'client.key'))}
    play_tasks = [dict(insight('by certificate'), module_defaults=defaults),
                  dict(insight('no certificate', ssl_cert=os.path.join(certs, 'missing.crt'),
                               ssl_key=os.path.join(certs, 'missing.key')), module_defaults=defaults)]
    run = run_tasks(play_tasks)
    by_cert = run.result('by certificate')
    assert 'failed' not in by_cert, by_cert.get('msg')
    assert by_cert['connections']['total'] >= 1
    refused = run.result('no certificate')
    assert refused['failed'] is True and CERT_USER in refused['msg'], refused['msg']

"""The connection helper's translation of options and errors (no server needed)."""

from __future__ import annotations

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres import connection as pgu


def test_connection_kwargs_prefers_the_socket_and_skips_empty_password():
    kwargs = pgu.connection_kwargs(dict(login_host='db.example', login_unix_socket='/run/pg', login_port=6543,
                                        login_user='monitor', login_password='', login_db='app',
                                        ssl_mode='require', connect_timeout=3))
    assert kwargs['host'] == '/run/pg'
    assert 'password' not in kwargs
    assert (kwargs['port'], kwargs['user'], kwargs['dbname'], kwargs['sslmode']) == (6543, 'monitor', 'app', 'require')


def test_certificate_options_become_libpq_keywords_and_environment():
    params = dict(login_user='monitor', ssl_mode='verify-full', ca_cert='/etc/pki/ca.crt', ssl_cert='/etc/pki/c.crt',
                  ssl_key='/etc/pki/c.key')
    kwargs = pgu.connection_kwargs(params)
    assert (kwargs['sslmode'], kwargs['sslrootcert'], kwargs['sslcert'], kwargs['sslkey']) == (
        'verify-full', '/etc/pki/ca.crt', '/etc/pki/c.crt', '/etc/pki/c.key')
    assert pgu.ssl_environment(params) == dict(PGSSLROOTCERT='/etc/pki/ca.crt', PGSSLCERT='/etc/pki/c.crt',
                                               PGSSLKEY='/etc/pki/c.key')
    unset = pgu.connection_kwargs(dict(login_user='monitor', ca_cert=None, ssl_cert=None, ssl_key=None))
    assert not set(unset) & {'sslrootcert', 'sslcert', 'sslkey'}
    assert pgu.ssl_environment(dict(ca_cert=None)) == {}
    assert pgu.postgres_argument_spec()['ca_cert']['aliases'] == ['ssl_rootcert']


def test_argument_spec_is_a_copy():
    spec = pgu.postgres_argument_spec()
    spec['login_port']['default'] = 1
    assert pgu.POSTGRES_CONNECTION_SPEC['login_port']['default'] == 5432
    assert spec['login_password']['no_log'] is True


@pytest.mark.parametrize('error, hint', [
    ('FATAL:  password authentication failed for user "monitor"', 'check login_user and login_password'),
    ('FATAL:  database "nope" does not exist', "the database 'nope' does not exist"),
    ('FATAL:  role "ghost" does not exist', "the role 'ghost' does not exist"),
    ('could not translate host name "x.invalid" to address', 'the name does not resolve'),
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused', 'is PostgreSQL running'),
    ('timeout expired', 'no answer within connect_timeout'),
    ('FATAL:  no pg_hba.conf entry for host', 'pg_hba.conf'),
    ('server certificate for "db" does not match host name "127.0.0.1"', 'check ssl_mode, ca_cert, ssl_cert'),
])
def test_explain_connect_error(error, hint):
    params = dict(login_host='127.0.0.1', login_port=5432, login_user='ghost', login_db='nope')
    message = pgu.explain_connect_error(params, Exception(error))
    assert message.startswith('cannot connect to PostgreSQL as ghost@127.0.0.1:5432/nope: ')
    assert hint in message


def test_statement_runner_records_composed_sql(pg):
    conn = pgu.connect(dict(login_unix_socket=pg.socket_dir, login_port=pg.port))
    try:
        runner = pgu.StatementRunner(conn)
        query = pgu.psycopg2.sql.SQL('SELECT {}').format(pgu.psycopg2.sql.Literal(7))
        assert runner.scalar(query) == 7
        assert runner.executed == ['SELECT 7']
    finally:
        conn.close()


def test_connect_raises_a_sentence_not_a_driver_error(pg):
    with pytest.raises(pgu.PostgresError, match='role .nobody. does not exist'):
        pgu.connect(dict(login_unix_socket=pg.socket_dir, login_port=pg.port, login_user='nobody'))

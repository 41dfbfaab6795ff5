"""Access review and Docker exposure findings: superusers, stale logins, ports published on every interface."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.security.access import (
    stale_login_findings,
    superuser_findings,
    table_identifier,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.exposure import container_port_findings
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import AuditConfigError


CONTAINERS = [
    {'Id': 'a' * 64, 'Names': ['/db'], 'Ports': [
        {'IP': '0.0.0.0', 'PrivatePort': 5432, 'PublicPort': 5432, 'Type': 'tcp'},
        {'IP': '::', 'PrivatePort': 5432, 'PublicPort': 5432, 'Type': 'tcp'}]},
    {'Id': 'b' * 64, 'Names': ['/web'], 'Ports': [
        {'IP': '0.0.0.0', 'PrivatePort': 80, 'PublicPort': 80, 'Type': 'tcp'},
        {'IP': '127.0.0.1', 'PrivatePort': 9000, 'PublicPort': 9000, 'Type': 'tcp'},
        {'PrivatePort': 8080, 'Type': 'tcp'}]},
]


def test_container_ports_on_every_interface_are_found_once_per_port():
    found = container_port_findings(CONTAINERS, [80, 443])
    assert [(f['object'], f['port'], f['container_port'], f['addresses']) for f in found] == [
        ('container:db', 5432, '5432/tcp', ['0.0.0.0', '::'])]
    assert found[0]['severity'] == 'high'
    assert [f['object'] for f in container_port_findings(CONTAINERS, [])] == ['container:db', 'container:web']


def test_superusers_not_expected_are_findings():
    superusers, found = superuser_findings([('admin', True), ('postgres', True), ('ops', False)], ['postgres'])
    assert superusers[1] == dict(name='postgres', can_login=True, expected=True)
    assert [(f['object'], f['severity']) for f in found] == [('role:admin', 'medium'), ('role:ops', 'low')]


def test_stale_logins_from_timestamps_dates_and_nulls():
    now = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
    rows = [('alice', now - datetime.timedelta(days=10)),
            ('bob', datetime.datetime(2026, 5, 1, 12, 0)),          # naive: UTC
            ('carol', None),
            ('dave', datetime.date(2026, 8, 25))]
    entries, found = stale_login_findings(rows, 90, now)
    assert [(e['name'], e['days_since'], e['stale']) for e in entries] == [
        ('alice', 10, False), ('bob', 206, True), ('carol', None, True), ('dave', 90, True)]
    assert entries[1]['last_login'] == '2026-05-01T12:00:00Z'
    assert [f['object'] for f in found] == ['user:bob', 'user:carol', 'user:dave']
    assert 'never logged in' in found[1]['message']


def test_stale_logins_refuse_rows_of_the_wrong_shape():
    now = datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(AuditConfigError, match='two columns'):
        stale_login_findings([('alice',)], 90, now)
    with pytest.raises(AuditConfigError, match='not a timestamp'):
        stale_login_findings([('alice', 'yesterday')], 90, now)


def test_table_identifier():
    assert table_identifier('users') == ['users']
    assert table_identifier('app.users') == ['app', 'users']
    for bad in ('a.b.c', '.users', 'app.'):
        with pytest.raises(AuditConfigError):
            table_identifier(bad)

"""The secret scanner: detect-secrets' plugins, the collection's own rules, decoys, and no value ever in a hit."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.security.content import (
    SecretScanner,
    compile_patterns,
    fingerprint,
    is_decoy,
    looks_binary,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import AuditConfigError

PEM_BODY = 'MHcCAQEEIBkg4LVWM9nuwNSk3yByxZZYRsFPkUQ8vF2R2KnwYv0xoAoGCCqGSM49AwEHoUQDQgAE'
GITHUB = 'ghp_' + 'Zq3Rk9Lm2Xv7Tn4Wp8Ys1Bc6Hd0Jf5Ga2Ke9'


def scan(text, name='settings.py', custom=()):
    """Scan ``text`` as the file ``name`` (detect-secrets skips names that are not files)."""
    path = os.path.join(tempfile.mkdtemp(prefix='engineroom-scan-'), name)
    with open(path, 'w') as handle:
        handle.write(text)
    with SecretScanner(list(custom)) as scanner:
        hits, complete = scanner.scan(path, text, time.monotonic() + 30)
    shutil.rmtree(os.path.dirname(path))
    assert complete
    return hits


def kinds(hits):
    return [(hit['line'], hit['kind']) for hit in hits]


def test_the_collection_rules_find_what_detect_secrets_lacks():
    text = ('{"private_key": "-----BEGIN EC PRIVATE KEY-----\\n%s\\n-----END EC PRIVATE KEY-----\\n"}\n'
            'DATABASE_URL = "postgresql://app:Wq9sLp2Xk7Vr@db.internal:5432/shop"\n'
            'db.internal:5432:shop:app:Wq9sLp2Xk7Vr\n' % PEM_BODY)
    assert kinds(scan(text, 'config.txt')) == [(1, 'private_key_inline'), (2, 'database_url'), (3, 'pgpass_line')]


def test_a_hit_carries_line_kind_and_fingerprint_never_the_value():
    line = 'AWS_SECRET_ACCESS_KEY="Hx7Rq2Lk9Vm4Np8Wt3Yc6Bz1Df5Gj0Ks2Ua7Ie9" GITHUB_TOKEN=%s password="abc\\"Rest0fIt9"\n' % GITHUB
    hits = scan(line, 'run.sh')
    assert set(hit['kind'] for hit in hits) >= {'github_token'}
    dump = json.dumps(hits)
    for value in ('Hx7Rq2Lk9Vm4Np8Wt3Yc6Bz1Df5Gj0Ks2Ua7Ie9', GITHUB, 'Rest0fIt9', GITHUB[4:20]):
        assert value not in dump
    assert sorted(hits[0]) == ['fingerprint', 'kind', 'line', 'sha1']
    assert fingerprint(GITHUB) in [hit['fingerprint'] for hit in hits]


@pytest.mark.parametrize('line', [
    'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"',
    'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
    'password = "<your-password>"',
    'password = "********"',
    'PASSWORD_FIELD = "password"',
    'password = "${DB_PASSWORD}"',
    'admin_hash = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"',
    '"integrity": "sha512-Wq9sLp2Xk7VrZq3Rk9Lm2Xv7Tn4Wp8Ys1Bc6Hd0Jf5Ga2Ke9Wq9sLp2Xk7VrZq3Rk9Lm2Xv7Tn4Wp8Ys1Bc6Hd0Jf5Ga2Ke9=="',
    '<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==">',
    '<input type="hidden" name="csrfmiddlewaretoken" value="Zq3Rk9Lm2Xv7Tn4Wp8Ys1Bc6Hd0Jf5Ga2Ke9Wq9sLp2Xk7Vr">',
    'commit_sha = "3f786850e387550fdab836ed7e6dc881de23001b"',
    'DATABASE_URL = "postgres://user:password@localhost/app"',
])
def test_decoys_are_not_secrets(line):
    assert scan(line + '\n') == []


def test_is_decoy_keeps_random_values():
    assert not is_decoy('Wq9sLp2Xk7Vr', 'password = "Wq9sLp2Xk7Vr"')
    assert is_decoy('changeme', 'password = changeme')


def test_custom_patterns_name_their_hits_and_bad_ones_are_refused():
    custom = [dict(name='shop_key', regex=r'shopkey_(?P<secret>[0-9a-z]{12})')]
    assert kinds(scan('k = shopkey_abcdef123456\n', 'a.txt', custom)) == [(1, 'shop_key')]
    with pytest.raises(AuditConfigError, match="scan pattern 'bad': regex"):
        compile_patterns([dict(name='bad', regex='(')])
    with pytest.raises(AuditConfigError, match="scan pattern name 'database_url' is used twice or is a built-in"):
        compile_patterns([dict(name='database_url', regex='a')])


def test_binary_from_the_first_block():
    assert looks_binary(b'abc\0def')
    assert looks_binary(bytes(range(128, 256)) * 4)
    assert not looks_binary('été et café\n'.encode('utf-8'))
    assert not looks_binary(b'')

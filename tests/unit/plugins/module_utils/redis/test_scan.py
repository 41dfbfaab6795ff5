"""Redis glob patterns matched exactly as the server's SCAN MATCH, and the bounded walk."""

from __future__ import annotations

import time

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.client import RedisClient
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.scan import (
    ScanError,
    Walk,
    glob_regex,
    matches_everything,
    scan_patterns,
)

KEYS = ['glob:a', 'glob:b', 'glob:ab', 'glob:a*', 'glob:[x]', 'glob:\n', 'glob:caf\xe9', 'glob:z', 'glob:\\']
PATTERNS = ['glob:*', 'glob:?', 'glob:[ab]', 'glob:[^ab]', 'glob:a\\*', 'glob:\\[x\\]', 'glob:[a-c]*', 'glob:caf?',
            'glob:*b', 'glob:\\\\', 'glob:[!a]']


@pytest.fixture(scope='module')
def seeded(redis):
    with RedisClient(port=redis.port) as client:
        for key in KEYS:
            client.command('SET', key, '1')
        yield client
        for key in KEYS:
            client.command('DEL', key)


@pytest.mark.parametrize('pattern', PATTERNS)
def test_glob_matches_what_the_server_matches(seeded, pattern):
    cursor, server = b'0', set()
    while True:
        cursor, keys = seeded.command('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
        server.update(keys)
        if cursor == b'0':
            break
    regex = glob_regex(pattern)
    ours = set(k.encode('utf-8') for k in KEYS if regex.match(k.encode('utf-8')))
    assert ours == server


def test_matches_everything_only_for_stars():
    assert matches_everything('*') and matches_everything('**')
    assert not matches_everything('a*') and not matches_everything('') and not matches_everything('?*')


def test_walk_bounds_by_keys_and_time(redis):
    with RedisClient(port=redis.port) as client:
        client.pipeline([['SET', 'walk:%d' % n, 'v'] for n in range(300)])
        walk = Walk(client, match='walk:*', count=20, max_keys=50)
        seen = sum(len(page) for page in walk.pages())
        assert seen == walk.scanned == 50 and walk.truncated and 'max_scan_keys (50)' in walk.stop_reason
        timed = Walk(client, match='walk:*', count=10, max_keys=0, deadline=time.monotonic())
        list(timed.pages())
        assert timed.calls == 1 and timed.truncated and timed.stop_reason == 'max_duration_s reached'
        whole = scan_patterns(client, ['walk:1*', 'walk:2*'], 100, 0, None, sample_keys=5, top_keys=2)
        counts = dict((p['pattern'], p['keys']) for p in whole['patterns'])
        assert counts == {'walk:1*': 111, 'walk:2*': 111} and whole['truncated'] is False
        assert all(p['sampled_keys'] == 5 and len(p['biggest']) == 2 for p in whole['patterns'])
        client.pipeline([['DEL', 'walk:%d' % n] for n in range(300)])


def test_scan_count_below_one_refused():
    with pytest.raises(ScanError, match='scan_count'):
        Walk(None, count=0)

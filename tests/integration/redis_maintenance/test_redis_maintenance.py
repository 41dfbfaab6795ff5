"""redis_maintenance through real ansible-playbook runs against real redis-server instances.

The figures are checked against what redis-cli reads from the same server;
the state of keys (TTL, existence) is checked with redis-cli after each run.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from tests.harness.playbook import run_tasks
from tests.harness.ports import free_port
from tests.integration.redis_maintenance.conftest import MODULE


def task(name, server=None, check=False, **args):
    if server is not None:
        args.setdefault('login_port', server.port)
        args.setdefault('state_file', os.path.join(server.work_dir, 'state.json'))
        if server.password:
            args.setdefault('login_password', server.password)
    entry = {'name': name, MODULE: args, 'ignore_errors': True}
    if check:
        entry['check_mode'] = True
    return entry


def play(*tasks):
    run = run_tasks(list(tasks))
    return run, dict((t['_task'], t) for t in run.tasks)


def families(result):
    return dict((f['pattern'], f) for f in result['scan']['patterns'])


def test_review_and_scan_figures_equal_info(redis_server):
    server = redis_server('--maxmemory', '64mb', '--slowlog-log-slower-than', '10000')
    server.fill('session:', 300)
    server.fill('session:', 200, ttl=3600, size=4)  # overwrites 0..199 with a TTL: 100 sessions keep no TTL
    server.fill('cache:', 150, ttl=600)
    server.fill('rate:', 40)
    server.cli('SET', 'cache:big', 'y' * 100000)
    server.cli('DEBUG', 'SLEEP', '0.05')
    run, res = play(task('review', server, scan_patterns=['session:*', 'cache:*', 'rate:*', 'none:*'], scan_count=50,
                         memory_sample_keys=1000, slowlog_count=3))
    info = server.info()
    result = res['review']
    assert run.rc == 0 and not result.get('failed'), json.dumps(result)[-2000:]
    review = result['review']
    assert review['figures']['maxmemory'] == int(info['maxmemory']) == 64 * 1024 * 1024
    assert review['maxmemory_policy'] == info['maxmemory_policy']
    assert review['keyspace']['db0'] == dict(keys=491, expires=350, avg_ttl_ms=review['keyspace']['db0']['avg_ttl_ms'])
    assert info['db0'].startswith('keys=491,expires=350,')
    assert abs(review['figures']['used_memory'] - int(info['used_memory'])) < 200000
    assert review['figures']['memory_pct'] == round(100.0 * review['figures']['used_memory'] / (64 * 1024 * 1024), 1)
    for key in ('evicted_keys', 'expired_keys', 'rdb_last_save_time', 'connected_slaves'):
        assert review['figures'][key] == int(info[key]), key
    assert review['role'] == info['role'] == 'master' and review['redis_version'] == info['redis_version']
    assert review['slowlog'][0]['command'] == 'DEBUG SLEEP 0.05' and review['slowlog'][0]['duration_us'] >= 50000
    assert review['since_last_run']['evicted_keys'] is None  # first run
    assert result['status'] == 'healthy' and result['changed'] is False

    fam = families(result)
    assert (fam['session:*']['keys'], fam['session:*']['keys_without_ttl']) == (300, 100)
    assert (fam['cache:*']['keys'], fam['cache:*']['keys_without_ttl']) == (151, 1)
    assert (fam['rate:*']['keys'], fam['rate:*']['keys_without_ttl']) == (40, 40)
    assert fam['none:*']['keys'] == 0
    assert fam['cache:*']['biggest'][0]['key'] == 'cache:big' and fam['cache:*']['biggest'][0]['bytes'] > 100000
    assert result['scan']['keys_scanned'] == 491 and result['scan']['truncated'] is False
    assert result['scan']['scan_calls'] > 5  # COUNT 50: many small calls, never KEYS
    assert not any(c.startswith('KEYS') for c in result['executed_commands'])
    assert result['metrics']['keys_total'] == 491 and result['metrics']['slowlog_entries'] >= 1
    assert 'scanned 491 keys for 4 patterns' in result['summary']


def test_scan_stops_at_max_scan_keys_and_deltas_since_last_run(redis_server):
    server = redis_server('--maxmemory', '2mb', '--maxmemory-policy', 'allkeys-lru')
    server.fill('a:', 2000)
    first_run, first = play(task('first', server, scan_patterns=['a:*'], scan_count=100, max_scan_keys=500))
    server.fill('big:', 400, size=10000)  # about 4 MB into 2 MB: evictions
    server.fill('short:', 20, ttl=1)
    time.sleep(2.5)
    server.cli('GET', 'short:1')  # an expired key is removed on access at the latest
    run, second = play(task('second', server, thresholds=dict(evictions_degraded=1, evictions_unhealthy=1000000)))
    info = server.info()
    assert first['first']['scan']['truncated'] is True
    assert first['first']['scan']['keys_scanned'] == 500
    assert 'max_scan_keys (500) reached' in first['first']['scan']['stop_reason']
    since = second['second']['review']['since_last_run']
    assert since['evicted_keys'] == int(info['evicted_keys']) > 0
    assert since['expired_keys'] == int(info['expired_keys']) >= 1
    assert second['second']['status'] == 'unhealthy'  # memory at maxmemory (>= 95 %), and evictions (degraded)
    assert any('evicted since the last run' in r for r in second['second']['reasons'])
    assert any('of maxmemory' in r for r in second['second']['reasons'])
    assert second['second']['review']['previous_run']


def test_expire_without_ttl_only_named_prefix_check_mode_and_idempotence(redis_server):
    server = redis_server()
    server.fill('session:', 50)
    server.fill('session:', 10, ttl=100)  # 0..9 have a TTL already
    server.fill('keep:', 30)
    rule = [{'pattern': 'session:*', 'ttl_s': 5000}]
    run, res = play(task('plan', server, check=True, expire_without_ttl=rule),
                    task('apply', server, expire_without_ttl=rule),
                    task('again', server, expire_without_ttl=rule))
    plan, apply, again = res['plan'], res['apply'], res['again']
    assert plan['changed'] is True and plan['actions'][0]['outcome'] == 'planned'
    assert plan['actions'][0]['keys_selected'] == 40 and plan['actions'][0]['keys_changed'] == 0
    assert apply['changed'] is True and apply['actions'][0]['keys_changed'] == 40 and apply['metrics']['keys_ttl_set'] == 40
    assert again['changed'] is False and again['actions'][0]['outcome'] == 'nothing to do'
    assert 4900 < int(server.cli('TTL', 'session:20')) <= 5000
    assert int(server.cli('TTL', 'session:5')) <= 100  # its own TTL stays
    assert server.cli('TTL', 'keep:3') == '-1'  # another prefix untouched
    assert server.cli('DBSIZE') == '80'  # nothing deleted


def test_unlink_by_idle_time_and_star_refused(redis_server):
    server = redis_server()
    server.fill('tmp:old', 30)
    server.fill('other:', 10)
    server.fill('tmp:new', 20)
    server.age(['tmp:old%d' % n for n in range(30)] + ['other:%d' % n for n in range(10)], 7200)
    rule = [{'pattern': 'tmp:*', 'min_idle_s': 3600}]
    run, res = play(task('plan', server, check=True, unlink=rule),
                    task('apply', server, unlink=rule),
                    task('star', server, unlink=[{'pattern': '*', 'min_idle_s': 0}]),
                    task('star allowed', server, check=True, unlink=[{'pattern': '*', 'min_idle_s': 0}], allow_all=True))
    assert res['plan']['actions'][0]['keys_selected'] == 30 and server.cli('EXISTS', 'tmp:old1') in ('0', '1')
    assert res['apply']['actions'][0]['keys_changed'] == 30 and res['apply']['metrics']['keys_unlinked'] == 30
    assert server.cli('EXISTS', 'tmp:old1') == '0' and server.cli('EXISTS', 'tmp:new1') == '1'
    assert server.cli('EXISTS', 'other:1') == '1' and server.cli('DBSIZE') == '30'
    assert res['star']['failed'] and 'selects every key' in res['star']['msg'] and 'allow_all' in res['star']['msg']
    assert not res['star'].get('executed_commands')  # refused before connecting
    assert res['star allowed']['actions'][0]['keys_selected'] == 30 and server.cli('DBSIZE') == '30'


def test_bgsave_verified_and_corrupted_rdb_detected(redis_server):
    server = redis_server()
    server.fill('k:', 500)
    run, res = play(task('save', server, bgsave=True, memory_purge=True))
    saved = res['save']
    rdb = os.path.join(server.work_dir, 'dump.rdb')
    assert not saved.get('failed'), saved.get('msg')
    bgsave = [a for a in saved['actions'] if a['action'] == 'bgsave'][0]
    assert bgsave['outcome'] == 'done' and bgsave['verification']['ok'] is True
    assert bgsave['size_bytes'] == os.path.getsize(rdb) > 1000 and bgsave['save_ms'] > 0
    assert any(c.endswith('redis-check-rdb %s' % rdb) for c in saved['executed_commands'])
    assert saved['metrics']['rdb_bytes'] == bgsave['size_bytes']
    assert [a['outcome'] for a in saved['actions']] == ['done', 'done']  # memory_purge, bgsave

    with open(rdb, 'r+b') as handle:  # damage the middle of the file
        handle.seek(os.path.getsize(rdb) // 2)
        handle.write(b'\xff' * 64)
    run, res = play(task('verify', server, check=True, verify_rdb=True))
    verify = res['verify']
    assert verify['failed'] and verify['status'] == 'unhealthy'
    assert verify['actions'][0]['outcome'] == 'failed' and verify['actions'][0]['verification']['ok'] is False
    assert 'verify_rdb' in verify['msg'] and 'damaged' in verify['msg']


def test_acl_user_wrong_password_refused_port_and_no_log(redis_server):
    server = redis_server('--user', 'default', 'off', '--user', 'maint', 'on', '>maint-secret-pw', '~*', '&*', '+@all')
    port = free_port()
    run, res = play(task('acl', server, login_user='maint', login_password='maint-secret-pw'),
                    task('wrong', server, login_user='maint', login_password='not-the-pw'),
                    task('refused', login_port=port, state_file=os.path.join(server.work_dir, 's.json')))
    assert not res['acl'].get('failed') and res['acl']['status'] == 'healthy'
    assert 'AUTH maint ********' in res['acl']['executed_commands']
    assert res['wrong']['failed'] and 'WRONGPASS' in res['wrong']['msg'] and "user 'maint'" in res['wrong']['msg']
    assert res['refused']['failed'] and 'cannot connect to Redis at 127.0.0.1:%d' % port in res['refused']['msg']
    assert 'maint-secret-pw' not in json.dumps(run.report) and 'not-the-pw' not in json.dumps(run.report)


def test_misconf_reported_and_writes_refused(redis_server, tmp_path):
    gone = tmp_path / 'gone'
    gone.mkdir()
    server = redis_server('--dir', str(gone), '--save', '3600 1')  # its RDB directory is removed under it: BGSAVE cannot write
    server.fill('s:', 20)
    shutil.rmtree(str(gone))
    server.cli('BGSAVE')
    deadline = time.monotonic() + 20
    while server.info().get('rdb_last_bgsave_status') != 'err':
        assert time.monotonic() < deadline, 'BGSAVE did not fail'
        time.sleep(0.1)
    assert 'MISCONF' in server.cli('SET', 'x', '1')  # the server refuses writes for real
    run, res = play(task('review', server, state_file=str(tmp_path / 'state.json')),
                    task('expire', server, state_file=str(tmp_path / 'state.json'),
                         expire_without_ttl=[{'pattern': 's:*', 'ttl_s': 60}]))
    review, expire = res['review'], res['expire']
    assert review['status'] == 'unhealthy' and not review.get('failed')
    assert any('MISCONF' in r for r in review['reasons'])
    assert expire['failed'] and 'MISCONF' in expire['msg'] and 'stop-writes-on-bgsave-error' in expire['msg']
    assert server.cli('TTL', 's:1') == '-1'


def test_loading_server_reviewed_and_actions_skipped(redis_server):
    seed = redis_server()
    seed.fill('L:', 3000)
    seed.cli('SAVE')
    seed.stop()
    server = redis_server('--dbfilename', 'dump.rdb', '--key-load-delay', '5000',
                          '--loading-process-events-interval-bytes', '1024')
    shutil.copy(os.path.join(seed.work_dir, 'dump.rdb'), os.path.join(server.work_dir, 'dump.rdb'))
    server.stop()
    server.start()
    assert 'LOADING' in server.cli('GET', 'L:1')
    run, res = play(task('loading', server, scan_patterns=['L:*'], bgsave=True, timeout=5))
    result = res['loading']
    assert not result.get('failed'), result.get('msg')
    assert result['status'] == 'unhealthy' and result['review']['loading'] is True
    assert any('loading its dataset' in r for r in result['reasons'])
    assert result['scan']['skipped'] is True and result['actions'][0]['outcome'] == 'skipped'


def test_bad_options_refused_before_connecting(redis_server):
    run, res = play(task('count', login_port=1, scan_count=0),
                    task('empty', login_port=1, unlink=[{'pattern': '', 'min_idle_s': 1}]),
                    task('ttl', login_port=1, expire_without_ttl=[{'pattern': 'a:*', 'ttl_s': 0}]),
                    task('order', login_port=1, thresholds=dict(memory_degraded_pct=90, memory_unhealthy_pct=50)))
    assert 'scan_count must be at least 1' in res['count']['msg']
    assert 'non-empty pattern' in res['empty']['msg']
    assert 'ttl_s must be at least 1' in res['ttl']['msg']
    assert 'out of order' in res['order']['msg']

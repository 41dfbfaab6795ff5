#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: redis_maintenance
short_description: Review a Redis server, describe key families with SCAN, and run opt-in cache maintenance
version_added: 0.1.0
description:
  - B(Review) (always) from one C(INFO all) reply - memory used against C(maxmemory), fragmentation, evicted and
    expired keys since the last run (kept in O(state_file)), hit ratio, keyspace per database, the slowlog's top
    entries, the last RDB save (status, age), AOF status, connected and blocked clients, replication role and lag - graded
    C(healthy), C(degraded) or C(unhealthy) against O(thresholds).
  - B(Key families) with O(scan_patterns) - per pattern the number of keys, keys without TTL, memory sampled with
    C(MEMORY USAGE) and the biggest keys. The keyspace is walked with C(SCAN ... COUNT) (never C(KEYS)), bounded by
    O(max_scan_keys) and O(max_duration_s), and no command used refreshes a key's idle time.
  - B(Actions), each off unless asked for, each planned (not done) in check mode - O(expire_without_ttl) gives keys of a
    named pattern without TTL a TTL (never deletes), O(unlink) removes keys of a named pattern idle longer than a given
    time (a pattern selecting every key is refused unless O(allow_all=true)), O(memory_purge), O(bgsave) waited for and
    verified with C(redis-check-rdb), O(verify_rdb), O(bgrewriteaof).
  - While the server is loading its dataset (C(LOADING)) only the review runs; the status is C(unhealthy).
author:
  - engineroom maintainers (@engineroom)
extends_documentation_fragment:
  - engineroom.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - The review and the scan run (they only read); actions are reported with RV(actions[].outcome=planned) and the keys
        they would change are counted; the state file is not written.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - A second run of O(expire_without_ttl) or O(unlink) finds nothing left to change and reports
        RV(ignore:changed=false); O(memory_purge), O(bgsave) and O(bgrewriteaof) run every time they are asked for.
options:
  login_host:
    description: Host of the Redis server (ignored with O(login_unix_socket)).
    type: str
    default: 127.0.0.1
  login_port:
    description: TCP port of the Redis server.
    type: int
    default: 6379
  login_unix_socket:
    description: Path of the server's unix socket, used instead of TCP.
    type: path
  login_user:
    description: ACL user (Redis 6+); without it O(login_password) authenticates the C(default) user.
    type: str
  login_password:
    description: Password sent with C(AUTH).
    type: str
  tls:
    description: Connect with TLS.
    type: bool
    default: false
  ca_cert:
    description: CA bundle to verify the server's certificate (with O(tls)).
    type: path
  client_cert:
    description: Client certificate for TLS client authentication.
    type: path
  client_key:
    description: Key of O(client_cert).
    type: path
  validate_certs:
    description: Verify the server's certificate and host name (with O(tls)).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the connection and each reply.
    type: float
    default: 10
  db:
    description: Database number the scan and the key actions work in.
    type: int
    default: 0
  state_file:
    description:
      - File keeping the counters of the last run, for the deltas in RV(review.since_last_run).
      - Defaults to C(/var/lib/engineroom/redis-<host>-<port>.json) (or the socket's name). Not written in check mode.
    type: path
  slowlog_count:
    description: How many slowlog entries to read (the slowest come first in RV(review.slowlog)); V(0) skips it.
    type: int
    default: 5
  thresholds:
    description: When the review turns C(degraded) or C(unhealthy). A value at or above a threshold reaches that status.
    type: dict
    default: {}
    suboptions:
      memory_degraded_pct:
        description: Used memory as a percentage of C(maxmemory) (checked only when C(maxmemory) is set).
        type: float
        default: 80
      memory_unhealthy_pct:
        description: As O(thresholds.memory_degraded_pct), for C(unhealthy).
        type: float
        default: 95
      fragmentation_degraded_ratio:
        description: C(mem_fragmentation_ratio), checked only when the fragmentation is at least O(thresholds.fragmentation_min_bytes).
        type: float
        default: 1.5
      fragmentation_unhealthy_ratio:
        description: As O(thresholds.fragmentation_degraded_ratio), for C(unhealthy).
        type: float
        default: 3.0
      fragmentation_min_bytes:
        description: Fragmentation (C(mem_fragmentation_bytes)) below which the ratio is not graded (small datasets have high ratios).
        type: int
        default: 104857600
      evictions_degraded:
        description: Keys evicted since the last run.
        type: int
        default: 1
      evictions_unhealthy:
        description: As O(thresholds.evictions_degraded), for C(unhealthy); unset means never.
        type: int
      rdb_age_degraded_h:
        description: Hours since the last RDB save while there are unsaved changes; unset means not checked.
        type: float
      rdb_age_unhealthy_h:
        description: As O(thresholds.rdb_age_degraded_h), for C(unhealthy).
        type: float
      replication_lag_degraded_s:
        description: Replication lag in seconds (a replica's last I/O with its master, or a master's worst replica lag).
        type: float
        default: 10
      replication_lag_unhealthy_s:
        description: As O(thresholds.replication_lag_degraded_s), for C(unhealthy).
        type: float
        default: 60
  scan_patterns:
    description: Redis glob patterns (e.g. C(session:*)) whose keys are described in RV(scan). One pattern is matched by the server.
    type: list
    elements: str
    default: []
  scan_count:
    description: C(COUNT) hint of each C(SCAN) call (work per call on the server).
    type: int
    default: 1000
  max_scan_keys:
    description: Most keys one walk of the keyspace (the scan, or one action entry) looks at; V(0) means no limit.
    type: int
    default: 100000
  max_duration_s:
    description: Seconds after which walks stop (the run says it stopped early in RV(scan.truncated)).
    type: float
    default: 60
  memory_sample_keys:
    description: Keys per pattern whose C(MEMORY USAGE) is measured (the rest are estimated from them).
    type: int
    default: 100
  top_keys:
    description: How many of the biggest sampled keys to list per pattern.
    type: int
    default: 5
  expire_without_ttl:
    description: Give keys of these patterns that have no TTL the TTL O(expire_without_ttl[].ttl_s). Keys are never deleted.
    type: list
    elements: dict
    default: []
    suboptions:
      pattern:
        description: Redis glob pattern of the keys.
        type: str
        required: true
      ttl_s:
        description: TTL in seconds to set.
        type: int
        required: true
  unlink:
    description: C(UNLINK) keys of these patterns idle (C(OBJECT IDLETIME)) at least O(unlink[].min_idle_s) seconds.
    type: list
    elements: dict
    default: []
    suboptions:
      pattern:
        description: Redis glob pattern of the keys; a pattern selecting every key (C(*)) needs O(allow_all=true).
        type: str
        required: true
      min_idle_s:
        description: Idle time in seconds from which a key is removed.
        type: int
        required: true
  allow_all:
    description: Allow an O(unlink) pattern that selects every key of the database.
    type: bool
    default: false
  memory_purge:
    description: Run C(MEMORY PURGE) (return allocator pages to the system); the result shows RSS before and after.
    type: bool
    default: false
  bgsave:
    description: Run C(BGSAVE), wait for it (O(wait_s)) and verify the new RDB with C(redis-check-rdb).
    type: bool
    default: false
  verify_rdb:
    description: Verify the RDB file as it is with C(redis-check-rdb), without saving (a read; also in check mode).
    type: bool
    default: false
  bgrewriteaof:
    description: Run C(BGREWRITEAOF) and wait for it (O(wait_s)).
    type: bool
    default: false
  rdb_path:
    description: The RDB file to verify; by default C(CONFIG GET dir) and C(dbfilename) of the server.
    type: path
  redis_check_rdb_path:
    description: The C(redis-check-rdb) program (Debian package C(redis-tools)).
    type: str
    default: redis-check-rdb
  wait_s:
    description: Seconds to wait for C(BGSAVE), C(BGREWRITEAOF) and C(redis-check-rdb) to finish.
    type: float
    default: 300
notes:
  - The RDB can be verified only when the module runs on the Redis host (the file is read locally).
  - The ACL user needs C(INFO), C(SLOWLOG), C(SCAN), C(TTL), C(MEMORY) and, for actions, C(EXPIRE), C(UNLINK),
    C(OBJECT), C(BGSAVE), C(BGREWRITEAOF), C(CONFIG GET) on the keys concerned.
seealso:
  - module: engineroom.maintenance.health_probe
'''

EXAMPLES = r'''
- name: Daily review of the cache, with its key families
  engineroom.maintenance.redis_maintenance:
    login_password: "{{ vault_redis_password }}"
    scan_patterns: ["session:*", "cache:*", "rate:*"]
  register: redis_review

- name: Weekly care - sessions without TTL get a day, old cache entries go, then a verified RDB
  engineroom.maintenance.redis_maintenance:
    login_user: maintenance
    login_password: "{{ vault_redis_password }}"
    expire_without_ttl: [{pattern: "session:*", ttl_s: 86400}]
    unlink: [{pattern: "cache:*", min_idle_s: 604800}]
    bgsave: true
'''

RETURN = r'''
status:
  description: V(healthy), V(degraded) or V(unhealthy) (the review's grade; a failed action makes it V(unhealthy)).
  returned: always
  type: str
reasons:
  description: Why the status is not V(healthy).
  returned: always
  type: list
  elements: str
summary:
  description: One line for the maintenance log.
  returned: always
  type: str
  sample: "redis 127.0.0.1:6379 (7.0.15, master): healthy; memory 1.1 MiB of 64.0 MiB (1.7 %), fragmentation 4.1; hit ratio 98.2 %;
    0 evicted / 12 expired since last run; scanned 1200 keys for 3 patterns in 0.1 s"
review:
  description: What the server says about itself, from one C(INFO all) reply.
  returned: always
  type: dict
  contains:
    status:
      description: The review's own grade (before the actions).
      type: str
    reasons:
      description: Why the review is not V(healthy).
      type: list
      elements: str
    redis_version:
      description: Server version.
      type: str
    role:
      description: V(master) or V(slave).
      type: str
    loading:
      description: Whether the server is loading its dataset.
      type: bool
    maxmemory_policy:
      description: The eviction policy.
      type: str
    figures:
      description: The numbers as INFO names them (C(used_memory), C(maxmemory), C(evicted_keys), ...), plus C(memory_pct),
        C(fragmentation_ratio), C(hit_ratio_pct), C(rdb_age_s), C(replication_lag_s).
      type: dict
    since_last_run:
      description: Increases of C(evicted_keys), C(expired_keys), C(keyspace_hits), C(keyspace_misses) and the C(hit_ratio_pct)
        since the last run (all V(null) on a first run; counted from zero after a server restart).
      type: dict
    previous_run:
      description: When the last run saved its counters (UTC), V(null) on a first run.
      type: str
    keyspace:
      description: Per database (C(db0)...) its C(keys), C(expires) and C(avg_ttl_ms).
      type: dict
    slowlog:
      description: The slowlog's top entries, slowest first (C(id), C(started), C(duration_us), C(command) with arguments cut).
      type: list
      elements: dict
    rdb:
      description: Last RDB save (C(last_bgsave_status), C(last_save), C(age_s), C(changes_since_last_save)).
      type: dict
    aof:
      description: AOF state (C(enabled), C(last_bgrewrite_status), C(last_write_status)).
      type: dict
    replication:
      description: C(role), C(connected_slaves), C(master_link_status), C(lag_s).
      type: dict
scan:
  description: The key families of O(scan_patterns).
  returned: when O(scan_patterns) is set
  type: dict
  contains:
    patterns:
      description: Per pattern C(pattern), C(keys), C(keys_without_ttl), C(sampled_keys), C(sampled_bytes), C(estimated_bytes),
        C(biggest) (C(key), C(bytes)).
      type: list
      elements: dict
    keys_scanned:
      description: Keys SCAN returned.
      type: int
    scan_calls:
      description: SCAN calls made.
      type: int
    truncated:
      description: Whether the walk stopped at O(max_scan_keys) or O(max_duration_s) before the end of the keyspace.
      type: bool
    stop_reason:
      description: Which bound stopped it.
      type: str
actions:
  description: One entry per action asked for, in the order run.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: V(verify_rdb), V(expire_without_ttl), V(unlink), V(memory_purge), V(bgsave) or V(bgrewriteaof).
      type: str
    outcome:
      description: V(done), V(planned) (check mode), V(nothing to do), V(failed) or V(skipped).
      type: str
    reason:
      description: Why it failed or was skipped.
      type: str
    pattern:
      description: The pattern of a key action.
      type: str
    keys_matched:
      description: Keys of the pattern seen.
      type: int
    keys_selected:
      description: Keys without TTL (V(expire_without_ttl)) or idle long enough (V(unlink)).
      type: int
    keys_changed:
      description: Keys given a TTL or unlinked (V(0) in check mode).
      type: int
    size_bytes:
      description: Size of the RDB file (V(bgsave), V(verify_rdb)).
      type: int
    save_ms:
      description: Time the BGSAVE took.
      type: float
    verification:
      description: The C(redis-check-rdb) verdict (C(path), C(ok), C(rc), C(size_bytes), C(mtime), C(check_ms), C(output_tail)).
      type: dict
metrics:
  description: Flat numbers for the report; keys carry their unit.
  returned: always
  type: dict
  sample: {duration_ms: 52.1, used_memory_bytes: 1153024, memory_pct: 1.7, hit_ratio_pct: 98.2, keys_total: 1200,
           keys_scanned: 1200, keys_ttl_set: 0, keys_unlinked: 0}
executed_commands:
  description: The commands sent (AUTH's password masked; SCAN pages and pipelined per-key commands summed up in one line each).
  returned: always
  type: list
  elements: str
'''

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.actions import check_key_rules, hint
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.client import RedisClient, RedisError
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.maintenance import run
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.review import DEFAULT_THRESHOLDS, ReviewError, resolve_thresholds
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.scan import ScanError

STATE_DIR = '/var/lib/engineroom'
THRESHOLD_TYPES = dict(memory_degraded_pct='float', memory_unhealthy_pct='float', fragmentation_degraded_ratio='float',
                       fragmentation_unhealthy_ratio='float', fragmentation_min_bytes='int', evictions_degraded='int',
                       evictions_unhealthy='int', rdb_age_degraded_h='float', rdb_age_unhealthy_h='float',
                       replication_lag_degraded_s='float', replication_lag_unhealthy_s='float')


def argument_spec():
    return dict(
        login_host=dict(type='str', default='127.0.0.1'),
        login_port=dict(type='int', default=6379),
        login_unix_socket=dict(type='path'),
        login_user=dict(type='str'),
        login_password=dict(type='str', no_log=True),
        tls=dict(type='bool', default=False),
        ca_cert=dict(type='path'),
        client_cert=dict(type='path'),
        client_key=dict(type='path', no_log=False),
        validate_certs=dict(type='bool', default=True),
        timeout=dict(type='float', default=10),
        db=dict(type='int', default=0),
        state_file=dict(type='path'),
        slowlog_count=dict(type='int', default=5),
        thresholds=dict(type='dict', default={},
                        options=dict((k, dict(type=t, default=DEFAULT_THRESHOLDS[k])) for k, t in THRESHOLD_TYPES.items())),
        scan_patterns=dict(type='list', elements='str', default=[]),
        scan_count=dict(type='int', default=1000),
        max_scan_keys=dict(type='int', no_log=False, default=100000),
        max_duration_s=dict(type='float', default=60),
        memory_sample_keys=dict(type='int', no_log=False, default=100),
        top_keys=dict(type='int', no_log=False, default=5),
        expire_without_ttl=dict(type='list', elements='dict', default=[],
                                options=dict(pattern=dict(type='str', required=True), ttl_s=dict(type='int', required=True))),
        unlink=dict(type='list', elements='dict', default=[],
                    options=dict(pattern=dict(type='str', required=True), min_idle_s=dict(type='int', required=True))),
        allow_all=dict(type='bool', default=False),
        memory_purge=dict(type='bool', default=False),
        bgsave=dict(type='bool', default=False),
        verify_rdb=dict(type='bool', default=False),
        bgrewriteaof=dict(type='bool', default=False),
        rdb_path=dict(type='path'),
        redis_check_rdb_path=dict(type='str', default='redis-check-rdb'),
        wait_s=dict(type='float', default=300),
    )


def check_options(module):
    """Refuse bad values before the server is asked anything; return the options with thresholds and state file resolved."""
    p = dict(module.params)
    for key, low in (('timeout', 0.1), ('scan_count', 1), ('max_duration_s', 0.1), ('wait_s', 1), ('max_scan_keys', 0),
                     ('slowlog_count', 0), ('memory_sample_keys', 0), ('top_keys', 0), ('db', 0)):
        if p[key] < low:
            module.fail_json(msg='%s must be at least %s (got %s)' % (key, low, p[key]))
    if any(not pattern for pattern in p['scan_patterns']):
        module.fail_json(msg='scan_patterns holds an empty pattern: remove it')
    if bool(p['client_cert']) != bool(p['client_key']):
        module.fail_json(msg='client_cert and client_key go together: give both or neither')
    try:
        check_key_rules(p['expire_without_ttl'], p['unlink'], p['allow_all'])
        p['thresholds'] = resolve_thresholds(p['thresholds'])
    except (ScanError, ReviewError) as exc:
        module.fail_json(msg=str(exc))
    if not p['state_file']:
        where = os.path.basename(p['login_unix_socket']) if p['login_unix_socket'] else '%s-%s' % (p['login_host'], p['login_port'])
        p['state_file'] = os.path.join(STATE_DIR, 'redis-%s.json' % re.sub(r'[^A-Za-z0-9_.-]', '_', where))
    return p


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = check_options(module)
    client = RedisClient(host=p['login_host'], port=p['login_port'], unix_socket=p['login_unix_socket'],
                         user=p['login_user'], password=p['login_password'], tls=p['tls'], ca_cert=p['ca_cert'],
                         client_cert=p['client_cert'], client_key=p['client_key'], validate_certs=p['validate_certs'],
                         timeout=p['timeout'])
    try:
        client.connect()
        if p['db']:
            client.command('SELECT', p['db'])
        result = run(client, p, module.check_mode)
    except RedisError as exc:
        module.fail_json(msg='redis_maintenance on %s: %s%s' % (client.where, exc, hint(getattr(exc, 'code', None))),
                         executed_commands=client.commands)
    except OSError as exc:
        module.fail_json(msg='redis_maintenance on %s: cannot write the state file %s: %s (set state_file to a writable path)'
                             % (client.where, p['state_file'], exc), executed_commands=client.commands)
    finally:
        client.close()
    result['executed_commands'] = client.commands
    failed = [a for a in result['actions'] if a['outcome'] == 'failed']
    if failed:
        module.fail_json(msg='%s; %s' % (result['summary'], '; '.join('%s: %s' % (a['action'], a['reason']) for a in failed)),
                         **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

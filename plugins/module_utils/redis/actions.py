# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The opt-in Redis actions: TTLs for keys without one, UNLINK of idle keys, MEMORY PURGE, BGSAVE (verified), BGREWRITEAOF.

Each action returns a dict with ``action``, ``outcome`` (``done``, ``planned``
in check mode, ``nothing to do``) and its figures; in check mode nothing is
written to the server, the same keys are counted. Key actions walk the
keyspace with :class:`Walk` under the same bounds as the review, and never
delete on their own judgement: ``expire_without_ttl`` only sets a TTL (with
``NX`` so a TTL set meanwhile wins), ``unlink`` removes keys of a named
pattern idle longer than a given time, and a pattern matching everything is
refused unless the caller says ``allow_all``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import format_argv
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.client import RedisReplyError, parse_info
from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.scan import (
    ScanError,
    Walk,
    each_reply,
    matches_everything,
)

POLL_S = 0.2


class ActionError(RuntimeError):
    """An action that could not be carried out; the message names the action, the cause and the next step."""


def check_key_rules(expire_rules, unlink_rules, allow_all):
    """Refuse empty patterns, bad numbers, and an ``unlink`` pattern selecting every key without ``allow_all``."""
    for rule in expire_rules or []:
        if not rule.get('pattern'):
            raise ScanError('expire_without_ttl: every entry needs a non-empty pattern')
        if rule['ttl_s'] < 1:
            raise ScanError('expire_without_ttl %r: ttl_s must be at least 1 second (got %s)' % (rule['pattern'], rule['ttl_s']))
    for rule in unlink_rules or []:
        if not rule.get('pattern'):
            raise ScanError('unlink: every entry needs a non-empty pattern')
        if rule['min_idle_s'] < 0:
            raise ScanError('unlink %r: min_idle_s must not be negative (got %s)' % (rule['pattern'], rule['min_idle_s']))
        if matches_everything(rule['pattern']) and not allow_all:
            raise ScanError('unlink pattern %r selects every key of the database: name a prefix (e.g. "cache:*"), '
                            'or set allow_all: true if emptying the database by idle time is really meant' % rule['pattern'])


def _writes(client, commands, action):
    """Pipeline write commands; a refusal (MISCONF, READONLY, NOPERM...) stops the action with its reason."""
    done = 0
    for reply in client.pipeline(commands):
        if isinstance(reply, RedisReplyError):
            raise ActionError('%s: Redis refused the write: %s%s' % (action, reply, hint(reply.code)))
        done += 1 if reply else 0
    return done


def hint(code):
    return {
        'MISCONF': ' (the last background save failed and stop-writes-on-bgsave-error is on: fix the RDB directory or '
                   'disk, then BGSAVE, before changing keys)',
        'READONLY': ' (this is a read-only replica: run the action on the master)',
        'NOPERM': ' (the ACL user lacks this command or key pattern: grant it, e.g. +expire +unlink ~prefix*)',
        'LOADING': ' (the server is still loading its dataset: run again when loading is done)',
    }.get(code, '')


def expire_without_ttl(client, rule, count, max_keys, deadline, check_mode):
    """Give every key of ``rule['pattern']`` that has no TTL the TTL ``rule['ttl_s']``; never delete."""
    walk = Walk(client, match=rule['pattern'], count=count, max_keys=max_keys, deadline=deadline)
    nx = ['NX'] if major_version(client) >= 7 else []  # EXPIRE ... NX arrived in Redis 7.0
    matched = selected = changed = 0
    for keys in walk.pages():
        matched += len(keys)
        chosen = [key for key, ttl in each_reply(client, ('TTL',), keys) if ttl == -1]
        selected += len(chosen)
        if chosen and not check_mode:
            changed += _writes(client, [['EXPIRE', key, rule['ttl_s']] + nx for key in chosen], 'expire_without_ttl')
    if selected and not check_mode:
        client.commands.append('EXPIRE <key> %d%s (%d keys of %s)' % (rule['ttl_s'], ' NX' if nx else '', selected, rule['pattern']))
    return dict(action='expire_without_ttl', pattern=rule['pattern'], ttl_s=rule['ttl_s'], keys_matched=matched,
                keys_selected=selected, keys_changed=changed, truncated=walk.truncated, stop_reason=walk.stop_reason,
                outcome=outcome(selected, check_mode))


def major_version(client):
    version = getattr(client, 'server_version', None) or '7'
    head = version.split('.', 1)[0]
    return int(head) if head.isdigit() else 7


def unlink_idle(client, rule, count, max_keys, deadline, check_mode):
    """UNLINK the keys of ``rule['pattern']`` idle (OBJECT IDLETIME) at least ``rule['min_idle_s']`` seconds."""
    walk = Walk(client, match=rule['pattern'], count=count, max_keys=max_keys, deadline=deadline)
    matched = selected = changed = 0
    for keys in walk.pages():
        matched += len(keys)
        replies = client.pipeline([['OBJECT', 'IDLETIME', key] for key in keys])
        refused = [r for r in replies if isinstance(r, RedisReplyError) and 'LFU' in str(r)]
        if refused:
            raise ActionError('unlink %r: idle time is not tracked under an LFU maxmemory-policy (%s): use an LRU or '
                              'no-eviction policy, or leave unlink off' % (rule['pattern'], refused[0]))
        chosen = [k for k, idle in zip(keys, replies) if isinstance(idle, int) and idle >= rule['min_idle_s']]
        selected += len(chosen)
        if chosen and not check_mode:
            changed += _writes(client, [['UNLINK', key] for key in chosen], 'unlink')
    if selected and not check_mode:
        client.commands.append('UNLINK <key> (%d keys of %s idle >= %d s)' % (selected, rule['pattern'], rule['min_idle_s']))
    return dict(action='unlink', pattern=rule['pattern'], min_idle_s=rule['min_idle_s'], keys_matched=matched,
                keys_selected=selected, keys_changed=changed, truncated=walk.truncated, stop_reason=walk.stop_reason,
                outcome=outcome(selected, check_mode))


def outcome(selected, check_mode):
    if not selected:
        return 'nothing to do'
    return 'planned' if check_mode else 'done'


def memory_purge(client, check_mode):
    if check_mode:
        return dict(action='memory_purge', outcome='planned')
    before = _info_int(client, 'memory', 'used_memory_rss')
    client.command('MEMORY', 'PURGE')
    after = _info_int(client, 'memory', 'used_memory_rss')
    return dict(action='memory_purge', outcome='done', rss_bytes_before=before, rss_bytes_after=after)


def _info(client, section):
    return parse_info(client.text('INFO', section))


def _info_int(client, section, key):
    value = _info(client, section).get(key, '')
    return int(value) if value.lstrip('-').isdigit() else None


def _wait(client, deadline, done, what):
    """Poll INFO persistence until ``done(info)`` is true; :class:`ActionError` at the deadline."""
    while True:
        info = _info(client, 'persistence')
        if done(info):
            return info
        if time.monotonic() >= deadline:
            raise ActionError('%s did not finish within the wait (wait_s): it may still be running; check INFO persistence'
                              % what)
        time.sleep(POLL_S)


def rdb_path(client):
    """Where the server writes its RDB (CONFIG GET dir + dbfilename)."""
    try:
        directory = client.command('CONFIG', 'GET', 'dir')[1].decode('utf-8', 'replace')
        name = client.command('CONFIG', 'GET', 'dbfilename')[1].decode('utf-8', 'replace')
    except (RedisReplyError, IndexError) as exc:
        raise ActionError('cannot ask Redis where its RDB is (CONFIG GET dir): %s: set rdb_path' % exc) from exc
    return os.path.join(directory, name)


def check_rdb(path, checker, timeout_s):
    """Run ``redis-check-rdb path``; return the verification dict (``ok`` True/False) and the argv run."""
    binary = checker if os.path.sep in checker else shutil.which(checker)
    if not binary or not os.path.exists(binary):
        raise ActionError('%s not found: install redis-tools (Debian) or set redis_check_rdb_path' % checker)
    if not os.path.isfile(path):
        raise ActionError('RDB file %s does not exist (is this host the Redis server? set rdb_path)' % path)
    argv = [binary, path]
    started = time.monotonic()
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ActionError('%s did not finish within %s s' % (format_argv(argv), timeout_s)) from exc
    text = done.stdout.decode('utf-8', 'replace')
    ok = done.returncode == 0 and 'RDB looks OK' in text
    stat = os.stat(path)
    return dict(path=path, ok=ok, rc=done.returncode, size_bytes=stat.st_size, mtime=int(stat.st_mtime),
                check_ms=round((time.monotonic() - started) * 1000.0, 1),
                output_tail=text[-1500:] if not ok else None), format_argv(argv)


def bgsave(client, path, checker, wait_s, check_mode):
    """BGSAVE, wait for it to finish, then verify the new RDB with redis-check-rdb."""
    if check_mode:
        return dict(action='bgsave', outcome='planned', path=path)
    deadline = time.monotonic() + wait_s
    before = _info(client, 'persistence')
    started = time.monotonic()
    try:
        client.command('BGSAVE')
    except RedisReplyError as exc:
        if 'in progress' not in str(exc):
            raise ActionError('BGSAVE refused: %s%s' % (exc, hint(exc.code))) from exc
    last = before.get('rdb_last_save_time')
    info = _wait(client, deadline, lambda i: i.get('rdb_bgsave_in_progress') == '0' and (
        i.get('rdb_last_save_time') != last or i.get('rdb_last_bgsave_status') == 'err'), 'BGSAVE')
    if info.get('rdb_last_bgsave_status') != 'ok':
        raise ActionError('BGSAVE failed (rdb_last_bgsave_status: %s): see the Redis log; check that dir %s is writable '
                          'and the disk has room' % (info.get('rdb_last_bgsave_status'), os.path.dirname(path)))
    save_ms = round((time.monotonic() - started) * 1000.0, 1)
    verified, argv = check_rdb(path, checker, max(10, deadline - time.monotonic()))
    client.commands.append(argv)
    return dict(action='bgsave', outcome='done' if verified['ok'] else 'failed', save_ms=save_ms, verification=verified,
                path=path, size_bytes=verified['size_bytes'])


def verify_rdb(client, path, checker, wait_s):
    """Verify the RDB file as it is now (no save); a read, done in check mode too."""
    verified, argv = check_rdb(path, checker, wait_s)
    client.commands.append(argv)
    return dict(action='verify_rdb', outcome='done' if verified['ok'] else 'failed', verification=verified, path=path,
                size_bytes=verified['size_bytes'])


def bgrewriteaof(client, wait_s, check_mode):
    if check_mode:
        return dict(action='bgrewriteaof', outcome='planned')
    deadline = time.monotonic() + wait_s
    started = time.monotonic()
    try:
        client.command('BGREWRITEAOF')
    except RedisReplyError as exc:
        raise ActionError('BGREWRITEAOF refused: %s%s' % (exc, hint(exc.code))) from exc
    info = _wait(client, deadline, lambda i: i.get('aof_rewrite_in_progress') == '0'
                 and i.get('aof_rewrite_scheduled') == '0', 'BGREWRITEAOF')
    status = info.get('aof_last_bgrewrite_status')
    return dict(action='bgrewriteaof', outcome='done' if status == 'ok' else 'failed', rewrite_status=status,
                rewrite_ms=round((time.monotonic() - started) * 1000.0, 1))

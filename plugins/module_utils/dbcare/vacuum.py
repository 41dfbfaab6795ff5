# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bloat-targeted VACUUM/ANALYZE: select from statistics, then work table by table.

Why this shape:

* A blanket ``VACUUM ANALYZE`` reads every table; most need nothing. The
  cumulative statistics (``pg_stat_get_dead_tuples`` and friends) say which
  ones do, so the plan is made from one catalog query, and only the selected
  tables are touched.
* Statistics lag: PostgreSQL 15 flushes a session's counters at most once a
  second or at session end. The plan is therefore read in a connection of our
  own, opened when the module starts. VACUUM and ANALYZE write their results
  (live/dead tuples, modifications since analyze) to the shared statistics
  directly when they finish, so a second run sees the first one's effect at
  once: that is what makes the module idempotent.
* Locks: every statement runs under ``lock_timeout``; a table whose lock
  cannot be had in time is skipped (``lock_timeout``) and the run goes on.
  Even the size lookup (``pg_total_relation_size`` takes ACCESS SHARE) runs
  under it, which is why the plan orders tables by the lock-free estimate
  from ``pg_class`` and measures exact sizes only when a table's turn comes.
* Names reach SQL only as ``psycopg2.sql.Identifier``; globs are matched in
  Python (see ``_globs``).
"""

from __future__ import annotations

import threading
import time

try:
    import psycopg2
    import psycopg2.errors
    from psycopg2 import sql
except ImportError:  # reported by the module through missing_required_lib
    pass

from ansible_collections.engineroom.maintenance.plugins.module_utils.postgres.connection import (
    PostgresError,
    StatementRunner,
    connect,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.dbcare.horizon import describe_holder, horizon_holders
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms

MODES = ('analyze', 'vacuum', 'vacuum_analyze', 'full', 'freeze')
MAX_JOBS = 8
# A worker refused for lack of connection slots before any worker connected retries this often.
CONNECT_ATTEMPTS = 10
CONNECT_RETRY_S = 0.2

# Every statement of an action is fixed text around one Identifier.
ACTION_SQL = dict(
    analyze='ANALYZE {}',
    vacuum='VACUUM {}',
    vacuum_analyze='VACUUM (ANALYZE) {}',
    full='VACUUM (FULL, ANALYZE) {}',
    freeze='VACUUM (FREEZE, ANALYZE) {}',
)

# The plan: ordinary tables, partitioned parents and materialized views outside
# the system schemas, other sessions' temporary tables left out (VACUUM cannot
# touch them). Each row carries its TOAST table's live and dead tuples (VACUUM
# of a table vacuums its TOAST table too) and, for a partition, its ancestors
# (so that naming the parent selects it). A partitioned parent has no tuples
# of its own: its live tuples are its leaf partitions'. can_maintain mirrors
# PostgreSQL 15's rule for VACUUM/ANALYZE: superuser, table owner (or member of
# the owning role), or database owner.
CATALOG_QUERY = """
SELECT c.oid, n.nspname, c.relname, c.relkind,
       CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_stat_get_live_tuples(t.relid)), 0)::bigint
                                       FROM pg_partition_tree(c.oid) t WHERE t.isleaf)
            ELSE pg_stat_get_live_tuples(c.oid) END,
       pg_stat_get_dead_tuples(c.oid), pg_stat_get_mod_since_analyze(c.oid),
       (pg_stat_get_last_analyze_time(c.oid) IS NOT NULL OR pg_stat_get_last_autoanalyze_time(c.oid) IS NOT NULL),
       c.relpages::bigint * current_setting('block_size')::bigint, c.reltuples::float8,
       (pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE')),
       c.reltoastrelid::bigint, pg_stat_get_live_tuples(c.reltoastrelid), pg_stat_get_dead_tuples(c.reltoastrelid),
       CASE WHEN c.relispartition THEN
            (SELECT json_agg(json_build_array(an.nspname, ac.relname)) FROM pg_partition_ancestors(c.oid) a
             JOIN pg_class ac ON ac.oid = a.relid JOIN pg_namespace an ON an.oid = ac.relnamespace
             WHERE a.relid <> c.oid) END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_database d ON d.datname = current_database()
WHERE c.relkind IN ('r', 'm', 'p') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY n.nspname, c.relname
"""
CATALOG_COLUMNS = ('oid', 'schema', 'table', 'relkind', 'live_tuples', 'dead_tuples', 'mod_since_analyze', 'analyzed',
                   'relpages_bytes', 'reltuples', 'can_maintain', 'toast_oid', 'toast_live_tuples',
                   'toast_dead_tuples', 'ancestors')

# Figures at a table's turn. pg_total_relation_size takes ACCESS SHARE, so this
# also finds out, under lock_timeout, whether the table is locked away.
TABLE_FIGURES = ('SELECT pg_stat_get_dead_tuples(%(oid)s), pg_stat_get_live_tuples(%(oid)s), '
                 'pg_total_relation_size(%(oid)s), pg_stat_get_dead_tuples(%(toast)s), '
                 'pg_stat_get_live_tuples(%(toast)s)')


def catalog_rows(runner):
    """The plan's catalog rows; a refused or cancelled catalog read raises PostgresError in operator words."""
    try:
        return [dict(zip(CATALOG_COLUMNS, row)) for row in runner.rows(CATALOG_QUERY)]
    except psycopg2.Error as exc:
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PostgresError(
            'cannot read the table catalog (pg_class, pg_namespace, pg_database) of database %r as role %r: %s; '
            'nothing was vacuumed: give the login role read access to the catalog (or log in as a role that has '
            'it) and check its statement_timeout' % (runner.conn.info.dbname, runner.conn.info.user, cause)) from None


def estimated_bytes(row):
    """Size estimate without taking a lock: relpages scaled by how the tuple count changed since."""
    tuples = (row['live_tuples'] or 0) + (row['dead_tuples'] or 0)
    if row['reltuples'] and row['reltuples'] > 0 and tuples:
        return int(row['relpages_bytes'] * tuples / row['reltuples'])
    return int(row['relpages_bytes'] or 0)


def dead_ratio(row, prefix=''):
    """n_dead_tup / n_live_tup; a table with dead tuples and no live one counts as fully dead.

    ``prefix='toast_'`` reads the TOAST table's figures of the row instead of the heap's.
    """
    live, dead = row.get(prefix + 'live_tuples') or 0, row.get(prefix + 'dead_tuples') or 0
    if live:
        return float(dead) / live
    return 1.0 if dead else 0.0


def is_bloated(row, min_dead_tuples, min_dead_ratio, prefix=''):
    dead = row.get(prefix + 'dead_tuples') or 0
    return dead > 0 and dead >= min_dead_tuples and dead_ratio(row, prefix) >= min_dead_ratio


def bloated_parts(row, min_dead_tuples, min_dead_ratio):
    """Which of the table's heap and TOAST table are bloated: a sublist of ``['heap', 'toast']``."""
    return [part for part, prefix in (('heap', ''), ('toast', 'toast_'))
            if is_bloated(row, min_dead_tuples, min_dead_ratio, prefix)]


def stale_reason(row, analyze_threshold_ratio):
    """Why the table's statistics are stale, or None when they are fresh enough.

    A partitioned parent has no modification counter of its own (and
    autovacuum never analyzes it): its row estimate is compared with the live
    tuples of its partitions.
    """
    if not row['analyzed']:
        return 'partitioned parent never analyzed' if row.get('relkind') == 'p' else 'never analyzed'
    live, estimate = row['live_tuples'] or 0, row['reltuples']
    off = estimate is not None and estimate >= 0 and abs(live - estimate) > analyze_threshold_ratio * max(live, 1)
    if row.get('relkind') == 'p':
        return 'partitioned parent estimates %d rows, its partitions hold %d live' % (estimate, live) if off else None
    reasons = []
    modified = row['mod_since_analyze'] or 0
    ratio = float(modified) / max(live, 1)
    if modified and ratio > analyze_threshold_ratio:
        reasons.append('modified since analyze %d rows (%.2f > %s of live)' % (modified, ratio, analyze_threshold_ratio))
    if off and live:
        reasons.append('row estimate %d against %d live rows' % (estimate, live))
    return '; '.join(reasons) or None


def plan_action(row, mode, thresholds, force=False):
    """(action, reason) for one catalog row, or None when the table needs nothing.

    Bloat (dead tuples over both thresholds, in the heap or in the TOAST
    table) or ``force`` selects the table for ``mode``; stale statistics
    select it for ANALYZE only, in every mode that analyzes (all but
    ``vacuum``). A partitioned parent is only ever analyzed. FULL is only ever
    the operator's mode.
    """
    if row.get('relkind') == 'p':
        # A parent is analyzed, never vacuumed: VACUUM of it would redo every partition, selected on their own.
        if mode == 'vacuum':
            return None
        if force:
            return 'analyze', 'forced'
        reason = stale_reason(row, thresholds['analyze_threshold_ratio'])
        return ('analyze', reason) if reason else None
    if force:
        return mode, 'forced'
    parts = bloated_parts(row, thresholds['min_dead_tuples'], thresholds['min_dead_ratio']) if mode != 'analyze' else []
    if parts:
        words = dict(heap='dead tuples %d >= %d, dead ratio %.2f >= %s',
                     toast='TOAST dead tuples %d >= %d, TOAST dead ratio %.2f >= %s')
        return mode, '; '.join(words[part] % (
            row.get(prefix + 'dead_tuples'), thresholds['min_dead_tuples'], dead_ratio(row, prefix),
            thresholds['min_dead_ratio']) for part, prefix in (('heap', ''), ('toast', 'toast_')) if part in parts)
    if mode != 'vacuum':
        reason = stale_reason(row, thresholds['analyze_threshold_ratio'])
        if reason:
            return 'analyze', reason
    return None


def plan(database, rows, mode, thresholds, force=False):
    """Table entries (the module's ``tables`` result) for the rows that need work, largest first."""
    entries = []
    for row in rows:
        decided = plan_action(row, mode, thresholds, force)
        if decided is None:
            continue
        entries.append(dict(
            database=database, schema=row['schema'], table=row['table'], action=decided[0],
            status='planned', reason=decided[1],
            dead_tuples_before=row['dead_tuples'], dead_tuples_after=None, live_tuples=row['live_tuples'],
            toast_dead_tuples_before=row.get('toast_dead_tuples') or 0, toast_dead_tuples_after=None,
            size_bytes_before=None, size_bytes_after=None, duration_ms=0.0, held_by=None,
            _oid=row['oid'], _toast_oid=row.get('toast_oid') or 0, _estimate=estimated_bytes(row),
            _can_maintain=row['can_maintain'],
        ))
    entries.sort(key=lambda e: (-e['_estimate'], e['schema'], e['table']))
    return entries


def session_settings(runner, lock_timeout_ms, statement_timeout_ms):
    runner.rows("SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                ('%dms' % lock_timeout_ms, '%dms' % statement_timeout_ms))


def _error_reason(exc):
    """Map a PostgreSQL error to the reason the result reports."""
    if isinstance(exc, psycopg2.errors.LockNotAvailable):
        return 'skipped', 'lock_timeout'
    if isinstance(exc, psycopg2.errors.QueryCanceled):
        text = str(exc)
        return 'skipped', 'statement_timeout' if 'statement timeout' in text else 'canceled: %s' % text.splitlines()[0]
    if isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        return 'skipped', 'insufficient_privilege'
    if isinstance(exc, psycopg2.errors.UndefinedTable):
        return 'skipped', 'table dropped since the plan was made'
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return 'failed', first


def work_table(runner, entry, check_mode, own_pids=()):
    """Measure, act on and re-measure one table; fill its entry in place.

    After VACUUM, the dead tuples PostgreSQL still counts (heap and TOAST)
    are those that were not yet removable. When some remain and a holder of
    the cleanup horizon exists (a session of this database other than this
    run's own, a prepared transaction, a replication slot), the table is
    ``held_back`` rather than ``done`` and the oldest holder is named.
    """
    started = time.monotonic()
    if not entry['_can_maintain']:
        entry.update(status='skipped', reason='insufficient_privilege')
        return
    oids = dict(oid=entry['_oid'], toast=entry['_toast_oid'])
    identifier = sql.Identifier(entry['schema'], entry['table'])
    try:
        dead, live, size, toast_dead, _toast_live = runner.rows(TABLE_FIGURES, oids)[0]
        entry.update(dead_tuples_before=dead, live_tuples=live, size_bytes_before=size, toast_dead_tuples_before=toast_dead)
        if check_mode:
            return
        del runner.conn.notices[:]
        runner.run(sql.SQL(ACTION_SQL[entry['action']]).format(identifier))
        # VACUUM and ANALYZE only warn when they skip a table they may not maintain.
        if any('skipping' in notice for notice in runner.conn.notices):
            entry.update(status='skipped', reason='insufficient_privilege')
            return
        dead, live, size, toast_dead, _toast_live = runner.rows(TABLE_FIGURES, oids)[0]
        entry.update(status='done', dead_tuples_after=dead, live_tuples=live, size_bytes_after=size,
                     toast_dead_tuples_after=toast_dead)
        if entry['action'] != 'analyze' and dead + toast_dead > 0:
            check_horizon(runner, entry, own_pids)
    except psycopg2.Error as exc:
        entry['status'], entry['reason'] = _error_reason(exc)
    finally:
        entry['duration_ms'] = elapsed_ms(started)


def check_horizon(runner, entry, own_pids):
    """Mark the entry ``held_back`` by the oldest holder of the horizon, when there is one."""
    holders = horizon_holders(runner, own_pids)
    if not holders:
        return
    left = entry['dead_tuples_after'] + entry['toast_dead_tuples_after']
    entry.update(status='held_back', held_by=holders[0],
                 reason='%d dead tuples not yet removable: the cleanup horizon is held by %s' % (
                     left, describe_holder(holders[0])))


class Budget:
    """The run's time budget: after ``max_duration_s`` no new table starts."""

    def __init__(self, started, max_duration_s):
        self.deadline = started + max_duration_s if max_duration_s else None

    def exhausted(self):
        return self.deadline is not None and time.monotonic() >= self.deadline


class DatabaseWork:
    """One database's entries worked through by ``jobs`` threads, each with its own connection.

    Each worker takes the next table from the shared list; when the budget is
    exhausted the tables not yet started are marked ``deferred``. A worker
    whose connection cannot be opened (``max_connections``, a role's
    CONNECTION LIMIT) just stops and leaves the list to the workers that did
    connect.
    """

    def __init__(self, params, entries, options, budget, check_mode):
        self.params = params
        self.entries = entries
        self.options = options
        self.budget = budget
        self.check_mode = check_mode
        self.pending = list(entries)
        self.lock = threading.Lock()
        self.executed = []
        self.refused = []
        self.connected = []
        self.own_pids = []

    def next_entry(self):
        with self.lock:
            return self.pending.pop(0) if self.pending else None

    def fail_rest(self, reason):
        entry = self.next_entry()
        while entry is not None:
            entry.update(status='failed', reason=reason)
            entry = self.next_entry()

    def open_connection(self):
        """Connect; while no worker is connected yet, retry a refusal for lack of connection slots.

        The planning connection's backend may still be exiting when the
        workers start, which matters when a role's CONNECTION LIMIT is as low
        as the number of connections this run needs.
        """
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                return connect(self.params)
            except PostgresError as exc:
                with self.lock:
                    retry = not self.connected and attempt + 1 < CONNECT_ATTEMPTS and _out_of_slots(str(exc))
                if not retry:
                    raise
            time.sleep(CONNECT_RETRY_S)
        return None  # not reached: the last attempt raises

    def worker(self):
        try:
            conn = self.open_connection()
        except PostgresError as exc:
            with self.lock:
                self.refused.append(str(exc))
            return
        with self.lock:
            self.connected.append(conn)
            self.own_pids.append(conn.get_backend_pid())
        runner = StatementRunner(conn)
        try:
            session_settings(runner, self.options['lock_timeout_ms'], self.options['statement_timeout_ms'])
            entry = self.next_entry()
            while entry is not None:
                if self.budget.exhausted():
                    entry.update(status='deferred', reason='max_duration_s reached before this table started')
                else:
                    work_table(runner, entry, self.check_mode, self.own_pids)
                entry = self.next_entry()
        except psycopg2.Error as exc:  # the session itself broke (settings refused, connection lost)
            self.fail_rest(_error_reason(exc)[1])
        finally:
            conn.close()
            with self.lock:
                self.executed.extend(runner.executed)

    def run(self):
        """(statements run, connection problems: distinct messages once each).

        Only when no worker connected at all are the tables marked ``failed``
        with the connection message (and no problem is returned, the tables say it).
        """
        threads = [threading.Thread(target=self.worker, name='pg_vacuum-%d' % i)
                   for i in range(max(1, min(self.options['jobs'], len(self.entries))))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not self.connected:
            self.fail_rest(self.refused[0])
            return self.executed, []
        return self.executed, list(dict.fromkeys(self.refused))


def run_database(params, entries, options, budget, check_mode):
    """Work through one database's entries over ``jobs`` connections, largest first (see :class:`DatabaseWork`)."""
    return DatabaseWork(params, entries, options, budget, check_mode).run()


def _out_of_slots(message):
    return 'too many connections' in message or 'remaining connection slots' in message


def public_entry(entry):
    return dict((key, value) for key, value in entry.items() if not key.startswith('_'))


def removed(entry, prefix=''):
    """Dead tuples (of the heap, or with ``prefix='toast_'`` of the TOAST table) the action removed."""
    return max(0, (entry.get(prefix + 'dead_tuples_before') or 0) - (entry.get(prefix + 'dead_tuples_after') or 0))


def totals(entries):
    """Sums over the tables that were done or held back; ANALYZE removes nothing, so it adds no dead tuples removed.

    ``dead_tuples_removed`` counts the heap and the TOAST table together;
    ``toast_dead_tuples_removed`` says how many of them were TOAST tuples.
    """
    done = [e for e in entries if e['status'] == 'done']
    worked = [e for e in entries if e['status'] in ('done', 'held_back') and e['action'] != 'analyze']
    toast = sum(removed(e, 'toast_') for e in worked)
    return dict(
        tables_processed=len(done),
        dead_tuples_removed=sum(removed(e) for e in worked) + toast,
        toast_dead_tuples_removed=toast,
        bytes_reclaimed=sum(max(0, (e['size_bytes_before'] or 0) - (e['size_bytes_after'] or 0)) for e in worked),
    )


def count_by(entries, key):
    counts = {}
    for entry in entries:
        counts[entry[key]] = counts.get(entry[key], 0) + 1
    return counts

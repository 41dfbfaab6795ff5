# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who holds the cleanup horizon: the reason VACUUM leaves dead tuples behind.

VACUUM removes a dead tuple only when no transaction may still see it: the
horizon is the oldest of the snapshots (``backend_xmin``) and transaction IDs
(``backend_xid``) of the sessions of the same database, of the prepared
transactions of that database, and of the ``xmin`` of replication slots
(a standby with ``hot_standby_feedback``). A logical slot's ``catalog_xmin``
holds only the system catalogs, so it is reported by pg_insight, not blamed for
a user table. After VACUUM, ``pg_stat_get_dead_tuples`` is the number of
tuples that were dead but not yet removable; when it is not zero and one of
these holders exists, the oldest one is named.
"""

from __future__ import annotations

QUERY_CHARS = 200

# One row per possible holder in the current database, oldest transaction ID first.
HOLDERS = """
SELECT 'session', a.pid, NULL::text, a.usename::text, a.application_name, a.state,
       round(extract(epoch FROM now() - a.xact_start)::numeric, 1)::float8,
       greatest(age(a.backend_xmin), age(a.backend_xid)), left(a.query, %(chars)s)
FROM pg_stat_activity a
WHERE a.datname = current_database() AND (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
  AND a.pid <> ALL(%(own)s) AND a.backend_type NOT IN ('autovacuum worker', 'walsender')
UNION ALL
SELECT 'prepared_transaction', NULL, p.gid, p.owner::text, NULL, NULL,
       round(extract(epoch FROM now() - p.prepared)::numeric, 1)::float8, age(p.transaction), NULL
FROM pg_prepared_xacts p
WHERE p.database = current_database()
UNION ALL
SELECT 'replication_slot', s.active_pid, s.slot_name::text, NULL, s.slot_type, CASE WHEN s.active THEN 'active' ELSE 'inactive' END,
       NULL, age(s.xmin), NULL
FROM pg_replication_slots s
WHERE s.xmin IS NOT NULL
ORDER BY 8 DESC NULLS LAST
"""
HOLDER_KEYS = ('kind', 'pid', 'name', 'user', 'application', 'state', 'age_s', 'xid_age', 'query')


def horizon_holders(runner, own_pids=()):
    """The possible holders of the current database's horizon, oldest first (dicts with HOLDER_KEYS)."""
    rows = runner.rows(HOLDERS, dict(chars=QUERY_CHARS, own=list(own_pids) or [0]))
    return [dict(zip(HOLDER_KEYS, row)) for row in rows]


def describe_holder(holder):
    """``session pid 4242 (alice, psql, idle in transaction, open 312 s, xid age 1,204): UPDATE ...``."""
    if holder['kind'] == 'session':
        details = [holder['user'] or '?', holder['application'] or 'no application_name', holder['state'] or '?']
        if holder['age_s'] is not None:
            details.append('transaction open %.0f s' % holder['age_s'])
        details.append('xid age %s' % '{:,}'.format(holder['xid_age'] or 0))
        text = 'session pid %s (%s)' % (holder['pid'], ', '.join(details))
        return text + (': %s' % holder['query'] if holder['query'] else '')
    if holder['kind'] == 'prepared_transaction':
        return 'prepared transaction %r (owner %s, prepared %.0f s ago, xid age %s): COMMIT PREPARED or ' \
               'ROLLBACK PREPARED it' % (holder['name'], holder['user'], holder['age_s'] or 0,
                                         '{:,}'.format(holder['xid_age'] or 0))
    return 'replication slot %r (%s, %s, xmin age %s): a standby with hot_standby_feedback or an unused slot' % (
        holder['name'], holder['application'], holder['state'], '{:,}'.format(holder['xid_age'] or 0))


def terminate_old_holders(runner, older_than_s, check_mode):
    """Terminate the sessions of this database whose transaction holding the horizon is older than ``older_than_s``.

    Only sessions (a prepared transaction or a slot is never touched), never
    the calling session. Returns the holders, each with ``terminated``: True
    when PostgreSQL confirmed it, False when it refused (another role's
    session without ``pg_signal_backend``), None in check mode.
    """
    own = runner.scalar('SELECT pg_backend_pid()')
    victims = [h for h in horizon_holders(runner, [own])
               if h['kind'] == 'session' and h['age_s'] is not None and h['age_s'] > older_than_s]
    for holder in victims:
        holder['terminated'] = None if check_mode else bool(
            runner.scalar('SELECT pg_terminate_backend(%s)', (holder['pid'],)))
    return victims

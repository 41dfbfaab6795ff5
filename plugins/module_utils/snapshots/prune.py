# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying the keep_* rules to a backup directory: what to keep, what to delete, and when to refuse.

The rules themselves (slots, selection) are in ``retention``; this module
groups the snapshots by identity, refuses to delete while nothing verified
(or the newest kept one does not verify now), and deletes artifact and
manifest together.
"""

from __future__ import annotations

import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.catalog import (
    snapshot_identity,
    snapshots,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.dump import DumpError
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.incremental import ChainError, check_chain, keep_chains
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.manifest import parse_artifact_name
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.retention import select
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.roles import GLOBALS_SUFFIX
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.verify import (
    VerifyError,
    pg_restore_for,
    verify_snapshot,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.files import fsync_dir
from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import utc_now


class PruneRefused(Exception):
    """Retention may not (or could not) delete: the reason, phrased for the operator."""


class Pruner:
    """Retention for one selection (``prefix``/``tier``, optionally a database and roots) of ``dest``.

    :meth:`run` fills :attr:`kept` and :attr:`pruned` (paths) as it goes, so
    a refusal still reports what was decided before it.
    """

    def __init__(self, dest, prefix, tier, database, roots, pg_dump_path, executed):
        self.dest = dest
        self.prefix = prefix
        self.tier = tier
        self.database = database
        self.roots = roots
        self.pg_dump_path = pg_dump_path
        self.executed = executed
        self.kept = []
        self.pruned = []
        self.reasons = {}  # kept path -> why (retention rules, or the incremental archive that needs it)
        self.planned_chain = []  # file names of the chain a planned (check mode) incremental archive needs

    def run(self, policy, snapshot=None, check_mode=False):
        """Delete what ``policy`` does not keep (check mode: list it), counting a planned ``snapshot`` as written.

        The rules apply to each identity (database, and roots for the full
        tier) on its own, so every database and every set of trees keeps its
        own newest verified snapshot.
        """
        this_run = snapshot['path'] if snapshot and snapshot['status'] != 'existing' else None
        dropped_all = []
        for identity, group in sorted(self._groups(snapshot).items(), key=lambda item: repr(item[0])):
            kept, dropped = keep_chains(*select(group, policy, utc_now()))
            self.kept.extend(snap['path'] for snap in kept)
            self.reasons.update((snap['path'], snap['reasons']) for snap in kept)
            if dropped and not any(snap['verified'] for snap in group):
                raise PruneRefused('refusing to prune %s: none of its %d %s snapshots of prefix %s%s is verified, so '
                                   'none may be deleted; take or verify a snapshot first'
                                   % (self.dest, len(group), self.tier, self.prefix, describe_identity(identity)))
            if dropped:
                self._check_newest_kept(kept, this_run)
            dropped_all.extend(dropped)
        for snap in dropped_all:
            if not check_mode:
                try:
                    os.unlink(snap['path'])
                    os.unlink(snap['manifest_path'])
                    if os.path.lexists(snap['path'] + GLOBALS_SUFFIX):
                        os.unlink(snap['path'] + GLOBALS_SUFFIX)
                except OSError as exc:
                    raise PruneRefused('cannot delete snapshot %s: %s' % (snap['path'], exc.strerror or exc)) from exc
            self.pruned.append(snap['path'])
        if dropped_all and not check_mode:
            fsync_dir(self.dest)
        return self.pruned

    def _groups(self, snapshot):
        candidates = snapshots(self.dest, self.prefix, self.tier, self.database, self.roots)
        if snapshot and snapshot['status'] == 'planned':
            # Its moment is the one its name carries (moved past any snapshot of the same second), as when written.
            created = parse_artifact_name(os.path.basename(snapshot['path']))['created']
            candidates.append(dict(path=snapshot['path'], manifest_path=snapshot['manifest_path'], created=created,
                                   verified=True, identity=snapshot_identity(self.tier, self.database, self.roots),
                                   manifest=dict(incremental=dict(chain=[dict(file=name) for name in self.planned_chain]))))
        groups = {}
        for snap in candidates:
            groups.setdefault(snap['identity'], []).append(snap)
        return groups

    def _check_newest_kept(self, kept, this_run):
        """Refuse to delete older snapshots while the newest one kept in their place does not verify now.

        A manifest's ``verified_at`` says the file was good when it was
        written; a file damaged since then (a flipped bit, a truncated copy)
        must not be what justifies deleting the good older ones. The snapshot
        this run wrote was just verified and is not read again.
        """
        newest = max(kept, key=lambda snap: snap['created']) if kept else None
        if newest is None or newest['path'] == this_run:
            return
        try:
            verify_snapshot(newest['path'], newest['manifest'], pg_restore_for(self.pg_dump_path, newest['manifest']),
                            self.executed)
            check_chain(newest['path'], newest['manifest'])
        except (VerifyError, DumpError, ChainError) as exc:
            raise PruneRefused('refusing to prune: the newest snapshot retention keeps, %s, does not verify now (%s); '
                               'nothing was deleted: take a new snapshot (or remove the damaged one with its manifest) '
                               'first' % (newest['path'], exc)) from exc


def describe_identity(identity):
    database, roots = identity
    parts = (['database %s' % database] if database else []) + (['paths %s' % ', '.join(roots)] if roots else [])
    return ' (%s)' % '; '.join(parts) if parts else ''

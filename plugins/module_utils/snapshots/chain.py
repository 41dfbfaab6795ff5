# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring an incremental chain: base + links into one directory, every file checked against the final index.

Each archive of the chain is read completely (its sha256 compared with the
one the chain recorded, every frame decompressed); from each, only the files
the final index says it holds are extracted. The newest archive comes first:
it holds every directory and symlink of the final state (and the database
dump, if any). Then the restored tree must be exactly the final index: every
regular file with its sha256, every directory and symlink, nothing else
(deleted files absent).
"""

from __future__ import annotations

import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.compression import ArchiveError
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.extract import scan_tar
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.incremental import (
    ChainError,
    chain_files,
    check_chain,
    entry_kind,
    parse_entry,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.verify import VerifyError


def _compression(path):
    return 'zstd' if path.endswith('.zst') else 'gzip'


def _wanted(manifest, index, count):
    """Per archive of the chain (by position), the members to extract from it."""
    wanted = [set() for _position in range(count)]
    for member, entry in index.items():
        wanted[entry[6] if entry[0] == 'f' else count - 1].add(member)
    member = (manifest.get('database') or {}).get('member')
    if member:
        wanted[count - 1].add(member)
    return wanted


def _extract_chain(path, manifest, index, target):
    """Extract each archive's share into ``target``, newest first; returns {member: sha256 of the bytes written}."""
    links = chain_files(path, manifest)
    wanted = _wanted(manifest, index, len(links))
    restored = {}
    for position in reversed(range(len(links))):
        role, link_path, sha = links[position]
        try:
            scan, raw = scan_tar(link_path, _compression(link_path), target, only=wanted[position])
        except ArchiveError as exc:
            raise ChainError('the %s %s of the chain of %s does not verify: it cannot be read back (%s); take a full '
                             'archive (mode: full) to start a new chain'
                             % (role, os.path.basename(link_path), os.path.basename(path), exc)) from exc
        if raw.sha256 != sha:
            raise ChainError('the %s %s of the chain of %s does not verify: sha256 %s, the chain recorded %s (it was '
                             'changed after it was written): take a full archive (mode: full) to start a new chain'
                             % (role, os.path.basename(link_path), os.path.basename(path), raw.sha256, sha))
        for member in wanted[position]:
            if member in scan.checksums:
                restored[member] = scan.checksums[member]
    return restored


def _on_disk(target):
    """{member: kind} of everything restored under ``files/``."""
    found = {}
    root = os.path.join(target, 'files')
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(directory, name)
            found['files/' + os.path.relpath(full, root)] = entry_kind(os.lstat(full))
    return found


def restore_chain(path, manifest, target):
    """Restore the chain ending at ``path`` into ``target`` and check it; returns the drill's ``files`` dict.

    Raises VerifyError naming the base or link that is missing, damaged, or
    the first file that does not match.
    """
    index = dict((member, parse_entry(value)) for member, value in manifest['files']['index'].items())
    try:
        check_chain(path, manifest)
        restored = _extract_chain(path, manifest, index, target)
    except ChainError as exc:
        raise VerifyError(str(exc)) from exc
    regular = dict((member, entry) for member, entry in index.items() if entry[0] == 'f')
    for member, entry in sorted(regular.items()):
        if restored.get(member) != entry[5]:
            raise VerifyError('restored file %s of the chain of %s does not match the final manifest (sha256 %s, '
                              'recorded %s)' % (member, os.path.basename(path), restored.get(member), entry[5]))
    on_disk = _on_disk(target)
    expected = dict((member, entry[0]) for member, entry in index.items())
    for member in list(expected):  # the directories above the archived roots (files/srv above files/srv/uploads)
        parent = os.path.dirname(member)
        while parent not in ('files', '') and parent not in expected:
            expected[parent] = 'd'
            parent = os.path.dirname(parent)
    extra = sorted(set(on_disk) - set(expected))
    missing = sorted(member for member in expected if on_disk.get(member) != expected[member])
    if extra or missing:
        raise VerifyError('the restored chain of %s differs from its final manifest: %s' % (
            os.path.basename(path), '; '.join(part for part in (
                'unexpected %s' % ', '.join(extra[:5]) if extra else '',
                'missing or of another type %s' % ', '.join(missing[:5]) if missing else '') if part)))
    chain = chain_files(path, manifest)
    return dict(expected_count=len(regular), restored_count=len(regular),
                expected_bytes=sum(entry[1] for entry in regular.values()),
                restored_bytes=sum(entry[1] for entry in regular.values()), checksums_checked=len(regular),
                absolute_links=0, match=True, chain=[os.path.basename(link[1]) for link in chain],
                deleted_absent=len((manifest.get('incremental') or {}).get('deleted') or ()))

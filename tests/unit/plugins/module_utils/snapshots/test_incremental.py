"""incremental: which entries a link writes, its index and deletions, and what retention must keep for a chain."""

from __future__ import annotations

import datetime
import os

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.incremental import (
    IndexTally,
    keep_chains,
    mode_problem,
    parse_entry,
    stat_key,
)


def test_a_link_writes_changed_files_and_every_directory_and_references_the_rest(tmp_path):
    same = tmp_path / 'same.txt'
    same.write_text('same')
    grown = tmp_path / 'grown.txt'
    grown.write_text('a')
    info_same, info_grown, info_dir = os.lstat(same), os.lstat(grown), os.lstat(tmp_path)
    previous = {'files/same': ':'.join(str(part) for part in ['f'] + stat_key(info_same) + ['s' * 64, 0]),
                'files/grown': ':'.join(str(part) for part in ['f'] + stat_key(info_grown) + ['g' * 64, 0]),
                'files/gone': 'f:1:1:1:1:%s:0' % ('x' * 64),
                'files/now_dir': 'f:1:1:1:1:%s:0' % ('y' * 64)}
    grown.write_text('ab')
    tally = IndexTally(previous, 2)
    assert tally.select(str(same), 'files/same', info_same) is False
    assert tally.select(str(grown), 'files/grown', os.lstat(grown)) is True
    assert tally.select(str(tmp_path), 'files/now_dir', info_dir) is True  # a file replaced by a directory
    tally.checksums['files/grown'] = 'n' * 64
    index = tally.index()
    assert index['files/same'] == previous['files/same']  # by reference: the base's sha256 and holder
    assert parse_entry(index['files/grown'])[5:] == ['n' * 64, 2] and parse_entry(index['files/now_dir'])[0] == 'd'
    assert parse_entry(index['files/now_dir'])[5] is None
    assert tally.deleted() == ['files/gone', 'files/now_dir']


def test_retention_keeps_the_base_and_links_a_kept_link_needs():
    moment = datetime.datetime(2026, 11, 23, tzinfo=datetime.timezone.utc)

    def snap(name, chain=()):
        return dict(path='/d/' + name, created=moment, reasons=[],
                    manifest=dict(incremental=dict(chain=[dict(file=f) for f in chain])) if chain else {})
    kept = [snap('l2', ['base', 'l1'])]
    kept[0]['reasons'] = ['last']
    dropped = [snap('l1', ['base']), snap('base'), snap('older')]
    kept, dropped = keep_chains(kept, dropped)
    assert dict((s['path'], s['reasons']) for s in kept) == {
        '/d/l2': ['last'], '/d/base': ['base of l2'], '/d/l1': ['link of l2']}
    assert [s['path'] for s in dropped] == ['/d/older']


def test_mode_problems():
    params = dict(mode='incremental', tier='database', archive_format='tar.zst', file_checksums=False)
    assert 'applies to tier full' in mode_problem(params)
    params.update(tier='full', archive_format='zip')
    assert 'tar.zst or tar.gz' in mode_problem(params)
    params.update(archive_format='tar.gz')
    assert mode_problem(params) is None and params['file_checksums'] is True
    assert mode_problem(dict(mode='full')) is None

"""The journald reader on real journal files written by systemd-journal-remote, read by the real journalctl."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import uuid

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs import journald

REMOTE = '/lib/systemd/systemd-journal-remote'
pytestmark = pytest.mark.skipif(not (os.path.exists(REMOTE) and shutil.which('journalctl')),
                                reason='systemd-journal-remote and journalctl needed: apt-get install systemd-journal-remote')


class Journal:
    """A journal directory written through systemd-journal-remote from the export format."""

    def __init__(self, directory, name='remote'):
        self.directory = str(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.path = os.path.join(self.directory, '%s.journal' % name)
        self.machine = uuid.uuid4().hex
        self.boot = uuid.uuid4().hex
        self.monotonic = 1000

    def write(self, entries, at=None):
        at = at or datetime.datetime.now(datetime.timezone.utc)
        blocks = []
        for offset, (priority, unit, message) in enumerate(entries):
            self.monotonic += 1
            stamp = int((at.timestamp()) * 1e6) + offset
            fields = ['__REALTIME_TIMESTAMP=%d' % stamp, '__MONOTONIC_TIMESTAMP=%d' % self.monotonic,
                      '_BOOT_ID=%s' % self.boot, '_MACHINE_ID=%s' % self.machine, '_HOSTNAME=testhost',
                      'MESSAGE=%s' % message, '_SYSTEMD_UNIT=%s' % unit]
            if priority is not None:
                fields.append('PRIORITY=%d' % priority)
            blocks.append('\n'.join(fields) + '\n\n')
        export = os.path.join(self.directory, 'export.txt')
        with open(export, 'w') as handle:
            handle.write(''.join(blocks))
        subprocess.run([REMOTE, '--output=%s' % self.path, export], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.unlink(export)

    def reader(self, units=None):
        return journald.JournalReader(directory=self.directory, units=units)


def sample(count_err=3):
    entries = [(3, 'app.service', 'request %d failed: db timeout after %d ms' % (n, 100 + n)) for n in range(count_err)]
    entries += [(4, 'app.service', 'slow request'), (6, 'app.service', 'started'), (2, 'db.service', 'disk I/O error'),
                (6, 'db.service', 'checkpoint complete'), (None, 'app.service', 'no priority field')]
    return entries


def test_first_review_counts_by_priority_then_resumes_after_its_cursor(tmp_path):
    journal = Journal(tmp_path / 'j')
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)
    journal.write([(3, 'app.service', 'from three days ago')], at=old)
    journal.write(sample())

    result, state = journald.review(journal.reader(), {})
    assert result['entries_read'] == 8                     # the 3-day-old entry is outside the first window
    assert result['by_priority']['err'] == 3 and result['by_priority']['crit'] == 1
    assert result['by_priority']['warning'] == 1 and result['by_priority']['info'] == 2
    assert result['by_priority']['none'] == 1
    assert result['errors'] == 4 and not result['cursor_rebuilt'] and result['started_from'] == 'window'
    assert result['top'][0] == dict(unit='app.service', message='request N failed: db timeout after N ms',
                                    priority='err', count=3)
    assert state['cursor'].startswith('s=') and state['seqnum_id'] == journald.cursor_seqnum_id(state['cursor'])

    again, same = journald.review(journal.reader(), state)
    assert again['entries_read'] == 0 and again['errors'] == 0 and same == state
    assert again['started_from'] == 'cursor'

    journal.write([(3, 'app.service', 'new failure 1'), (6, 'app.service', 'fine')])
    later, newer = journald.review(journal.reader(), state)
    assert later['entries_read'] == 2 and later['errors'] == 1 and later['top'][0]['message'] == 'new failure N'
    assert newer['cursor'] != state['cursor']


def test_units_filter(tmp_path):
    journal = Journal(tmp_path / 'j')
    journal.write(sample())
    result, dummy = journald.review(journal.reader(units=['db.service']), {})
    assert result['entries_read'] == 2 and result['errors'] == 1 and result['units'] == ['db.service']


def test_cursor_from_another_machine_is_rebuilt_and_said_so(tmp_path):
    ours, theirs = Journal(tmp_path / 'ours'), Journal(tmp_path / 'theirs')
    ours.write(sample())
    theirs.write([(3, 'other.service', 'elsewhere')])
    dummy, foreign = journald.review(theirs.reader(), {})
    assert foreign['seqnum_id'] not in ours.reader().seqnum_ids()

    result, state = journald.review(ours.reader(), foreign)
    assert result['cursor_rebuilt'] and 'another journal' in result['cursor_note']
    assert result['entries_read'] == 8 and result['started_from'] == 'window'   # nothing skipped, nothing from theirs
    assert state['seqnum_id'] in ours.reader().seqnum_ids()

    garbage, dummy = journald.review(ours.reader(), dict(cursor='not-a-cursor'))
    assert garbage['cursor_rebuilt'] and 'not a cursor' in garbage['cursor_note'] and garbage['entries_read'] == 8


def test_recent_errors_and_files_option(tmp_path):
    journal = Journal(tmp_path / 'j')
    journal.write(sample())
    reader = journald.JournalReader(files=[journal.path])
    recent = journald.recent_errors(reader, lines=2)
    assert [e['MESSAGE'] for e in recent] == ['request 2 failed: db timeout after 102 ms', 'disk I/O error']
    assert any('--file=' in command for command in reader.commands)


def test_missing_journalctl_and_unreadable_directory(tmp_path):
    with pytest.raises(journald.JournalError, match='cannot run /nonexistent/journalctl'):
        journald.JournalReader(journalctl='/nonexistent/journalctl').entries()
    with pytest.raises(journald.JournalError, match='journalctl failed'):
        journald.JournalReader(files=[str(tmp_path / 'missing.journal')]).entries()


def test_log_rotation_check_reviews_journal_units_and_resumes_from_the_state_file(tmp_path):
    """journal_units in the module: counted by PRIORITY, the cursor kept beside the file cursors, then only new entries."""
    from tests.harness.playbook import run_tasks
    journal = Journal(tmp_path / 'journal')
    journal.write(sample(count_err=3))
    state_file = str(tmp_path / 'state' / 'logs.json')
    (tmp_path / 'app.log').write_text('2026-12-05T10:00:00Z INFO started\n')
    task = {'name': 'review', 'engineroom.maintenance.log_rotation_check': dict(
        paths=[str(tmp_path / 'app.log')], scan=True, state_file=state_file, journal_units=['app.service', 'db.service'],
        journal_directory=journal.directory, check_logrotate=False, ghost_scope='none')}
    first = run_tasks([task]).result('review')
    assert first.get('failed') is not True, first.get('msg')
    review = first['errors']['journal']
    assert review['entries_read'] == 8 and review['errors'] == 4, review
    assert review['by_priority']['err'] == 3 and review['by_priority']['crit'] == 1
    assert review['top'][0] == dict(unit='app.service', message=review['top'][0]['message'], priority='err', count=3)
    assert any(c.startswith('journalctl ') and '--unit=app.service' in c for c in first['executed_commands'])
    with open(state_file) as handle:
        assert json.load(handle)['journald']['cursor']
    journal.write([(3, 'app.service', 'one more failure')])
    second = run_tasks([task]).result('review')['errors']['journal']
    assert (second['entries_read'], second['errors'], second['started_from']) == (1, 1, 'cursor'), second

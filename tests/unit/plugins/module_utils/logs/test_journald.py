"""Pure pieces of the journald reader: cursors, priorities, message grouping."""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.logs import journald


def test_cursor_seqnum_id():
    cursor = 's=00b1282e4ac0414c84b8f7cd2239ab0a;i=5;b=f3a1;m=3ec;t=661e1f3b7dca2;x=177d'
    assert journald.cursor_seqnum_id(cursor) == '00b1282e4ac0414c84b8f7cd2239ab0a'
    assert journald.cursor_seqnum_id('garbage') is None
    assert journald.cursor_seqnum_id(None) is None


def test_priority_names():
    assert [journald.priority_name(str(n)) for n in range(8)] == list(journald.PRIORITY_NAMES)
    assert journald.priority_name(None) == 'none'
    assert journald.priority_name('9') == 'none'
    assert journald.priority_name('x') == 'none'


def test_normalise_groups_numbers_and_ids():
    assert journald.normalise('worker 12 failed after 350 ms (id 9f8e7d6c5b4a)') == \
        journald.normalise('worker 7 failed after 12 ms (id 0a1b2c3d4e5f)')
    assert journald.normalise(['binary']) == "['binary']"


def test_count_by_priority_and_top():
    entries = [dict(PRIORITY='3', MESSAGE='db timeout after %d ms' % n, _SYSTEMD_UNIT='app.service') for n in range(3)]
    entries += [dict(PRIORITY='6', MESSAGE='ok'), dict(MESSAGE='no priority'),
                dict(PRIORITY='2', MESSAGE='disk gone', SYSLOG_IDENTIFIER='kernel')]
    by_priority, top = journald._count(entries, 3, 10)
    assert by_priority['err'] == 3 and by_priority['info'] == 1 and by_priority['none'] == 1 and by_priority['crit'] == 1
    assert top[0] == dict(unit='app.service', message='db timeout after N ms', priority='err', count=3)
    assert top[1]['unit'] == 'kernel'

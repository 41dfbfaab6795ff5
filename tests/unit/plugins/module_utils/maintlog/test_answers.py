"""The report's first screen: the answers per host, from records in the callback's schema."""

from __future__ import annotations

import datetime
import re

from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog import report
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.answers import answers_of
from ansible_collections.engineroom.maintenance.plugins.module_utils.maintlog.history import History, build_runs

START = datetime.datetime(2026, 11, 1, 2, 0, tzinfo=datetime.timezone.utc)


def stamp(when):
    return when.strftime('%Y-%m-%dT%H:%M:%S.000Z')


def events():
    """db1: snapshots, a failed drill, an expired lock; web1 unreachable in the last daily run; a killed run."""
    out = []

    def run(run_id, when, playbook, tasks, hosts=None, ended=True):
        out.append(dict(schema_version=2, event='run_start', run_id=run_id, time=stamp(when), playbook=playbook))
        for offset, task in enumerate(tasks):
            out.append(dict(dict(schema_version=2, event='task', run_id=run_id, play='P',
                                 time=stamp(when + datetime.timedelta(minutes=offset + 1))), **task))
        if ended:
            out.append(dict(schema_version=2, event='run_end', run_id=run_id, time=stamp(when + datetime.timedelta(minutes=30)),
                            status='ok', hosts=hosts or {}))
    run('r1', START, '/p/daily.yml', [
        dict(host='db1', task='Snapshot', module='engineroom.maintenance.snapshot_archive', status='changed',
             metrics=dict(database_snapshot_bytes=200 * 2 ** 20)),
        dict(host='web1', task='Probe', module='engineroom.maintenance.health_probe', status='ok', result_status='healthy',
             summary='health healthy: 3 healthy')], hosts=dict(db1=dict(status='changed'), web1=dict(status='ok')))
    run('r2', START + datetime.timedelta(days=3), '/p/quarterly.yml', [
        dict(host='db1', task='Drill', module='engineroom.maintenance.snapshot_restore', status='failed',
             summary='restore drill of db.dump: 12 tables, MISMATCH in orders',
             metrics=dict(rto_s=41.5, tables_compared=12, tables_mismatched=1)),
        dict(host='db1', task='Lock', module='engineroom.maintenance.maintenance_lock', status='changed',
             summary='acquired: held by ops (run 42)', metrics=dict(lock_expires_in_s=3600))],
        hosts=dict(db1=dict(status='failed')))
    run('r3', START + datetime.timedelta(days=4), '/p/daily.yml', [
        dict(host='web1', task='Probe', module='engineroom.maintenance.health_probe', status='unreachable',
             msg='ssh: connect to host web1 port 22: Connection timed out')], hosts=dict(web1=dict(status='unreachable')))
    run('rep', START + datetime.timedelta(days=4, minutes=30), '/p/report.yml', [
        dict(host='db1', task='Render', module='engineroom.maintenance.maintenance_report', status='changed')],
        hosts=dict(db1=dict(status='changed')))
    run('r4', START + datetime.timedelta(days=4, hours=1), '/p/weekly.yml', [
        dict(host='db1', task='Vacuum', module='engineroom.maintenance.pg_vacuum', status='changed')], ended=False)
    out.append(dict(schema_version=2, event='run_end', run_id='r4', time=stamp(START + datetime.timedelta(days=4, hours=2)),
                    status='ended_without_summary', hosts=dict(db1=dict(status='changed')),
                    last_task=dict(host='db1', task='Vacuum', status='changed', time='x')))
    return out


def test_answers_name_what_is_wrong_now():
    runs = build_runs(events())
    as_of = max(r.last_time for r in runs)
    answers = dict((a['host'], a) for a in answers_of(runs, ['db1', 'web1'], as_of))
    db1 = answers['db1']
    assert [(s['tier'], s['size_bytes'], s['stale']) for s in db1['snapshots']] == [('database', 200 * 2 ** 20, True)]
    assert db1['drill']['rto_s'] == 41.5 and db1['drill']['matches'] is False and db1['drill']['tables_mismatched'] == 1
    assert db1['lock']['held'] and db1['lock']['expired']
    assert db1['problems'] == ['database snapshot 98 h old', 'restore drill did not match', 'maintenance lock expired',
                               'quarterly.yml failed', 'weekly.yml ended without summary']
    assert [c['playbook'] for c in db1['calendar']] == ['daily.yml', 'quarterly.yml', 'weekly.yml']  # no report.yml
    assert answers['web1']['health']['status'] == 'unreachable'
    assert answers['web1']['problems'] == ['health unreachable', 'daily.yml unreachable']


def test_first_screen_text_states_ages_rto_matches_and_lock_holder():
    history = History()
    history.events = events()
    page, _figures = report.render(history, 'T')
    first = page[page.index('id="answers"'):page.index('</section>', page.index('id="answers"'))]
    text = re.sub(r'\s+', ' ', re.sub(r'<[^>]+>', ' ', first))
    assert 'STALE database: 4.1 d old, 200.0 MB, verified 2026-11-01 02:01 UTC' in text
    assert 'MISMATCH 26 h ago (2026-11-04 02:01 UTC): rto_s 41.5, 12 tables compared, 1 mismatched' in text
    assert 'EXPIRED acquired: held by ops (run 42) (expires 2026-11-04 03:02 UTC)' in text
    assert 'weekly.yml ended without a summary (killed or fatal error)' in text and 'last task: Vacuum' in text
    assert 'web1 needs attention' in text and 'unreachable' in text

"""maintenance_lock against entering maintenance by hand (one psql batch of ALTER ROLE, a flag file).

A throwaway PostgreSQL 15 cluster (tests/harness/postgres.py) gets
``BENCH_LOCK_ROLES`` login roles (default 50); every second one has its own
per-database ``default_transaction_read_only = off`` in the ``bench_lock``
database, as an application role sometimes does.

Methods, each ``BENCH_LOCK_REPEATS`` times (default 5), medians reported:

* by hand: ``psql -c 'BEGIN; ALTER ROLE ... SET default_transaction_read_only = on; ...; COMMIT'``
  (role-wide and per database) plus creating a flag file; leaving is the same
  batch with ``RESET``/``SET ... = off`` written out for the known originals. Wall
  time, psql start-up included. It records nothing and checks nothing;
* maintenance_lock ``state: present`` with ``readonly_roles`` (all roles) and
  a flag file, then ``state: absent``, driven through ansible-playbook; its time
  is the task's duration from the json callback (module start-up and work, not
  ansible-playbook's own start-up), with ``metrics.duration_ms`` beside it;
* the lock alone (no roles): the module against ``O_CREAT|O_EXCL`` + unlink in Python.

After every round the roles' settings are compared with the originals; they
must be equal (the bench fails otherwise).
"""

from __future__ import annotations

import datetime
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from psycopg2 import sql

from tests.harness.playbook import run_tasks
from tests.harness.postgres import PostgresCluster

ROLES = int(os.environ.get('BENCH_LOCK_ROLES', '50'))
REPEATS = int(os.environ.get('BENCH_LOCK_REPEATS', '5'))
DB = 'bench_lock'
MODULE = 'engineroom.maintenance.maintenance_lock'


def role_names():
    return ['bench_lock_r%03d' % i for i in range(ROLES)]


def with_db_setting():
    return role_names()[::2]


def setup(cluster):
    cluster.create_database(DB)
    for name in role_names():
        cluster.create_role(name, 'bench-pw')
    for name in with_db_setting():
        cluster.execute(sql.SQL('ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = off')
                        .format(sql.Identifier(name), sql.Identifier(DB)))


def settings(cluster):
    return sorted(cluster.execute(
        'SELECT r.rolname, s.setdatabase, s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole '
        'WHERE r.rolname = ANY(%s)', (role_names(),)))


def psql_batch(cluster, statements):
    conn = cluster.connect()
    with conn.cursor() as cursor:
        text = ';\n'.join(s.as_string(cursor) for s in statements)
    conn.close()
    argv = [os.path.join(cluster.bin_dir, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', cluster.socket_dir,
            '-p', str(cluster.port), '-U', cluster.superuser, '-d', DB, '-c', 'BEGIN;\n%s;\nCOMMIT' % text]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def by_hand(cluster, work):
    ident = sql.Identifier
    enter = [sql.SQL('ALTER ROLE {} SET default_transaction_read_only = on').format(ident(n)) for n in role_names()]
    enter += [sql.SQL('ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = on')
              .format(ident(n), ident(DB)) for n in with_db_setting()]
    leave = [sql.SQL('ALTER ROLE {} RESET default_transaction_read_only').format(ident(n)) for n in role_names()]
    leave += [sql.SQL('ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = off')
              .format(ident(n), ident(DB)) for n in with_db_setting()]
    flag = os.path.join(work, 'by-hand.flag')
    started = time.monotonic()
    psql_batch(cluster, enter)
    with open(flag, 'w') as handle:
        handle.write('maintenance\n')
    entered = time.monotonic() - started
    started = time.monotonic()
    psql_batch(cluster, leave)
    os.unlink(flag)
    return entered, time.monotonic() - started


def lock_alone_by_hand(work):
    path = os.path.join(work, 'by-hand.json')
    started = time.monotonic()
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, b'{"owner": "bench"}\n')
    os.fsync(fd)
    os.close(fd)
    entered = time.monotonic() - started
    started = time.monotonic()
    os.unlink(path)
    return entered, time.monotonic() - started


def task_seconds(run, index):
    duration = run.report['plays'][0]['tasks'][index]['task']['duration']
    start, end = (datetime.datetime.fromisoformat(duration[k].rstrip('Z')) for k in ('start', 'end'))
    return (end - start).total_seconds()


def module_round(cluster, work):
    db = dict(login_unix_socket=cluster.socket_dir, login_port=cluster.port, login_user=cluster.superuser, login_db=DB)
    lock_file = os.path.join(work, 'maintenance.json')
    alone = os.path.join(work, 'alone.json')
    # The query absorbs the play's first-task set-up and the building of the module's payload, which are
    # ansible-playbook's start-up, not the module's work.
    run = run_tasks([
        {'name': 'warm up', MODULE: dict(state='query', lock_file=lock_file)},
        {'name': 'enter', MODULE: dict(owner='bench', lock_file=lock_file, flag_file=os.path.join(work, 'flag'),
                                       readonly_roles=role_names(), **db)},
        {'name': 'leave', MODULE: dict(state='absent', owner='bench', lock_file=lock_file, **db)},
        {'name': 'lock alone', MODULE: dict(owner='bench', lock_file=alone)},
        {'name': 'unlock alone', MODULE: dict(state='absent', owner='bench', lock_file=alone)},
    ])
    results = [run.result(name) for name in ('enter', 'leave', 'lock alone', 'unlock alone')]
    for result in results:
        if result.get('failed') or not result.get('changed'):
            raise RuntimeError('maintenance_lock did not do its work: %s' % result.get('msg'))
    if len(results[0]['roles_changed']) != ROLES:
        raise RuntimeError('expected %d roles changed, got %d' % (ROLES, len(results[0]['roles_changed'])))
    return [task_seconds(run, i) for i in range(1, 5)], [r['metrics']['duration_ms'] for r in results]


def ms(values):
    return round(statistics.median(values) * 1000.0, 1)


def run():
    base = tempfile.mkdtemp(prefix='bench-lock-')
    os.chmod(base, 0o755)
    work = os.path.join(base, 'work')
    os.makedirs(work)
    cluster = PostgresCluster(os.path.join(base, 'pg')).start()
    try:
        setup(cluster)
        original = settings(cluster)
        hand, alone_hand, module, module_metrics = [], [], [], []
        for _repeat in range(REPEATS):
            hand.append(by_hand(cluster, work))
            alone_hand.append(lock_alone_by_hand(work))
            if settings(cluster) != original:
                raise RuntimeError('the by-hand batch did not restore the settings')
            seconds, metrics = module_round(cluster, work)
            module.append(seconds)
            module_metrics.append(metrics)
            if settings(cluster) != original:
                raise RuntimeError('maintenance_lock did not restore the settings')
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)

    def column(rows, index):
        return [row[index] for row in rows]

    hand_enter, hand_leave = ms(column(hand, 0)), ms(column(hand, 1))
    tasks = [ms(column(module, i)) for i in range(4)]
    work_ms = [round(statistics.median(column(module_metrics, i)), 1) for i in range(4)]
    startup_ms = round(tasks[2] - work_ms[2], 1)
    lines = [
        '## maintenance_lock: entering and leaving maintenance',
        '',
        'Setup: a throwaway PostgreSQL 15 cluster, %d login roles, every second one with its own per-database'
        ' `default_transaction_read_only = off`; medians of %d rounds. By hand = one `psql -c` transaction of'
        ' `ALTER ROLE` statements (role-wide and per database) plus a flag file; it records nothing. The module'
        ' snapshots every role from `pg_db_role_setting`, writes the lock record (fsynced, linked), changes the'
        ' roles in one transaction and writes the flag; the release restores each recorded value. Module times'
        ' are the task durations from the json callback (module start-up included, ansible-playbook start-up'
        ' and payload building not), with the module\'s own `metrics.duration_ms`. Role settings were checked'
        ' equal to the originals after every round.' % (ROLES, REPEATS),
        '',
        '| step | by hand (ms) | maintenance_lock task (ms) | module metrics.duration_ms | task / by hand '
        '| module work / by hand |',
        '| --- | ---: | ---: | ---: | ---: | ---: |',
        '| enter, %d roles read-only | %s | %s | %s | %.1f× | %.1f× |' % (
            ROLES, hand_enter, tasks[0], work_ms[0], tasks[0] / hand_enter, work_ms[0] / hand_enter),
        '| leave, %d roles restored | %s | %s | %s | %.1f× | %.1f× |' % (
            ROLES, hand_leave, tasks[1], work_ms[1], tasks[1] / hand_leave, work_ms[1] / hand_leave),
        '| lock alone: acquire | %s (O_EXCL create + fsync) | %s | %s | | |' % (
            ms(column(alone_hand, 0)), tasks[2], work_ms[2]),
        '| lock alone: release | %s (unlink) | %s | %s | | |' % (ms(column(alone_hand, 1)), tasks[3], work_ms[3]),
        '',
        'Read: of each task, about %s ms is the module process starting (task time minus the module\'s own'
        ' duration, lock alone); the lock itself costs %s ms (record fsynced, linked, directory fsynced). The'
        ' module\'s own work for %d roles is %.1f× the hand-written batch on entering (it reads every role\'s'
        ' settings before changing them) and %.1f× on leaving.' % (
            startup_ms, work_ms[2], ROLES, work_ms[0] / hand_enter, work_ms[1] / hand_leave),
    ]
    return '\n'.join(lines)

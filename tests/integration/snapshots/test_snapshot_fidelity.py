"""Restores you can trust: fingerprints taken in the dump's snapshot, and a drill whose ``matches`` means the data matches.

Real PostgreSQL, real pg_dump/pg_restore, real playbooks. Tampering is done for real on a copy of the database; its
snapshot is then given the original's manifest fingerprint (what a snapshot of a tampered copy looks like to a
manifest written from good data), and the drill must name what differs.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from psycopg2 import sql
import zstandard

from tests.harness.playbook import run_tasks
from tests.integration.snapshots.conftest import drop_database
from tests.integration.snapshots.test_snapshot_roundtrip import ARCHIVE, RESTORE, assert_ok, conn, manifest_of

OWNER, READER = 'fp_owner_%d' % os.getpid(), 'fp_reader_%d' % os.getpid()
RICH_SCHEMA = (
    'CREATE SCHEMA "Mixed Case"',
    'CREATE SCHEMA "a.b"',
    'CREATE SCHEMA a',
    'CREATE TABLE "a.b".c (id int)',
    'INSERT INTO "a.b".c SELECT generate_series(1, 3)',
    'CREATE TABLE a."b.c" (id int)',
    'INSERT INTO a."b.c" SELECT generate_series(1, 5)',
    'CREATE TABLE "Mixed Case"."Big Table" (id int PRIMARY KEY, v text, at timestamptz, n numeric, f float8)',
    "INSERT INTO \"Mixed Case\".\"Big Table\" SELECT g, 'value ' || g, timestamptz '2026-01-01 00:00+00' + g * interval '1 min', "
    "g / 7.0, g / 3.0 FROM generate_series(1, 5000) g",
    'CREATE TABLE parent (id int, v text)',
    'CREATE TABLE child (extra int) INHERITS (parent)',
    "INSERT INTO parent SELECT g, 'p' FROM generate_series(1, 10) g",
    "INSERT INTO child SELECT g, 'c', g FROM generate_series(1, 20) g",
    'CREATE TABLE measurements (id int, at date) PARTITION BY RANGE (at)',
    "CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    "CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    "INSERT INTO measurements SELECT g, date '2025-06-01' + g FROM generate_series(1, 400) g",
    # json and point have no hash function: hashed by their text, the other tables by hash_record_extended.
    'CREATE TABLE docs (id int, body json, at point)',
    "INSERT INTO docs SELECT g, json_build_object('k', g), point(g, g) FROM generate_series(1, 50) g",
    'CREATE SEQUENCE counter',
    "SELECT setval('counter', 42)",
    'CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n, sum(id) AS s FROM "Mixed Case"."Big Table"',
    "SELECT lo_from_bytea(0, 'large object content')",
    'CREATE TABLE secure (id int, owner_name text)',
    "INSERT INTO secure VALUES (1, 'x')",
    'ALTER TABLE secure ENABLE ROW LEVEL SECURITY',
    'CREATE POLICY own_rows ON secure USING (owner_name = current_user)',
    'ALTER TABLE secure OWNER TO ' + OWNER,
    'GRANT SELECT ON secure TO ' + READER,
    "CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
    'CREATE TRIGGER parent_bump BEFORE INSERT ON parent FOR EACH ROW EXECUTE FUNCTION bump()',
    # A view over GROUP BY a primary key: pg_dump --clean "replaces" it before its schema exists (plain dumps failed).
    'CREATE SCHEMA s',
    'CREATE TABLE s.t (id int PRIMARY KEY, v text)',
    "INSERT INTO s.t VALUES (1, 'one'), (2, 'two')",
    'CREATE VIEW s.v AS SELECT id, v, count(*) AS n FROM s.t GROUP BY id',
    'CREATE TABLE ddl_log (tag text)',
    # Fires on REFRESH MATERIALIZED VIEW, which a restore runs last: unless the drill keeps it quiet, it changes data.
    "CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO public.ddl_log "
    "VALUES (tg_tag); END$$",
    'CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION log_ddl()',
)
# (name, statement on the copy, (kind, name, what) of the first difference the drill must name)
TAMPERS = [
    ('value', "UPDATE \"Mixed Case\".\"Big Table\" SET v = 'changed' WHERE id = 4321",
     ('table', '"Mixed Case"."Big Table"', 'content')),
    ('json', "UPDATE docs SET body = '{\"k\": 0}' WHERE id = 7", ('table', 'public.docs', 'content')),
    ('deleted', 'DELETE FROM "Mixed Case"."Big Table" WHERE id % 13 = 0', ('table', '"Mixed Case"."Big Table"', 'rows')),
    ('emptied', 'TRUNCATE a."b.c"', ('table', 'a."b.c"', 'rows')),
    ('child', "INSERT INTO child VALUES (99, 'c', 99)", ('table', 'public.child', 'rows')),
    ('lo', 'SELECT lo_unlink(oid) FROM pg_largeobject_metadata', ('large objects', 'all', 'count')),
    ('sequence', "SELECT setval('counter', 1, false)", ('sequence', 'public.counter', 'is_called')),
    ('mvempty', 'REFRESH MATERIALIZED VIEW mv WITH NO DATA', ('materialized view', 'public.mv', 'populated')),
    ('mvdrop', 'DROP MATERIALIZED VIEW mv', ('materialized view', 'public.mv', 'missing')),
    ('revoke', 'REVOKE SELECT ON secure FROM ' + READER, ('object', 'table public.secure', 'grant')),
    ('owner', 'ALTER TABLE secure OWNER TO postgres', ('object', 'table public.secure', 'owner')),
    # Database-level state: a dump into an existing database does not carry it; the drill applies it from the globals
    # artifact (what the tampered copy had), the manifest's fingerprint says what the original had.
    ('setting', 'ALTER DATABASE {db} RESET work_mem', ('database', 'setting work_mem', 'missing')),
    ('comment', "COMMENT ON DATABASE {db} IS 'changed'", ('database', 'comment', 'differs')),
    ('connlimit', 'ALTER DATABASE {db} CONNECTION LIMIT 3', ('database', 'connection_limit', 'differs')),
    ('dbgrant', 'REVOKE CONNECT ON DATABASE {db} FROM ' + READER, ('database', 'acl', 'grant')),
]
# The database-level state of the rich database (and of each tampered copy before its tamper).
DATABASE_STATE = (
    "ALTER DATABASE {db} SET work_mem = '8MB'",
    'ALTER DATABASE {db} SET search_path = public, "Mixed Case"',
    "ALTER ROLE " + READER + " IN DATABASE {db} SET statement_timeout = '5s'",
    "COMMENT ON DATABASE {db} IS 'rich schema\nfor the drill''s tests'",
    'ALTER DATABASE {db} CONNECTION LIMIT 40',
    'REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC',
    'GRANT CONNECT, TEMPORARY ON DATABASE {db} TO ' + READER,
)


def database_statement(statement, database):
    """``statement`` with ``{db}`` replaced by the quoted name of ``database``."""
    return statement.replace('{db}', '"%s"' % database.replace('"', '""'))


def set_database_state(pg, database):
    for statement in DATABASE_STATE:
        pg.execute(database_statement(statement, database))


@pytest.fixture(scope='module')
def rich_db(pg):
    name = 'snap_rich_%d' % os.getpid()
    for role in (OWNER, READER):
        pg.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))
        pg.execute(sql.SQL('CREATE ROLE {}').format(sql.Identifier(role)))
    drop_database(pg, name)
    pg.create_database(name)
    for statement in RICH_SCHEMA:
        pg.execute(statement, dbname=name)
    set_database_state(pg, name)
    yield name
    drop_database(pg, name)
    for tamper in TAMPERS:
        drop_database(pg, '%s_%s' % (name, tamper[0]))
    for role in (OWNER, READER):
        pg.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))


def test_manifest_keys_quoted_only_counts_and_fingerprint(pg, rich_db, dest):
    c = conn(pg)
    run = run_tasks([
        {'name': 'custom', ARCHIVE: dict(c, database=rich_db, dest=dest)},
        {'name': 'counts', ARCHIVE: dict(c, database=rich_db, dest=dest, prefix='counts', fingerprint='counts')},
        {'name': 'bad', ARCHIVE: dict(c, database=rich_db, dest=dest, prefix='bad', fingerprint='most'),
         'ignore_errors': True},
    ])
    manifest = manifest_of(run.result('custom')['snapshot']['path'])
    assert manifest['schema_version'] == 2
    tables = manifest['database']['tables']
    assert tables['"a.b".c'] == dict(rows=3, exact=True) and tables['a."b.c"'] == dict(rows=5, exact=True)
    assert tables['public.parent']['rows'] == 10 and tables['public.child']['rows'] == 20  # ONLY: no double count
    assert tables['public.measurements_2025']['rows'] + tables['public.measurements_2026']['rows'] == 400
    assert 'public.measurements' not in tables  # the partitioned parent holds no rows of its own
    fingerprint = manifest['database']['fingerprint']
    assert fingerprint['mode'] == 'full' and fingerprint['tables']['"Mixed Case"."Big Table"']['hash']
    assert fingerprint['tables']['"Mixed Case"."Big Table"']['hashed_by'] == 'record'
    assert fingerprint['tables']['public.docs']['hash'] and 'hashed_by' not in fingerprint['tables']['public.docs']
    assert fingerprint['sequences']['public.counter'] == dict(last_value='42', is_called=True)
    assert fingerprint['large_objects']['count'] == 1 and fingerprint['large_objects']['hash']
    assert fingerprint['matviews']['public.mv']['populated'] is True
    inventory = fingerprint['inventory']
    assert inventory['table public.secure']['owner'] == OWNER and READER in inventory['table public.secure']['acl']
    assert inventory['table public.secure']['detail'] == 'row security'
    assert 'policy public.secure.own_rows' in inventory and 'trigger public.parent.parent_bump' in inventory
    assert 'function public.bump()' in inventory and 'extension plpgsql' in inventory
    assert inventory['event trigger log_ddl'] == dict(owner='postgres', acl=None, detail='O')
    state = fingerprint['database']
    assert state['encoding'] == 'UTF8' and state['settings']['work_mem'] == '8MB'
    assert state['settings']['search_path'] == 'public, "Mixed Case"'
    assert state['settings']['role %s: statement_timeout' % READER] == '5s'
    assert state['comment'] == "rich schema\nfor the drill's tests" and state['connection_limit'] == 40
    assert state['owner'] == 'postgres' and '%s=Tc/postgres' % READER in state['acl'] and '=c/postgres' in state['acl']
    with open(run.result('custom')['snapshot']['path'] + '.globals.sql') as handle:
        block = handle.read().split('-- database: %s\n' % rich_db)[1].splitlines()
    assert 'ALTER DATABASE "%s" WITH CONNECTION LIMIT 40;' % rich_db in block
    assert 'GRANT TEMPORARY, CONNECT ON DATABASE "%s" TO "%s";' % (rich_db, READER) in block
    assert 'ALTER DATABASE "%s" SET "search_path" TO \'public\', \'Mixed Case\';' % rich_db in block
    counts = manifest_of(run.result('counts')['snapshot']['path'])['database']['fingerprint']
    assert counts['mode'] == 'counts' and 'hash' not in counts['tables']['public.child']
    assert 'fingerprint' in run.result('bad')['msg'] and 'most' in run.result('bad')['msg']


@pytest.mark.parametrize('compression', ['zstd', 'gzip', 'none'])
@pytest.mark.parametrize('fmt', ['custom', 'directory', 'plain'])
def test_drill_of_rich_schema_matches(pg, rich_db, dest, fmt, compression):
    c = conn(pg)
    run = run_tasks([
        {'name': 'snapshot', ARCHIVE: dict(c, database=rich_db, dest=dest, format=fmt, compression=compression)},
        {'name': 'drill', RESTORE: dict(c, dest=dest, database=rich_db)},
    ])
    assert_ok(run)
    snapshot = run.result('snapshot')['snapshot']
    assert manifest_of(snapshot['path'])['artifact']['compression'] == compression
    drill = run.result('drill')
    assert drill['matches'] is True and drill['differences'] == [] and drill['fingerprint'] == 'full', drill['summary']
    assert drill['event_triggers_disabled'] is True
    assert all(row['compared'] == 'content' and row['match'] for row in drill['tables'])
    assert drill['note'] is None  # owners and grants restored and compared, for plain dumps too
    tool = 'psql' if fmt == 'plain' else 'pg_restore'
    assert any(tool in cmd and '--no-owner' not in cmd for cmd in drill['executed_commands'])


def test_tampered_copies_do_not_match_and_name_the_object(pg, rich_db, dest):
    c = conn(pg)
    tasks = [{'name': 'original', ARCHIVE: dict(c, database=rich_db, dest=dest, prefix='orig')}]
    for name, statement, _expected in TAMPERS:
        copy = '%s_%s' % (rich_db, name)
        drop_database(pg, copy)
        pg.execute(sql.SQL('CREATE DATABASE {} TEMPLATE {}').format(sql.Identifier(copy), sql.Identifier(rich_db)))
        set_database_state(pg, copy)  # a template copies no database-level state
        pg.execute(database_statement(statement, copy), dbname=copy)
        tasks.append({'name': name, ARCHIVE: dict(c, database=copy, dest=dest, prefix='t' + name)})
    run = run_tasks(tasks)
    assert_ok(run)
    original = manifest_of(run.result('original')['snapshot']['path'])['database']
    drills = []
    for name, _statement, _expected in TAMPERS:
        path = run.result(name)['snapshot']['path']
        manifest = manifest_of(path)
        manifest['database'].update(tables=original['tables'], fingerprint=original['fingerprint'])
        with open(path + '.manifest.json', 'w') as handle:
            json.dump(manifest, handle)
        drills.append({'name': name, 'ignore_errors': True, RESTORE: dict(c, snapshot=path)})
    run = run_tasks(drills)
    for name, _statement, (kind, obj, what) in TAMPERS:
        result = run.result(name)
        assert result.get('failed') and result['matches'] is False, (name, result.get('summary'))
        named = [(item['kind'], item['name'], item['what']) for item in result['differences']]
        assert (kind, obj, what) in named, (name, named)
        assert obj in result['msg']


def test_missing_roles_are_named_and_no_owner_restores(pg, rich_db, dest):
    c = conn(pg)
    run = run_tasks([{'name': 'snapshot', ARCHIVE: dict(c, database=rich_db, dest=dest)}])
    assert_ok(run)
    path = run.result('snapshot')['snapshot']['path']
    manifest = manifest_of(path)
    inventory = manifest['database']['fingerprint']['inventory']
    inventory['table public.secure']['owner'] = 'nobody_here'  # a role this server lacks, as on another server
    with open(path + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle)
    run = run_tasks([
        {'name': 'needs roles', 'ignore_errors': True, RESTORE: dict(c, snapshot=path)},
        {'name': 'no owner', RESTORE: dict(c, snapshot=path, no_owner=True)},
    ])
    assert 'nobody_here' in run.result('needs roles')['msg'] and 'no_owner' in run.result('needs roles')['msg']
    assert run.result('no owner')['matches'] is True


def test_truncated_custom_dump_with_recomputed_manifest_fails_verification(pg, rich_db, dest):
    """The table of contents survives a cut in half; reading every data block does not."""
    c = conn(pg)
    run = run_tasks([{'name': 'snapshot', ARCHIVE: dict(c, database=rich_db, dest=dest, prefix='cut')}])
    assert_ok(run)
    path = run.result('snapshot')['snapshot']['path']
    with open(path, 'rb') as handle:
        raw = zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True).read()
    cut = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw[:len(raw) // 2])
    with open(path, 'wb') as handle:
        handle.write(cut)
    manifest = manifest_of(path)
    manifest['artifact'].update(size_bytes=len(cut), sha256=hashlib.sha256(cut).hexdigest())
    with open(path + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle)
    run = run_tasks([{'name': 'verify', 'ignore_errors': True,
                      ARCHIVE: dict(database=rich_db, dest=dest, prefix='cut', state='verified')}])
    result = run.result('verify')
    assert result['failed'] and result['verified'][0]['ok'] is False, result
    assert 'not a readable dump' in result['msg'] and os.path.basename(path) in result['msg']


WRITER = '''
import os, sys, time
sys.path[:0] = %r
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.leftovers import create_temp_file
path, fd = create_temp_file(sys.argv[1], sys.argv[2])
os.write(fd, b'x' * 100000)
print(path, flush=True)
time.sleep(600)
'''


def _writer(dest, name):
    """A real process holding a temp file of ours the way a snapshot run does (locked while it lives)."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, '-c', WRITER % (sys.path,), dest, name], stdout=subprocess.PIPE)
    return proc, proc.stdout.readline().decode().strip()


def test_dead_runs_temp_files_are_removed_and_live_ones_kept(pg, rich_db, dest):
    import signal
    os.makedirs(dest, mode=0o700)
    dead, dead_path = _writer(dest, '%s-database-20260101T000000Z.dump.zst' % rich_db)
    live, live_path = _writer(dest, '%s-database-20260101T000001Z.dump.zst' % rich_db)
    try:
        dead.send_signal(signal.SIGKILL)  # killed mid-write: the kernel drops its lock, the file stays
        dead.wait()
        assert os.path.exists(dead_path)
        run = run_tasks([
            {'name': 'check', ARCHIVE: dict(conn(pg), database=rich_db, dest=dest, fingerprint='none'), 'check_mode': True},
            {'name': 'next run', ARCHIVE: dict(conn(pg), database=rich_db, dest=dest, fingerprint='none')},
        ])
        assert_ok(run)
        assert run.result('check')['stale_temp_removed'] == [dict(path=dead_path, bytes=100000)]
        result = run.result('next run')
        assert result['stale_temp_removed'] == [dict(path=dead_path, bytes=100000)]
        assert result['metrics']['stale_temp_bytes'] == 100000 and 'dead runs' in result['summary']
        assert not os.path.exists(dead_path) and os.path.exists(live_path)  # the live run's file is never touched
    finally:
        live.kill()
        live.wait()


def test_globals_artifact_recorded_verified_and_creates_missing_roles(pg, dest):
    """A server without the snapshot's roles: named; create_missing_roles makes them from the globals artifact."""
    c = conn(pg)
    role, other, name = 'fp_gone_%d' % os.getpid(), 'fp_other_%d' % os.getpid(), 'snap_gone_%d' % os.getpid()
    drop_database(pg, name)
    for item in (role, other):
        pg.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(item)))
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 7 PASSWORD 'secret-pw'").format(sql.Identifier(role)))
    pg.execute(sql.SQL('CREATE ROLE {}').format(sql.Identifier(other)))
    pg.execute(sql.SQL('GRANT {} TO {}').format(sql.Identifier(other), sql.Identifier(role)))
    pg.execute(sql.SQL("ALTER ROLE {} SET work_mem = '16MB'").format(sql.Identifier(role)))
    pg.create_database(name)
    for statement in ('CREATE TABLE owned (id int)', 'INSERT INTO owned VALUES (1), (2)'):
        pg.execute(statement, dbname=name)
    pg.execute(sql.SQL('ALTER TABLE owned OWNER TO {}').format(sql.Identifier(role)), dbname=name)
    pg.execute(sql.SQL('GRANT SELECT ON owned TO {}').format(sql.Identifier(other)), dbname=name)
    try:
        run = run_tasks([{'name': 'snapshot', ARCHIVE: dict(c, database=name, dest=dest)}])
        assert_ok(run)
        path = run.result('snapshot')['snapshot']['path']
        manifest = manifest_of(path)
        assert set(manifest['database']['roles_needed']) == {role, other, 'postgres'}  # postgres owns the database
        globals_path = path + '.globals.sql'
        assert manifest['database']['globals']['file'] == os.path.basename(globals_path)
        assert oct(os.stat(globals_path).st_mode & 0o777) == '0o600'
        with open(globals_path) as handle:
            text = handle.read()
        assert 'CREATE ROLE "%s";' % role in text and 'CONNECTION LIMIT 7' in text and 'secret-pw' not in text
        assert 'GRANT "%s" TO "%s";' % (other, role) in text and 'SET "work_mem" TO \'16MB\'' in text
        drop_database(pg, name)
        for item in (role, other):  # a server without the snapshot's roles
            pg.execute(sql.SQL('DROP ROLE {}').format(sql.Identifier(item)))
        bare = path.replace(name + '-database-', name + '_bare-database-')
        os.link(path, bare)  # the same dump, with a manifest that records no globals artifact
        del manifest['database']['globals']
        with open(bare + '.manifest.json', 'w') as handle:
            json.dump(manifest, handle)
        run = run_tasks([
            {'name': 'needs roles', 'ignore_errors': True, RESTORE: dict(c, snapshot=path)},
            {'name': 'no globals', 'ignore_errors': True, RESTORE: dict(c, snapshot=bare, create_missing_roles=True)},
            {'name': 'create roles', RESTORE: dict(c, snapshot=path, create_missing_roles=True)},
        ])
        needs = run.result('needs roles')['msg']
        assert role in needs and other in needs and 'create_missing_roles' in needs
        assert 'globals artifact' in run.result('no globals')['msg'] and role in run.result('no globals')['msg']
        created = run.result('create roles')
        assert created['matches'] is True and sorted(created['roles_created']) == sorted([role, other]), created['summary']
        member = pg.execute('SELECT rolconnlimit, rolcanlogin FROM pg_roles WHERE rolname = %s', (role,))
        assert member == [(7, True)]
        with open(globals_path, 'a') as handle:
            handle.write('-- changed\n')
        os.unlink(bare)
        os.unlink(bare + '.manifest.json')
        run = run_tasks([{'name': 'verify', 'ignore_errors': True, ARCHIVE: dict(database=name, dest=dest,
                                                                                 state='verified')}])
        assert 'globals artifact' in run.result('verify')['msg'] and globals_path in run.result('verify')['msg']
        os.unlink(globals_path)
        run = run_tasks([{'name': 'verify', 'ignore_errors': True, ARCHIVE: dict(database=name, dest=dest,
                                                                                 state='verified')}])
        assert 'globals artifact %s is missing' % globals_path in run.result('verify')['msg']
    finally:
        drop_database(pg, name)
        for item in (role, other):
            pg.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(item)))


def test_schema_version_1_manifest_is_read_and_compared_as_far_as_it_goes(pg, rich_db, dest):
    c = conn(pg)
    run = run_tasks([{'name': 'snapshot', ARCHIVE: dict(c, database=rich_db, dest=dest, prefix='old')}])
    assert_ok(run)
    path = run.result('snapshot')['snapshot']['path']
    manifest = manifest_of(path)
    database = manifest['database']
    # What version 1 wrote: unquoted keys, no fingerprint, no globals artifact.
    legacy = dict((key.replace('"', ''), value) for key, value in database['tables'].items())
    for key in ('fingerprint', 'globals', 'roles_needed', 'owners'):
        database.pop(key, None)
    database['tables'] = legacy
    manifest['schema_version'] = 1
    with open(path + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle)
    os.unlink(path + '.globals.sql')
    run = run_tasks([
        {'name': 'verify', ARCHIVE: dict(database=rich_db, dest=dest, prefix='old', state='verified')},
        {'name': 'drill', RESTORE: dict(c, snapshot=path)},
    ])
    assert_ok(run)
    drill = run.result('drill')
    assert drill['matches'] is True and drill['fingerprint'] is None and 'schema version 1' in drill['note']
    assert 'a.b.c' in [row['table'] for row in drill['tables']]
    assert all(row['compared'] == 'exact' for row in drill['tables'])


def owned_database(pg, name, role, role_options, table_sql):
    """A fresh database ``name`` with a table (``table_sql``, ending in ``ALTER TABLE ...``) owned by a fresh ``role``."""
    drop_owned(pg, name, role)
    pg.execute(sql.SQL('CREATE ROLE {} ' + role_options).format(sql.Identifier(role)))
    pg.create_database(name)
    pg.execute(sql.SQL(table_sql + ' OWNER TO {}').format(sql.Identifier(role)), dbname=name)


def drop_owned(pg, name, role):
    drop_database(pg, name)
    pg.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))


def test_role_passwords_only_when_asked(pg, dest):
    """no_role_passwords (default true) leaves the hashes out; false writes them (0600) and roles come back with them."""
    c = conn(pg)
    role, name = 'fp_pw_%d' % os.getpid(), 'snap_pw_%d' % os.getpid()
    owned_database(pg, name, role, "LOGIN PASSWORD 'pw-secret'", 'CREATE TABLE owned (id int); ALTER TABLE owned')
    stored = pg.execute('SELECT rolpassword FROM pg_authid WHERE rolname = %s', (role,))[0][0]
    try:
        run = run_tasks([
            {'name': 'default', ARCHIVE: dict(c, database=name, dest=dest, prefix='nopw')},
            {'name': 'passwords', ARCHIVE: dict(c, database=name, dest=dest, prefix='pw', no_role_passwords=False)},
        ])
        assert_ok(run)
        texts = {}
        for task in ('default', 'passwords'):
            globals_path = run.result(task)['snapshot']['path'] + '.globals.sql'
            assert oct(os.stat(globals_path).st_mode & 0o777) == '0o600'
            with open(globals_path) as handle:
                texts[task] = handle.read()
        assert 'PASSWORD' not in texts['default'] and stored not in texts['default'] and 'no passwords' in texts['default']
        assert "ALTER ROLE \"%s\" PASSWORD '%s';" % (role, stored) in texts['passwords'] and 'pw-secret' not in texts['passwords']
        drop_database(pg, name)
        pg.execute(sql.SQL('DROP ROLE {}').format(sql.Identifier(role)))
        with_passwords = run.result('passwords')['snapshot']['path']
        run = run_tasks([{'name': 'drill', RESTORE: dict(c, snapshot=with_passwords, create_missing_roles=True)}])
        assert_ok(run)
        drill = run.result('drill')
        assert drill['roles_created'] == [role] and drill['matches'] is True
        assert pg.execute('SELECT rolpassword FROM pg_authid WHERE rolname = %s', (role,))[0][0] == stored
        assert stored not in json.dumps(drill) and "PASSWORD '********'" in json.dumps(drill['executed_commands'])
    finally:
        drop_owned(pg, name, role)


VERIFIER = '''
import json, sys
sys.path[:0] = %r
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.verify import verify_dump
path = sys.argv[1]
with open(path + '.manifest.json') as handle:
    verify_dump(path, json.load(handle), sys.argv[2], [])
'''


def test_killed_verification_scratch_dir_is_removed_by_the_next_run(pg, rich_db, dest, tmp_path):
    """A real verification of a directory dump, killed while pg_restore reads its scratch copy; a live one's stays."""
    import signal
    import subprocess
    import sys
    import time
    c = conn(pg)
    run = run_tasks([{'name': 'snapshot', ARCHIVE: dict(c, database=rich_db, dest=dest, prefix='dirv', format='directory')}])
    assert_ok(run)
    path = run.result('snapshot')['snapshot']['path']
    stalling = tmp_path / 'pg_restore'  # stands in for a slow pg_restore, so that the kill lands mid-verification
    stalling.write_text('#!/bin/sh\nsleep 600\n')
    stalling.chmod(0o755)

    def scratch_dirs():
        return sorted(name for name in os.listdir(dest) if name.endswith('.tmp') and '.verify.' in name)

    procs = []
    for _attempt in range(2):
        procs.append(subprocess.Popen([sys.executable, '-c', VERIFIER % (sys.path,), path, str(stalling)],
                                      start_new_session=True))
        deadline = time.monotonic() + 30
        while len(scratch_dirs()) < len(procs) and time.monotonic() < deadline:
            time.sleep(0.05)
    dead, live = procs
    try:
        first = scratch_dirs()
        assert len(first) == 2, first
        os.killpg(dead.pid, signal.SIGKILL)  # the verification and its pg_restore, as the OOM killer would
        dead.wait()
        time.sleep(0.2)
        run = run_tasks([{'name': 'verify', ARCHIVE: dict(database=rich_db, dest=dest, prefix='dirv', state='verified')}])
        assert_ok(run)
        result = run.result('verify')
        removed = [os.path.basename(item['path']) for item in result['stale_temp_removed']]
        assert len(removed) == 1 and removed[0] in first and result['stale_temp_removed'][0]['bytes'] > 0
        assert scratch_dirs() == [name for name in first if name not in removed]  # the live verification's dir stays
        assert 'dead runs' in result['summary'] and result['verified'][0]['ok'] is True
    finally:
        os.killpg(live.pid, signal.SIGKILL)
        live.wait()


def test_failed_restore_names_the_failed_statement(pg, dest):
    """A role dropped after the snapshot: the drill's restore fails, and the report names the statement and its error."""
    c = conn(pg)
    role, name = 'fp_lost_%d' % os.getpid(), 'snap_lost_%d' % os.getpid()
    owned_database(pg, name, role, '', 'CREATE TABLE kept (id int); INSERT INTO kept VALUES (1); ALTER TABLE kept')
    try:
        run = run_tasks([
            # Without a fingerprint the drill does not know the roles beforehand; a plain dump still sets owners.
            {'name': 'plain', ARCHIVE: dict(c, database=name, dest=dest, prefix='lostp', format='plain', fingerprint='none')},
            {'name': 'custom', ARCHIVE: dict(c, database=name, dest=dest, prefix='lostc')},
        ])
        assert_ok(run)
        custom = run.result('custom')['snapshot']['path']
        manifest = manifest_of(custom)  # as if the manifest named no such owner: the restore itself meets the role
        manifest['database']['fingerprint']['inventory']['table public.kept']['owner'] = 'postgres'
        with open(custom + '.manifest.json', 'w') as handle:
            json.dump(manifest, handle)
        drop_database(pg, name)
        pg.execute(sql.SQL('DROP ROLE {}').format(sql.Identifier(role)))
        run = run_tasks([
            {'name': 'plain', 'ignore_errors': True, RESTORE: dict(c, snapshot=run.result('plain')['snapshot']['path'])},
            {'name': 'custom', 'ignore_errors': True, RESTORE: dict(c, snapshot=custom)},
        ])
        statement = 'ALTER TABLE public.kept OWNER TO %s;' % role
        for task in ('plain', 'custom'):
            result = run.result(task)
            assert result['failed'] and result['failed_statements'] == [
                dict(statement=statement, error='role "%s" does not exist' % role)], (task, result)
            assert statement in result['msg'] and 'create_missing_roles' in result['msg'], result['msg']
    finally:
        drop_owned(pg, name, role)


@pytest.fixture(scope='module')
def icu_db(pg):
    """A database with the ICU provider and a German collation (the cluster's own default is C)."""
    if not pg.execute("SELECT count(*) FROM pg_collation WHERE collprovider = 'i'")[0][0]:
        pytest.skip('this PostgreSQL server is built without ICU: no ICU-locale database to snapshot')
    name = 'snap_icu_%d' % os.getpid()
    drop_database(pg, name)
    pg.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'").format(
        sql.Identifier(name)))
    for statement in (
        'CREATE TABLE words (w text PRIMARY KEY)',
        "INSERT INTO words VALUES ('z'), ('\u00e4'), ('a'), ('Z'), ('\u00d6l'), ('Ofen')",
        # Computed again by the restore (REFRESH): its content depends on the scratch database's collation.
        "CREATE MATERIALIZED VIEW sorted_words AS SELECT string_agg(w, ',' ORDER BY w) AS words FROM words",
    ):
        pg.execute(statement, dbname=name)
    yield name
    drop_database(pg, name)


def test_drill_of_icu_database_sorts_like_the_source(pg, icu_db, dest):
    c = conn(pg)
    expected = pg.execute('SELECT words FROM sorted_words', dbname=icu_db)[0][0]
    assert expected == 'a,\u00e4,Ofen,\u00d6l,z,Z'  # German: umlauts beside their vowel, lower case first
    assert pg.execute("SELECT string_agg(w, ',' ORDER BY w) FROM (SELECT w FROM unnest(%s::text[]) w) v",
                      (expected.split(','),))[0][0] != expected  # the server's default (C) sorts otherwise
    scratch = 'restore_drill_icu_%d' % os.getpid()
    run = run_tasks([
        {'name': 'snapshot', ARCHIVE: dict(c, database=icu_db, dest=dest)},
        {'name': 'drill', RESTORE: dict(c, dest=dest, database=icu_db, scratch_database=scratch, keep=True)},
    ])
    try:
        assert_ok(run)
        state = manifest_of(run.result('snapshot')['snapshot']['path'])['database']['fingerprint']['database']
        assert state['locale_provider'] == 'icu' and state['icu_locale'] == 'de-DE'
        drill = run.result('drill')
        assert drill['matches'] is True and drill['differences'] == [], drill['summary']
        assert pg.execute('SELECT datlocprovider, daticulocale FROM pg_database WHERE datname = %s', (scratch,)) == [
            ('i', 'de-DE')]
        assert pg.execute('SELECT words FROM sorted_words', dbname=scratch)[0][0] == expected  # refreshed in the scratch
        assert pg.execute("SELECT string_agg(w, ',' ORDER BY w) FROM words", dbname=scratch)[0][0] == expected
    finally:
        drop_database(pg, scratch)

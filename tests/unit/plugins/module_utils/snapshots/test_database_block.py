"""The database block of the globals artifact, role passwords masked, the drill's mark, database comparison."""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots import roles
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.drill import is_marked, unmarked
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.fingerprint import compare, roles_needed

STATE = dict(owner='app', connection_limit=5, comment="it's\nhere", settings={
    'work_mem': '8MB', 'search_path': 'public, "Mixed Case"', 'role Odd Role: statement_timeout': '5s'},
    acl=['=Tc/app', 'app=CTc/app', '"Odd Role"=c*/app', 'r2=c/"Odd Role"'])


def test_database_sql_replays_owner_limit_comment_acl_and_settings():
    assert roles.database_sql(STATE, 'my db') == [
        'ALTER DATABASE "my db" OWNER TO "app";',
        'ALTER DATABASE "my db" WITH CONNECTION LIMIT 5;',
        "COMMENT ON DATABASE \"my db\" IS E'it''s\\nhere';",
        'REVOKE ALL ON DATABASE "my db" FROM PUBLIC;',
        'REVOKE ALL ON DATABASE "my db" FROM "app";',
        'GRANT TEMPORARY, CONNECT ON DATABASE "my db" TO PUBLIC;',
        'GRANT CREATE, TEMPORARY, CONNECT ON DATABASE "my db" TO "app";',
        'GRANT CONNECT ON DATABASE "my db" TO "Odd Role" WITH GRANT OPTION;',
        'SET ROLE "Odd Role"; GRANT CONNECT ON DATABASE "my db" TO "r2"; RESET ROLE;',
        'ALTER ROLE "Odd Role" IN DATABASE "my db" SET "statement_timeout" TO \'5s\';',
        'ALTER DATABASE "my db" SET "search_path" TO \'public\', \'Mixed Case\';',
        'ALTER DATABASE "my db" SET "work_mem" TO \'8MB\';',
    ]


def test_default_state_gives_no_statements_and_block_reads_back():
    assert roles.database_sql(dict(owner=None, connection_limit=-1, comment=None, acl=None, settings={}), 'x') == []
    text = '-- role: a\nCREATE ROLE "a";\n-- memberships\n' + roles.database_block(STATE, 'app')
    name, lines = roles.parse_database_block(text)
    assert name == 'app' and lines == roles.database_sql(STATE, 'app')
    blocks, grants = roles.parse_globals(text)
    assert blocks == {'a': ['CREATE ROLE "a";']} and grants == []  # the database block is not a membership grant


def test_roles_named_and_needed():
    assert roles.roles_named('SET ROLE "Odd Role"; GRANT CONNECT ON DATABASE "x" TO "r2"; RESET ROLE;') == ['Odd Role', 'r2']
    assert roles.roles_named('REVOKE ALL ON DATABASE "x" FROM PUBLIC;') == []
    assert roles_needed(dict(inventory={}, database=STATE)) == ['Odd Role', 'app', 'r2']


def test_password_masked():
    assert roles.mask_password("ALTER ROLE \"a\" PASSWORD 'SCRAM-SHA-256$4096:abc''d';") == \
        "ALTER ROLE \"a\" PASSWORD '********';"


def test_drill_mark_is_the_last_line_of_the_comment():
    mark = 'engineroom.maintenance restore drill 0123'
    assert is_marked(mark) and is_marked('source comment\n' + mark) and not is_marked('source comment')
    assert not is_marked(None) and unmarked(mark) is None and unmarked('a\nb\n' + mark) == 'a\nb'
    assert unmarked('plain') == 'plain'


def _database(want, got, owners=True):
    lo = dict(count=0)
    return [(item['name'], item['what']) for item in compare(dict(database=want, large_objects=lo),
                                                             dict(database=got, large_objects=lo), owners)]


def test_database_differences_owner_and_acl_only_with_owners():
    restored = dict(STATE, comment='other', acl=['=Tc/app'], owner='postgres')
    assert _database(STATE, restored) == [('comment', 'differs'), ('owner', 'differs'), ('acl', 'grant')]
    assert _database(STATE, restored, owners=False) == [('comment', 'differs')]
    old = dict((key, value) for key, value in STATE.items() if key != 'owner')  # recorded before the owner was
    assert _database(old, restored) == [('comment', 'differs'), ('acl', 'grant')]

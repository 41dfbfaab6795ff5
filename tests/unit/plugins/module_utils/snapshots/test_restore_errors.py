"""Naming the statements a restore tool reports as failed (stderr as pg_restore 15 and psql 15 -b write it)."""

from __future__ import annotations

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.drill import (
    RestoreError,
    check_restored,
    failed_statements,
)
from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots.dump import DumpError

PG_RESTORE = b'''pg_restore: error: could not execute query: ERROR:  relation "t" already exists
Command was: CREATE TABLE public.t (
    id integer
);


pg_restore: error: could not execute query: ERROR:  role "rx" does not exist
Command was: ALTER TABLE public.t OWNER TO rx;

pg_restore: warning: errors ignored on restore: 2
'''
PSQL = 'psql:<stdin>:31: ERROR:  syntax error at or near "SELEC"\nLINE 1: SELEC 1;\n        ^\npsql:<stdin>:31: STATEMENT:  SELEC 1;\n'


def test_pg_restore_statements_and_errors():
    assert failed_statements(PG_RESTORE) == [
        dict(statement='CREATE TABLE public.t ( id integer );', error='relation "t" already exists'),
        dict(statement='ALTER TABLE public.t OWNER TO rx;', error='role "rx" does not exist'),
    ]


def test_psql_echo_errors_with_location_prefix():
    assert failed_statements(PSQL) == [dict(statement='SELEC 1;', error='syntax error at or near "SELEC"')]


def test_restore_error_names_statement_and_remedy():
    with pytest.raises(RestoreError) as caught:
        check_restored('pg_restore', 1, PG_RESTORE)
    assert 'ALTER TABLE public.t OWNER TO rx; (role "rx" does not exist)' in str(caught.value)
    assert 'create_missing_roles' in str(caught.value) and len(caught.value.failed) == 2


def test_failure_without_statement_stays_a_plain_dump_error():
    with pytest.raises(DumpError) as caught:
        check_restored('pg_restore', 1, b'pg_restore: error: connection to server failed: FATAL:  no such database\n')
    assert not isinstance(caught.value, RestoreError) and 'connection to server failed' in str(caught.value)
    check_restored('psql', 0, b'')

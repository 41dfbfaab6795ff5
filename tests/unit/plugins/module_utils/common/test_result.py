"""Result helpers shared by every module."""

from __future__ import annotations

from ansible_collections.engineroom.maintenance.plugins.module_utils.common import result as _result


def test_format_argv_quotes_and_masks():
    line = _result.format_argv(['pg_dump', '--dbname', 'postgresql://u:s3cret@h/db', 'a b'], secrets=['s3cret'])
    assert line == "pg_dump --dbname postgresql://u:********@h/db 'a b'"


def test_mask_ignores_empty_secrets():
    assert _result.mask_secrets('abc', ['', None]) == 'abc'

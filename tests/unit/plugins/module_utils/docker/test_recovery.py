"""container recovery's pure parts: what is restarted, and the restart budget kept in its state file."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.docker.recovery import Budget, RecoveryError, decide

NOW = datetime.datetime(2026, 12, 5, 12, 0, 0, tzinfo=datetime.timezone.utc)


def seen(status, health=None, exit_code=0):
    return dict(status=status, health=health, exit_code=exit_code, started_at='x', has_healthcheck=health is not None)


@pytest.mark.parametrize('observed, action', [
    (seen('running', 'unhealthy'), 'restart'),
    (seen('exited', exit_code=137), 'restart'),
    (seen('running', 'healthy'), None),
    (seen('running'), None),
    (seen('running', 'starting'), None),
    (seen('exited', exit_code=0), None),
    (seen('paused'), None),
    (seen('restarting'), None),
    (seen('created'), None),
])
def test_only_unhealthy_or_failed_containers_are_restarted(observed, action):
    assert decide(observed)[0] == action


def test_budget_counts_restarts_within_the_window_and_survives_in_the_file(tmp_path):
    path = str(tmp_path / 'budget.json')
    budget = Budget(path, 3600, NOW)
    assert budget.recent('web') == []
    budget.record('web', NOW - datetime.timedelta(seconds=7200))  # outside the window: dropped on the next write
    budget.record('web', NOW - datetime.timedelta(seconds=60))
    budget.record('db', NOW)
    again = Budget(path, 3600, NOW)
    assert len(again.recent('web')) == 1 and len(again.recent('db')) == 1
    with open(path) as handle:
        assert sorted(json.load(handle)['restarts']) == ['db', 'web']


def test_a_damaged_budget_file_is_an_error_not_a_fresh_budget(tmp_path):
    path = tmp_path / 'budget.json'
    path.write_text('{not json')
    with pytest.raises(RecoveryError, match='cannot be read'):
        Budget(str(path), 3600, NOW)

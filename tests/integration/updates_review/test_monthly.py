"""The update review in the monthly calendar: report only by default, its summary in the month's figures."""

from __future__ import annotations

import os

from tests.harness.playbook import REPO_ROOT, run_playbook


def test_monthly_runs_the_update_review_report_only(apt_sandbox, old_venv):
    status_before = apt_sandbox.dpkg('-l')
    run = run_playbook(os.path.join(REPO_ROOT, 'playbooks', 'monthly.yml'),
                       extra_vars=dict(updates_review_apt_config=apt_sandbox.config,
                                       updates_review_venvs=[dict(name='app', path=old_venv)]),
                       env=dict(ANSIBLE_RUN_TAGS='updates', ANSIBLE_SHOW_CUSTOM_STATS='1'))
    assert run.rc == 0, run.stderr
    result = run.result('Review the updates')
    assert result['changed'] is False and result['metrics']['apt_pending'] == 2 and result['metrics']['pip_outdated'] >= 1
    assert run.result('Report the update review')['msg'][0] == result['summary']
    stats = run.report['global_custom_stats']['monthly']['localhost']
    assert stats['updates'] == result['summary'] and stats['review'] == 'skipped'
    assert apt_sandbox.dpkg('-l') == status_before

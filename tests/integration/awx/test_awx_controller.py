"""playbooks/awx_setup.yml against a real AWX 24.6.1 API (tests/integration/awx/conftest.py), read back through /api/v2/.

Every test starts from a fresh copy of the migrated controller database. The project is manual: its
local_path is a directory under the controller's PROJECTS_ROOT holding the collection's playbooks/.
The machine credential's secrets come from an ansible-vault encrypted variables file and must appear
in no output. Jobs are launched through the API and stay pending: no execution node exists here, so
what is asserted is the controller's validation of the launch, not a run.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import zoneinfo

import pytest
import yaml

from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env, run_playbook
from tests.integration.awx.conftest import PROJECT_DIR

ORG = 'Engineroom Ops'
TZ = 'Europe/Berlin'
CALENDAR = ['daily', 'weekly', 'monthly', 'quarterly', 'maintenance_on', 'maintenance_off', 'report']
SCHEDULED = {
    # name: (start time, rrule, which local days it fires on)
    'daily': ('020000', 'FREQ=DAILY;INTERVAL=1', lambda day: True),
    'weekly': ('030000', 'FREQ=WEEKLY;INTERVAL=1;BYDAY=SU', lambda day: day.weekday() == 6),
    'monthly': ('040000', 'FREQ=MONTHLY;INTERVAL=1;BYSETPOS=1;BYDAY=SU', lambda day: day.weekday() == 6 and day.day <= 7),
    'quarterly': ('050000', 'FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=15', lambda day: day.month in (1, 4, 7, 10) and day.day == 15),
}
MACHINE_PASSWORD = 'Vaulted-ssh-pw-7f3a'
BECOME_PASSWORD = 'Vaulted-become-pw-91c2'
VAULT_PASSWORD = 'vault-test-pw'


@pytest.fixture
def vault(tmp_path):
    """``-e @vault.yml`` and its password file: the machine credential's inputs, encrypted with ansible-vault."""
    secrets = tmp_path / 'vault.yml'
    secrets.write_text(yaml.safe_dump(dict(awx_machine_username='engineroom', awx_machine_password=MACHINE_PASSWORD,
                                           awx_machine_become_password=BECOME_PASSWORD)))
    password_file = tmp_path / 'vault-pass'
    password_file.write_text(VAULT_PASSWORD + '\n')
    subprocess.run([os.path.join(BIN_DIR, 'ansible-vault'), 'encrypt', '--vault-password-file', str(password_file),
                    str(secrets)], check=True, capture_output=True, env=ansible_env(), cwd=REPO_ROOT)
    assert MACHINE_PASSWORD not in secrets.read_text()
    return ['-e', '@%s' % secrets, '--vault-password-file', str(password_file)]


def setup(awx, tmp_path, vault_args=(), check=False, token=None, **extra):
    """Run awx_setup.yml against ``awx`` (manual project, Europe/Berlin, organization ORG); its PlaybookRun."""
    variables = dict(awx_project_scm_type='manual', awx_project_local_path=PROJECT_DIR, awx_schedule_timezone=TZ,
                     awx_organization=ORG)
    variables.update(extra)
    env = dict(CONTROLLER_HOST=awx.url, CONTROLLER_OAUTH_TOKEN=token or awx.token,
               ENGINEROOM_MAINTENANCE_LOG_DIR=str(tmp_path / 'log'))
    return run_playbook('awx_setup.yml', extra_vars=variables, check=check, env=env, args=list(vault_args))


def changed(run):
    return run.report['stats']['localhost']['changed']


def failed_tasks(run):
    """``[(task, message)]`` of the failed tasks; a loop's message is its failed items' messages."""
    return [(t['_task'], '; '.join(r.get('msg', '') for r in t['results'] if r.get('failed')) if 'results' in t else t.get('msg', ''))
            for t in run.tasks if t.get('failed')]


def listing(awx, kind, query=''):
    return awx.get('/api/v2/%s/?page_size=200&order_by=name%s' % (kind, query))['results']


def activity_count(awx):
    """Entries in the controller's activity stream: every create, update and delete adds one."""
    return awx.get('/api/v2/activity_stream/?page_size=1')['count']


# awx.awx 24.6.1's inventory module PATCHes an unchanged inventory on every run (host_filter null -> ''; the
# stored value stays null) and rightly reports it unchanged: the one write a re-run makes. Measured, not hidden.
INVENTORY_NOOP = ('update', 'inventory', {'host_filter': [None, '']})


def writes_since(awx, count):
    """``[(operation, object, changes)]`` of the activity entries after the first ``count``, the no-op PATCH aside."""
    entries = awx.get('/api/v2/activity_stream/?page_size=200&order_by=id')['results'][count:]
    return [e for e in ((e['operation'], e['object1'], e['changes']) for e in entries) if e != INVENTORY_NOOP]


def unchanged_state(state):
    """controller_state without the inventories' ``modified`` (moved by the no-op PATCH above)."""
    return dict(state, inventories=[dict(i, modified=None) for i in state['inventories']])


def expected_next_run(start, fires_on, now):
    """The first local ``start`` (HHMMSS) on a day ``fires_on`` accepts, after ``now``, in UTC as the API writes it."""
    zone = zoneinfo.ZoneInfo(TZ)
    at = datetime.time(int(start[:2]), int(start[2:4]), int(start[4:]))
    day = now.astimezone(zone).date()
    while True:
        moment = datetime.datetime.combine(day, at, tzinfo=zone)
        if fires_on(day) and moment > now:
            return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        day += datetime.timedelta(days=1)


def controller_state(awx):
    """What awx_setup.yml declares, as the API returns it (ids and timestamps included: nothing may move)."""
    templates = listing(awx, 'job_templates', '&name__startswith=engineroom')
    return dict(
        organizations=listing(awx, 'organizations'), projects=listing(awx, 'projects'),
        inventories=listing(awx, 'inventories'), credentials=listing(awx, 'credentials'),
        job_templates=templates, schedules=listing(awx, 'schedules'),
        surveys={t['name']: awx.get('/api/v2/job_templates/%d/survey_spec/' % t['id']) for t in templates})


def assert_declared(awx):
    """Everything awx_setup.yml declares, read back through /api/v2/."""
    org = awx.named('organizations', ORG)
    project = awx.named('projects', 'engineroom maintenance')
    assert (project['organization'], project['scm_type'], project['local_path']) == (org['id'], '', PROJECT_DIR)
    playbooks = awx.get('/api/v2/projects/%d/playbooks/' % project['id'])
    assert {'playbooks/%s.yml' % name for name in CALENDAR} <= set(playbooks)
    inventory = awx.named('inventories', 'engineroom fleet')
    assert inventory['organization'] == org['id']
    credential = awx.named('credentials', 'engineroom ssh')
    assert credential['organization'] == org['id'] and credential['kind'] == 'ssh'
    assert credential['inputs'] == dict(username='engineroom', password='$encrypted$', become_method='sudo',
                                        become_password='$encrypted$')

    templates = {t['name']: t for t in listing(awx, 'job_templates', '&name__startswith=engineroom')}
    assert sorted(templates) == sorted('engineroom %s' % name for name in CALENDAR)
    for name in CALENDAR:
        template = templates['engineroom %s' % name]
        assert template['playbook'] == 'playbooks/%s.yml' % name
        assert (template['project'], template['inventory'], template['job_type']) == (project['id'], inventory['id'], 'run')
        assert template['allow_simultaneous'] is False and template['survey_enabled'] is True
        assert template['extra_vars'] in ('', '---', '{}')
        assert [c['name'] for c in template['summary_fields']['credentials']] == ['engineroom ssh']
        survey = awx.get('/api/v2/job_templates/%d/survey_spec/' % template['id'])
        assert survey['name'] == 'engineroom %s' % name
        questions = {q['variable']: q for q in survey['spec']}
        assert sorted(questions) == (['maintenance_reason'] if name == 'report' else ['engineroom_hosts', 'maintenance_reason'])
        reason = questions['maintenance_reason']
        assert (reason['type'], reason['required'], reason['default'], reason['max']) == ('text', name == 'maintenance_on', '', 200)
        if name != 'report':
            targets = questions['engineroom_hosts']
            assert (targets['type'], targets['required'], targets['default'], targets['min']) == ('text', True, 'all', 1)

    now = datetime.datetime.now(datetime.timezone.utc)
    schedules = {s['name']: s for s in listing(awx, 'schedules', '&name__startswith=engineroom')}
    assert sorted(schedules) == sorted('engineroom %s schedule' % name for name in SCHEDULED)
    for name, (start, rule, fires_on) in SCHEDULED.items():
        schedule = schedules['engineroom %s schedule' % name]
        assert schedule['rrule'] == 'DTSTART;TZID=%s:20260101T%s RRULE:%s' % (TZ, start, rule)
        assert schedule['timezone'] == TZ and schedule['enabled'] is True
        assert schedule['unified_job_template'] == templates['engineroom %s' % name]['id']
        assert schedule['extra_data'] == dict(maintenance_reason='schedule: %s' % name, engineroom_hosts='all')
        assert schedule['next_run'] == expected_next_run(start, fires_on, now), name
    return templates


def assert_no_secret(run, tmp_path):
    output = run.stdout + run.stderr
    with open(tmp_path / 'log' / 'maintenance.jsonl') as handle:
        output += handle.read()
    for secret in (MACHINE_PASSWORD, BECOME_PASSWORD, VAULT_PASSWORD):
        assert secret not in output


def test_setup_declares_everything_then_changes_nothing(awx, tmp_path, vault):
    first = setup(awx, tmp_path, vault)
    assert first.rc == 0, failed_tasks(first) or first.stderr[-3000:]
    assert changed(first) > 0
    assert_declared(awx)
    assert_no_secret(first, tmp_path)

    state, activity = unchanged_state(controller_state(awx)), activity_count(awx)
    second = setup(awx, tmp_path, vault)
    assert second.rc == 0, failed_tasks(second)
    assert changed(second) == 0, [t['_task'] for t in second.tasks if t.get('changed')]
    assert unchanged_state(controller_state(awx)) == state and writes_since(awx, activity) == []

    # --check with a change to make (another timezone): reported, not done.
    activity = activity_count(awx)
    check = setup(awx, tmp_path, vault, check=True, awx_schedule_timezone='UTC')
    assert check.rc == 0, failed_tasks(check)
    # The inventory is the no-op PATCH above: in check mode awx.awx cannot see the answer, so it says changed.
    assert [t['_task'] for t in check.tasks if t.get('changed')] == ['Declare the inventory',
                                                                     'Declare the schedules (RRULE with the timezone)']
    assert unchanged_state(controller_state(awx)) == state and writes_since(awx, activity) == []
    assert_no_secret(check, tmp_path)


def test_each_job_template_launches_with_its_survey_answers(awx, tmp_path, vault):
    run = setup(awx, tmp_path, vault)
    assert run.rc == 0, failed_tasks(run)
    templates = {t['name']: t for t in listing(awx, 'job_templates', '&name__startswith=engineroom')}
    for name in CALENDAR:
        template = templates['engineroom %s' % name]
        answers = dict(maintenance_reason='test launch of %s' % name)
        if name != 'report':
            answers['engineroom_hosts'] = 'web'
        status, body = awx.request('/api/v2/job_templates/%d/launch/' % template['id'], 'POST', dict(extra_vars=answers))
        assert status == 201, (name, body)
        job = awx.get('/api/v2/jobs/%d/' % body['job'])
        assert job['job_template'] == template['id'] and job['status'] in ('new', 'pending'), job['status']
        assert yaml.safe_load(job['extra_vars']) == answers
        assert job['playbook'] == 'playbooks/%s.yml' % name

    # The survey is enforced: maintenance_on needs its reason, and an answer over max is refused.
    on = templates['engineroom maintenance_on']['id']
    status, body = awx.request('/api/v2/job_templates/%d/launch/' % on, 'POST', dict(extra_vars=dict(engineroom_hosts='all')))
    assert status == 400 and 'maintenance_reason' in str(body), body
    status, body = awx.request('/api/v2/job_templates/%d/launch/' % on, 'POST',
                               dict(extra_vars=dict(engineroom_hosts='all', maintenance_reason='x' * 201)))
    assert status == 400 and 'maintenance_reason' in str(body), body


ONE_DAILY = [dict(name='daily', playbook='playbooks/daily.yml', description='daily', rrule='FREQ=DAILY;INTERVAL=1',
                  at='020000')]


def refusal(run, awx):
    """The one failed task of a refused run and its message; no job template or schedule was left behind."""
    assert run.rc == 2
    (task, msg), = failed_tasks(run)
    assert listing(awx, 'schedules', '&name__startswith=engineroom') == []
    return task, msg


def test_wrong_rrule_is_refused_by_the_controller(awx, tmp_path):
    calendar = [dict(ONE_DAILY[0], rrule='FREQ=FORTNIGHTLY;INTERVAL=1')]
    task, msg = refusal(setup(awx, tmp_path, awx_calendar=calendar, awx_machine_username='engineroom'), awx)
    assert task == 'Declare the schedules (RRULE with the timezone)'
    assert 'FORTNIGHTLY' in msg or 'rrule' in msg.lower(), msg


JT_TASK = 'Declare one job template per calendar playbook, with its survey'


def test_playbook_missing_from_the_project_is_refused_by_the_controller(awx, tmp_path):
    os.unlink(os.path.join(awx.projects_root, PROJECT_DIR, 'playbooks', 'daily.yml'))
    task, msg = refusal(setup(awx, tmp_path, awx_calendar=ONE_DAILY, awx_machine_username='engineroom'), awx)
    assert task == JT_TASK and 'Playbook not found for project' in msg, msg
    assert listing(awx, 'job_templates', '&name__startswith=engineroom') == []


def test_survey_default_not_among_its_choices_is_refused_before_sending(awx, tmp_path):
    # The controller refuses it only after creating the job template ("Failed to update survey: Default choice
    # must be answered from the choices listed"), so the playbook checks it first and sends nothing.
    before = activity_count(awx)
    question = dict(question_name='Targets', variable='engineroom_hosts', type='multiplechoice', required=True,
                    choices=['web', 'db'], default='all')
    run = setup(awx, tmp_path, awx_calendar=ONE_DAILY, awx_targets_question=question, awx_machine_username='engineroom')
    assert run.rc == 2
    (task, msg), = failed_tasks(run)
    assert task == "Check that every survey default is among its question's choices"
    assert msg.startswith('Survey question engineroom_hosts default all (choices: web, db): the default is not one'), msg
    assert activity_count(awx) == before


def test_job_template_with_a_missing_inventory_is_refused(awx, tmp_path):
    task, msg = refusal(setup(awx, tmp_path, awx_calendar=ONE_DAILY, awx_inventory_managed=False,
                              awx_inventory_name='engineroom nowhere', awx_machine_username='engineroom'), awx)
    assert task == JT_TASK and 'inventories/?name=engineroom+nowhere returned 0 items' in msg, msg
    assert listing(awx, 'job_templates', '&name__startswith=engineroom') == []


def test_wrong_token_is_refused_before_anything_is_sent(awx, tmp_path):
    wrong = 'NotAToken1234567890abcdef'
    before = activity_count(awx)
    run = setup(awx, tmp_path, token=wrong)
    assert run.rc == 2
    (task, msg), = failed_tasks(run)
    assert task == 'Report a refused login'
    assert msg.startswith('The controller at %s refused the login (HTTP 401)' % awx.url) and 'CONTROLLER_OAUTH_TOKEN' in msg
    assert wrong not in run.stdout + run.stderr
    assert activity_count(awx) == before


def test_organization_name_with_quotes_and_unicode(awx, tmp_path):
    name = 'Ops "Nord" l\'équipe — Zürich ✓'
    run = setup(awx, tmp_path, awx_calendar=ONE_DAILY, awx_organization=name, awx_machine_username='engineroom')
    assert run.rc == 0, failed_tasks(run)
    org = awx.named('organizations', name)
    assert org['name'] == name
    template = awx.named('job_templates', 'engineroom daily')
    assert template['summary_fields']['organization']['name'] == name
    again = setup(awx, tmp_path, awx_calendar=ONE_DAILY, awx_organization=name, awx_machine_username='engineroom')
    assert again.rc == 0 and changed(again) == 0

"""playbooks/awx_setup.yml without a controller: syntax, the preflight plan, refusals before any object is sent.

The playbook is syntax-checked, its `preflight` tag (input checks and the plan: job
templates, playbooks, surveys, schedules) runs for real, a run against a closed loopback
port stops at the controller check with no secret in the output, and a controller
answering as an older AWX is refused naming its version. What the controller itself
accepts and stores is tested against a real AWX in test_awx_controller.py.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import re
import subprocess
import threading
import zoneinfo

import yaml

from tests.harness.playbook import BIN_DIR, REPO_ROOT, ansible_env, run_playbook
from tests.harness.ports import free_port

PLAYBOOK = os.path.join(REPO_ROOT, 'playbooks', 'awx_setup.yml')
SCM_URL = 'https://git.example.invalid/ops/maintenance.git'

# RFC 5545 RRULE parts the controller's schedules accept (AWX rejects COUNT > 999, BYDAY with a
# numeric prefix such as 1SU, and rules without DTSTART/TZID), and their value grammar.
RRULE_PART = {
    'FREQ': re.compile(r'^(DAILY|WEEKLY|MONTHLY|YEARLY)$'),
    'INTERVAL': re.compile(r'^[1-9][0-9]*$'),
    'BYDAY': re.compile(r'^(MO|TU|WE|TH|FR|SA|SU)(,(MO|TU|WE|TH|FR|SA|SU))*$'),
    'BYSETPOS': re.compile(r'^-?[1-9][0-9]{0,2}$'),
    'BYMONTHDAY': re.compile(r'^([1-9]|1[0-9]|2[0-8])$'),  # a day every month has
}
SCHEDULE = re.compile(r'^DTSTART;TZID=(?P<tz>[A-Za-z_/+-]+):(?P<start>[0-9]{8}T[0-9]{6}) RRULE:(?P<rule>[A-Z0-9=;,-]+)$')


def parse_schedule(text):
    """Split a controller schedule into (timezone, start, {part: value}), asserting its grammar."""
    match = SCHEDULE.match(text)
    assert match, 'not a DTSTART;TZID=...:YYYYMMDDTHHMMSS RRULE:... schedule: %r' % text
    tz = zoneinfo.ZoneInfo(match['tz'])  # raises for an unknown zone
    start = datetime.datetime.strptime(match['start'], '%Y%m%dT%H%M%S').replace(tzinfo=tz)
    parts = dict(part.split('=', 1) for part in match['rule'].split(';'))
    assert len(parts) == match['rule'].count(';') + 1, 'a part is repeated in %r' % text
    for key, value in parts.items():
        assert key in RRULE_PART and RRULE_PART[key].match(value), 'bad RRULE part %s=%s in %r' % (key, value, text)
    assert 'FREQ' in parts and 'INTERVAL' in parts
    return match['tz'], start, parts


def plan(run):
    results = run.result('Show the job templates and schedules that will be declared')['results']
    return {item['item']['name']: item['msg'] for item in results}


def test_syntax_check():
    completed = subprocess.run([os.path.join(BIN_DIR, 'ansible-playbook'), '--syntax-check', PLAYBOOK], cwd=REPO_ROOT,
                               env=ansible_env(dict(ANSIBLE_STDOUT_CALLBACK='default')), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert 'playbook: ' + os.path.relpath(PLAYBOOK, REPO_ROOT) in completed.stdout or 'playbook: ' + PLAYBOOK in completed.stdout


def test_preflight_plan_templates_surveys_and_schedules(tmp_path):
    env = dict(ANSIBLE_RUN_TAGS='preflight', ENGINEROOM_MAINTENANCE_LOG_DIR=str(tmp_path / 'log'))
    run = run_playbook(PLAYBOOK, extra_vars=dict(awx_project_scm_url=SCM_URL, awx_schedule_timezone='Europe/Berlin'),
                       env=env)
    assert run.rc == 0, run.stderr
    entries = plan(run)
    assert sorted(entries) == sorted(['daily', 'weekly', 'monthly', 'quarterly', 'maintenance_on', 'maintenance_off',
                                      'report'])
    for name, entry in entries.items():
        assert entry['job_template'] == 'engineroom ' + name
        # Every job template points at a playbook of this project.
        with open(os.path.join(REPO_ROOT, entry['playbook'])) as handle:
            plays = yaml.safe_load(handle)
        assert plays and all('hosts' in p or 'ansible.builtin.import_playbook' in p for p in plays), entry['playbook']
        survey = {q['variable']: q for q in entry['survey']}
        assert survey['maintenance_reason']['required'] is (name == 'maintenance_on')
        if name == 'report':
            assert 'engineroom_hosts' not in survey  # runs on the controller node only
        else:
            assert survey['engineroom_hosts']['required'] and survey['engineroom_hosts']['default'] == 'all'

    schedules = {name: parse_schedule(e['schedule']) for name, e in entries.items() if e['schedule'].startswith('DTSTART')}
    assert sorted(schedules) == ['daily', 'monthly', 'quarterly', 'weekly']
    assert {tz for tz, dummy, dummy in schedules.values()} == {'Europe/Berlin'}
    dummy, start, daily = schedules['daily']
    assert daily == {'FREQ': 'DAILY', 'INTERVAL': '1'} and (start.hour, start.minute) == (2, 0)
    dummy, start, weekly = schedules['weekly']
    assert weekly == {'FREQ': 'WEEKLY', 'INTERVAL': '1', 'BYDAY': 'SU'} and (start.hour, start.minute) == (3, 0)
    dummy, start, monthly = schedules['monthly']
    assert monthly == {'FREQ': 'MONTHLY', 'INTERVAL': '1', 'BYSETPOS': '1', 'BYDAY': 'SU'} and start.hour == 4
    dummy, start, quarterly = schedules['quarterly']
    assert quarterly['FREQ'] == 'MONTHLY' and quarterly['INTERVAL'] == '3' and start.hour == 5
    for name in ('maintenance_on', 'maintenance_off', 'report'):
        assert entries[name]['schedule'] == 'none (launched by hand)'


def test_preflight_refuses_missing_scm_url_and_unknown_playbook(tmp_path):
    env = dict(ANSIBLE_RUN_TAGS='preflight', ENGINEROOM_MAINTENANCE_LOG_DIR=str(tmp_path / 'log'))
    no_url = run_playbook(PLAYBOOK, env=env)
    assert no_url.rc == 2
    assert 'Set awx_project_scm_url' in no_url.result('Check the settings before touching the controller')['msg']

    calendar = [dict(name='typo', playbook='playbooks/dayly.yml', description='a typo')]
    typo = run_playbook(PLAYBOOK, extra_vars=dict(awx_project_scm_url=SCM_URL, awx_calendar=calendar), env=env)
    assert typo.rc == 2
    msg = typo.result("Check that every job template's playbook exists in this project")['msg']
    assert 'playbooks/dayly.yml' in msg and 'not in this project' in msg


def test_unreachable_controller_fails_on_the_first_object_without_leaking_secrets(tmp_path):
    secret = 'Sekr1t-controller-pw'
    port = free_port()  # nothing listens there
    extra = dict(awx_project_scm_url=SCM_URL, controller_host='https://127.0.0.1:%d' % port,
                 controller_username='admin', controller_password=secret, controller_validate_certs=False)
    run = run_playbook(PLAYBOOK, extra_vars=extra, check=True,
                       env=dict(ENGINEROOM_MAINTENANCE_LOG_DIR=str(tmp_path / 'log')))
    assert run.rc == 2
    failed = [t for t in run.tasks if t.get('failed')]
    assert [t['_task'] for t in failed] == ['Check that the controller answers and is recent enough']
    assert failed[0]['msg'].startswith('The controller at https://127.0.0.1:%d did not answer /api/v2/ping/' % port)
    assert 'Connection refused' in failed[0]['msg'] and 'check controller_host' in failed[0]['msg']
    assert not [t for t in run.tasks if t['_task'].startswith('Declare')]  # nothing was sent
    output = str(run.report) + run.stderr
    assert secret not in output
    with open(os.path.join(str(tmp_path / 'log'), 'maintenance.jsonl')) as handle:
        assert secret not in handle.read()


class _OldController(http.server.BaseHTTPRequestHandler):
    """Answers as AWX 23.9.0 would on /api/v2/ping/ (no older AWX can be installed here; only its answer matters)."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = json.dumps(dict(version='23.9.0', active_node='awx-old', ha=False)).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('X-API-Product-Name', 'AWX')
        self.send_header('X-API-Product-Version', '23.9.0')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


def test_older_major_version_is_refused_naming_it(tmp_path):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _OldController)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = 'http://127.0.0.1:%d' % server.server_address[1]
        run = run_playbook(PLAYBOOK, extra_vars=dict(awx_project_scm_url=SCM_URL, controller_host=url,
                                                     controller_oauthtoken='any-token'),
                           env=dict(ENGINEROOM_MAINTENANCE_LOG_DIR=str(tmp_path / 'log')))
    finally:
        server.shutdown()
        server.server_close()
    assert run.rc == 2
    failed = [t for t in run.tasks if t.get('failed')]
    assert [t['_task'] for t in failed] == ['Check that the controller answers and is recent enough']
    assert 'runs AWX 23.9.0, older than 24' in failed[0]['msg'] and 'upgrade the controller' in failed[0]['msg']
    assert not [t for t in run.tasks if t['_task'].startswith('Declare')]

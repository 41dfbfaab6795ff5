"""Fixtures of the fault suite: a clean sandbox per case, and the record each case leaves for RELIABILITY.md."""

from __future__ import annotations

import os

import pytest

from tests.harness import faults
from tests.harness.sandbox import Sandbox


@pytest.fixture
def sandbox(tmp_path):
    """A fresh sandbox (PostgreSQL with data, uploads, logs) for one case; the cluster comes as ``box.cluster``."""
    root = tmp_path / 'sandbox'
    os.chmod(tmp_path, 0o755)
    box = Sandbox(str(root))
    box.cluster = box.up()
    try:
        yield box
    finally:
        box.down()


class Reliability:
    """What a case states about itself; the outcome is added from the test's result."""

    def __init__(self):
        self.case = self.fault = self.expected = None
        self.observed = 'the case did not get as far as observing'
        self.data_lost_bytes = None

    def describe(self, case, fault, expected):
        self.case, self.fault, self.expected = case, fault, expected


@pytest.fixture
def reliability(request):
    """Call ``reliability.describe(...)`` first; set ``observed`` and ``data_lost_bytes`` as the case learns them."""
    item = Reliability()
    yield item
    if item.case:
        report = getattr(request.node, 'rep_call', None)
        outcome = report.outcome if report is not None else 'error'
        faults.record(item.case, item.fault, item.expected, item.observed, item.data_lost_bytes, outcome)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == 'call':
        item.rep_call = report
    return report


def pytest_sessionfinish(session, exitstatus):
    """Rewrite docs/RELIABILITY.md when this session ran the whole fault suite (not a single case)."""
    here = os.path.dirname(__file__)
    ran = {os.path.abspath(str(item.fspath)) for item in session.items}
    suite = {os.path.join(here, name) for name in os.listdir(here) if name.startswith('test_') and name.endswith('.py')}
    if suite and suite <= ran and not session.config.option.collectonly:
        faults.write_reliability_doc()

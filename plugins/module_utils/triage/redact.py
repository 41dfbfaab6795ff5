# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets out of everything a triage bundle holds.

Three nets, applied to every text before it is stored: the secrets the run
itself knows (connection passwords, ``secrets`` given by the operator), the
shapes of credentials (``key=value`` whose key names a password, token, secret
or key; the password of a connection string ``scheme://user:password@host``;
SQL ``PASSWORD '...'``; ``Bearer`` headers; well-known token formats; PEM
private keys), and, for environment variables, every value whatever its name
(containers' ``Env``).
"""

from __future__ import annotations

import re

MASK = '[REDACTED]'
_SECRET_WORDS = r'(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|auth)'
_SECRET_KEY = re.compile(_SECRET_WORDS, re.I)
_PATTERNS = (
    # PEM private keys, whole
    (re.compile(r'-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----', re.S), MASK),
    # scheme://user:password@host
    (re.compile(r'(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\s@]*:)[^@\s/]+(@)'), r'\1' + MASK + r'\2'),
    # Authorization: Bearer xxx / Basic xxx
    (re.compile(r'(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}'), r'\1\2' + MASK),
    # SQL: PASSWORD 'xxx'
    (re.compile(r"(?i)(\bpassword\s+)'(?:[^']|'')*'"), r'\1' + "'" + MASK + "'"),
    # key=value, key: value, "key": "value", --key=value, --key value
    (re.compile(r'(?i)([\w.-]*' + _SECRET_WORDS + r'[\w.-]*["\']?\s*(?:=|:)\s*["\']?)([^\s"\'&;,]+)'), r'\1' + MASK),
    (re.compile(r'(?i)(--[\w.-]*' + _SECRET_WORDS + r'[\w.-]*\s+)([^\s-][^\s]*)'), r'\1' + MASK),
    # token formats: GitHub, GitLab, AWS access key ids, Slack, Stripe, JWTs
    (re.compile(r'\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{20,}|AKIA[0-9A-Z]{16}|'
                r'xox[abpr]-[\w-]{10,}|sk_(?:live|test)_\w{10,}|eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,})'), MASK),
)


class Redactor:
    """Masks the known secrets and every credential-shaped string; counts what it masked."""

    def __init__(self, secrets=()):
        self.secrets = sorted(set(s for s in secrets if s and len(s) >= 3), key=len, reverse=True)
        self.masked = 0

    def text(self, value):
        if value is None:
            return value
        if not isinstance(value, str):
            value = str(value)
        for secret in self.secrets:
            if secret in value:
                self.masked += value.count(secret)
                value = value.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            value, count = pattern.subn(replacement, value)
            self.masked += count
        return value

    def env(self, entries):
        """``['NAME=value', ...]`` -> ``['NAME=[REDACTED]', ...]``: environment values are never kept."""
        masked = []
        for entry in entries or []:
            name = str(entry).split('=', 1)[0]
            masked.append('%s=%s' % (name, MASK))
            self.masked += 1
        return masked

    def data(self, value):
        """Redact every string inside a JSON-like structure (dict keys stay)."""
        if isinstance(value, dict):
            return dict((key, self._keyed(key, item)) for key, item in value.items())
        if isinstance(value, (list, tuple)):
            return [self.data(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def _keyed(self, key, item):
        if isinstance(item, str) and item and _SECRET_KEY.search(str(key)):
            self.masked += 1
            return MASK
        return self.data(item)

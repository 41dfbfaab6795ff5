# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hard-coded secrets in file contents: detect-secrets' plugins and filters, the collection's own rules, decoys.

The engine is detect-secrets (pinned in requirements.txt): its plugins, its
filters and its file transformers (YAML, INI) run on the text this module has
read itself, within the size and time bounds. The collection adds what
detect-secrets lacks for an application server (database URLs with a
password, ``.pgpass`` lines, PEM private keys written inline with escaped
``\\n``, a few vendor token forms it has no plugin for) and drops decoys it reports (documentation example keys,
placeholders, password hashes, integrity and checksum digests, inline images,
CSRF tokens).

A secret value never leaves this file: a hit is (line, kind, fingerprint),
the fingerprint being the first 16 hex digits of the value's SHA-256. No
excerpt of the line is ever made.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import logging
import os
import re
import time

try:
    from detect_secrets.core import scan as ds_scan
    from detect_secrets.plugins.keyword import DENYLIST as KEYWORD_DENYLIST
    from detect_secrets.settings import default_settings, get_plugins
    from detect_secrets.transformers import get_transformed_file
    from detect_secrets.util.code_snippet import get_code_snippet
    HAS_DETECT_SECRETS = True
    logging.getLogger('detect-secrets').disabled = True  # its debug lines name the values it skips
except ImportError:  # the module reports a "scanner unavailable" finding
    HAS_DETECT_SECRETS = False

from ansible_collections.engineroom.maintenance.plugins.module_utils.security.findings import AuditConfigError

DETECT_SECRETS_REQUIREMENT = 'detect-secrets==1.5.0'
PROBE_BYTES = 8192
READ_BYTES = 1024 * 1024
LINE_PIECE = 8192        # long lines are scanned in overlapping pieces, so no regex runs on a megabyte line
LINE_OVERLAP = 512

# The collection's own rules, for what detect-secrets does not know. ``secret`` is the value fingerprinted.
OWN_RULES = (
    ('private_key_inline', re.compile(
        r'-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:\\r)?\\n(?P<secret>[A-Za-z0-9+/=\\]{16,})')),
    ('private_key', re.compile(r'-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----')),
    ('database_url', re.compile(
        r'(?i)\b(?:jdbc:)?(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|oracle|'
        r'cockroachdb|clickhouse)(?:\+[a-z0-9]+)?://[^\s:/@\'"]*:(?P<secret>[^\s@\'"/]+)@[^\s\'"]+')),
    ('vendor_token', re.compile(
        r'\b(?P<secret>github_pat_[A-Za-z0-9_]{82}|hvs\.[A-Za-z0-9_-]{24,}|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}|'
        r'dop_v1_[a-f0-9]{64}|AIza[0-9A-Za-z_-]{35}|NRAK-[A-Z0-9]{27}|dapi[a-f0-9]{32}|lin_api_[A-Za-z0-9]{40}|'
        r'sk-(?:proj|ant-api03)-[A-Za-z0-9_-]{40,})(?![A-Za-z0-9_-])')),
    ('pgpass_line', re.compile(r'(?m)^[ \t]*[^\s:#]+:(?:\d{1,5}|\*):[^\s:]+:[^\s:]+:(?P<secret>[^\s]+)[ \t]*$')),
)
KIND_OF_TYPE = {'Private Key': 'private_key', 'Basic Auth Credentials': 'url_credentials', 'Secret Keyword': 'keyword',
                'Base64 High Entropy String': 'high_entropy_base64', 'Hex High Entropy String': 'high_entropy_hex'}
RANKS = {'private_key_inline': 0, 'database_url': 0, 'pgpass_line': 0, 'vendor_token': 0, 'private_key': 1}

PLACEHOLDER_WORDS = ('example', 'changeme', 'change_me', 'change-me', 'placeholder', 'redacted', 'dummy', 'sample',
                     'your_', 'your-', 'yourpassword', 'xxxx', 'todo', 'fixme', 'secret_here', 'password_here')
PLAIN_WORDS = frozenset(('password', 'passwd', 'pass', 'pwd', 'secret', 'token', 'none', 'null', 'true', 'false', 'undefined',
                         'empty', 'required', 'optional', 'string', 'str', 'text', 'value', 'hidden', 'mask', 'masked'))
PASSWORD_HASH = re.compile(r'^\$(?:2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}|argon2(?:id|i|d)?\$\S+|[156]\$\S+|pbkdf2[-_]\S+)$')
PLACEHOLDER = re.compile(r'<[^>]*>|\$\{|\{\{|%\(|\$\(|^\$[A-Za-z_]|^\*+$|^(.)\1{3,}$')
DIGEST_CONTEXT = re.compile(r'(?i)\b(?:sha\d*|md5|hash|checksum|digest|commit|etag|integrity|nonce|revision)')
SRI = re.compile(r'\bsha(?:1|256|384|512)-')
TOKEN_TAIL = re.compile(r'[A-Za-z0-9_\-./+=~]*')
INLINE_DATA = re.compile(r'(?i)data:[a-z]+/[a-z0-9.+-]+;base64,|csrf|xsrf')


def fingerprint(value):
    """First 16 hex digits of the value's SHA-256: enough to recognise a finding, nothing to recover it from."""
    return hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()[:16]


def compile_patterns(custom):
    """The operator's extra patterns as (name, regex, group) triples; ``secret`` names the fingerprinted part."""
    seen = set()
    compiled = []
    for entry in custom:
        name = entry['name']
        if name in seen or name in RANKS or name in KIND_OF_TYPE.values():
            raise AuditConfigError('scan pattern name %r is used twice or is a built-in kind: give each pattern its own name'
                                   % name)
        seen.add(name)
        try:
            regex = re.compile(entry['regex'])
        except re.error as exc:
            raise AuditConfigError('scan pattern %r: regex %r does not compile (%s): fix scan_patterns'
                                   % (name, entry['regex'], exc)) from None
        compiled.append((name, regex, 'secret' if 'secret' in regex.groupindex else 0))
    return compiled


def is_decoy(secret, line):
    """A value reported by a generic rule that is not a secret: example, placeholder, hash, digest, image, CSRF."""
    value = secret.strip().strip('\'"')
    lowered = value.lower()
    if len(value) < 4 or lowered in PLAIN_WORDS or any(word in lowered for word in PLACEHOLDER_WORDS):
        return True
    if PLACEHOLDER.search(value) or PASSWORD_HASH.match(value):
        return True
    if INLINE_DATA.search(line) or SRI.search(line):
        return True
    return bool(re.match(r'^[0-9a-fA-F]{32,}$', value) and DIGEST_CONTEXT.search(line))


def whole_token(value, line):
    """The whole token a plugin matched: some report only their regex's first group (``ghp`` of a GitHub token)."""
    start = line.find(value)
    if not value or start == -1:
        return value
    match = TOKEN_TAIL.match(line, start + len(value))
    return value + match.group(0)


def own_hits(text, custom):
    """(line number, kind, secret) of the collection's rules and the operator's patterns over the whole text."""
    hits = []
    for name, regex, group in list((n, r, 'secret') for n, r in OWN_RULES) + list(custom):
        for match in regex.finditer(text):
            number = text.count('\n', 0, match.start()) + 1
            if name == 'private_key':
                secret = private_key_block(text, match.start())
            else:
                secret = match.group(group) if match.group(group) is not None else match.group(0)
            if name in RANKS and name != 'private_key' and is_decoy(secret, match.group(0)):
                continue
            hits.append((number, name, secret))
    return hits


def private_key_block(text, start):
    """The PEM block from its header (to the END line or 4 KiB): what a private key's fingerprint is taken of."""
    end = text.find('-----END', start + 10)
    return text[start:end if 0 < end < start + 16384 else start + 4096]


class _NamedText(io.StringIO):
    """The text detect-secrets' transformers read, under the file's name (they choose by extension)."""

    def __init__(self, text, name):
        super().__init__(text)
        self.name = name


def trigger_patterns():
    """Regexes of which one must match for any detect-secrets plugin to report a line, or None if one is unknown.

    detect-secrets runs every plugin's regexes and filters on every line
    (~0.3 MB/s). Its regex plugins report only lines their own patterns match;
    the keyword plugin needs one of its words; the entropy plugins need a run
    of their characters long enough to pass the limit (Base64 above 4.5 bits:
    23+ characters; hex above 3: 9+). Those patterns run over the whole text
    in C, and only the lines they touch go through the plugins.
    """
    patterns = [re.compile('|'.join(KEYWORD_DENYLIST), re.IGNORECASE)]
    for plugin in get_plugins():
        name = type(plugin).__name__
        if hasattr(plugin, 'denylist'):
            patterns.extend(plugin.denylist)
        elif name == 'Base64HighEntropyString':
            patterns.append(re.compile(r'[A-Za-z0-9+/=_-]{20,}'))
        elif name == 'HexHighEntropyString':
            patterns.append(re.compile(r'[0-9a-fA-F]{8,}'))
        elif name != 'KeywordDetector':
            return None
    return [lowered_pattern(regex) for regex in patterns]


def lowered_pattern(regex):
    """(lowered, regex): a case-insensitive regex as a case-sensitive one for lower-cased text (Python's ``re`` is
    several times slower on case-insensitive alternations); escapes such as ``\\W`` are kept as they are."""
    if not regex.flags & re.IGNORECASE:
        return False, regex
    source = re.sub(r'(\\.)|([A-Z])', lambda m: m.group(1) or m.group(2).lower(), regex.pattern)
    # The IBM, Cloudant and SoftLayer patterns start with look-behinds tried at every position; without them the
    # pattern matches a superset of lines, found several times faster.
    for prefix in ("(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)",):
        if source.startswith(prefix):
            source = source[len(prefix):]
    return True, re.compile(source, regex.flags & ~re.IGNORECASE)


def candidate_lines(lines, patterns):
    """Numbers (1-based) of the lines any trigger pattern touches (a match across a newline marks both lines)."""
    if patterns is None:
        return range(1, len(lines) + 1)
    text = ''.join(line if line.endswith('\n') else line + '\n' for line in lines)
    starts = []
    offset = 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + (0 if line.endswith('\n') else 1)
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters lower-case to two: offsets would shift
        lowered, patterns = text, [(False, re.compile(regex.pattern, regex.flags | re.IGNORECASE) if low else regex)
                                   for low, regex in patterns]
    marked = set()
    for low, regex in patterns:
        for match in regex.finditer(lowered if low else text):
            first = bisect.bisect_right(starts, match.start())
            last = bisect.bisect_right(starts, max(match.start(), match.end() - 1))
            marked.update(range(first, last + 1))
    return sorted(marked)


def pieces(line):
    """A line, or a long one cut in overlapping pieces, so no regex runs on a megabyte line."""
    if len(line) <= LINE_PIECE:
        return [line]
    return [line[start:start + LINE_PIECE] for start in range(0, len(line), LINE_PIECE - LINE_OVERLAP)]


def scan_candidates(path, lines, numbers, deadline):
    """What ``detect_secrets.core.scan`` does for each line, for the candidate ``numbers`` only; None past the deadline."""
    found = []
    for count, number in enumerate(numbers):
        if count % 200 == 0 and time.monotonic() > deadline:
            return found, False
        snippet = get_code_snippet(lines=lines, line_number=number)
        for line in pieces(lines[number - 1].rstrip()):
            if ds_scan._is_filtered_out(required_filter_parameters=['line'], filename=path,  # pylint: disable=protected-access
                                        line=line, context=snippet):
                continue
            for plugin in get_plugins():
                for secret in ds_scan._scan_line(plugin=plugin, filename=path, line=line,  # pylint: disable=protected-access
                                                 line_number=number, context=snippet):
                    if not ds_scan._is_filtered_out(  # pylint: disable=protected-access
                            required_filter_parameters=['context'], filename=secret.filename, secret=secret.secret_value,
                            plugin=plugin, line=line, context=snippet):
                        found.append(secret)
    return found, True


def detect_secrets_hits(path, text, deadline, triggers):
    """(hits, complete) of detect-secrets' plugins and filters, as its own ``scan_file`` would (transformed lines first)."""
    if ds_scan._is_filtered_out(required_filter_parameters=['filename'], filename=path):  # pylint: disable=protected-access
        return [], True
    sources = [lambda: get_transformed_file(_NamedText(text, path)) or text.splitlines(True),
               lambda: get_transformed_file(_NamedText(text, path), use_eager_transformers=True)]
    hits = []
    for source in sources:
        lines = source()
        if not lines:
            break
        found, complete = scan_candidates(path, lines, candidate_lines(lines, triggers), deadline)
        for secret in found:
            kind = KIND_OF_TYPE.get(secret.type) or re.sub(r'[^a-z0-9]+', '_', secret.type.lower()).strip('_')
            hits.append((secret.line_number, kind, secret.secret_value or ''))
        if hits or not complete:
            return hits, complete
    return hits, True


class SecretScanner:
    """Scan text for secrets: detect-secrets when it is installed, the collection's rules always.

    :meth:`scan` returns (hits, complete): hits as dicts with ``line``, ``kind``, ``fingerprint`` and
    ``sha1`` (detect-secrets' ``hashed_secret``, for its baselines), one per line and value.
    """

    def __init__(self, custom_patterns):
        self.custom = compile_patterns(custom_patterns)
        self.available = HAS_DETECT_SECRETS
        self._settings = None
        self.triggers = None

    def __enter__(self):
        if self.available:
            self._settings = default_settings()
            self._settings.__enter__()
            self.triggers = trigger_patterns()
        return self

    def __exit__(self, *exc_info):
        if self._settings is not None:
            self._settings.__exit__(*exc_info)
            self._settings = None

    def scan(self, path, text, deadline):
        raw, complete = own_hits(text, self.custom), True
        if self.available:
            found, complete = detect_secrets_hits(path, text, deadline, self.triggers)
            lines = text.split('\n')
            for number, kind, secret in found:
                line = lines[number - 1] if 0 < number <= len(lines) else ''
                if kind != 'private_key':
                    secret = whole_token(secret, line)
                    if is_decoy(secret, line):
                        continue
                raw.append((number, kind, secret))
        return merge_hits(raw), complete


def merge_hits(raw):
    """One hit per (line, value): the most specific kind names it; private keys once per line."""
    best = {}
    for number, kind, secret in raw:
        key = (number, 'private_key') if kind == 'private_key' else (number, secret)
        rank = RANKS.get(kind, 2)
        if key not in best or rank < best[key][0]:
            best[key] = (rank, kind, secret)
    for number in set(key[0] for key, value in best.items() if value[1] == 'private_key_inline'):
        best.pop((number, 'private_key'), None)
    return [dict(line=number, kind=kind, fingerprint=fingerprint(secret),
                 sha1=hashlib.sha1(secret.encode('utf-8', 'replace')).hexdigest())  # nosec: detect-secrets' baseline hash
            for (number, dummy), (rank, kind, secret) in sorted(best.items(), key=lambda item: (item[0][0], item[1][0]))]


def looks_binary(block):
    """Decided from the first block: a NUL byte, or more than 10 % of it not text (invalid UTF-8, control bytes)."""
    if b'\0' in block:
        return True
    if not block:
        return False
    text = block.decode('utf-8', 'replace')
    odd = sum(1 for char in text if char == '\ufffd' or (char < ' ' and char not in '\t\n\r\f\b\x1b'))
    return odd * 10 > len(text)


def read_for_scan(fd, max_bytes):
    """Return (text, bytes read, reason skipped) from an open descriptor: reason ``binary`` or ``large``, text None then.

    The first block decides text or binary before anything else is read.
    """
    first = os.read(fd, PROBE_BYTES)
    if looks_binary(first[:PROBE_BYTES - 4] if len(first) == PROBE_BYTES else first):
        return None, len(first), 'binary'
    chunks = [first]
    size = len(first)
    while size <= max_bytes:
        chunk = os.read(fd, min(READ_BYTES, max_bytes + 1 - size))
        if not chunk:
            break
        if b'\0' in chunk:
            return None, size + len(chunk), 'binary'
        chunks.append(chunk)
        size += len(chunk)
    if size > max_bytes:
        return None, size, 'large'
    return b''.join(chunks).decode('utf-8', 'replace'), size, None

"""An application tree seeded with real secrets and look-alike decoys, generated here, with the truth of every line.

The shapes follow public secret-scanner test samples (gitleaks' rule samples,
detect-secrets' test data: token prefixes, lengths, the files they sit in);
every value is generated from a seeded random source, and the private keys are
real ones made by openssl and ssh-keygen on each run. Nothing is copied from
those projects. ``build(root)`` writes the tree and returns the truth: for each
relative path, {line: ('secret' | 'decoy', label, value or None)}.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess

SECRET, DECOY = 'secret', 'decoy'
ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
LOWER = 'abcdefghijklmnopqrstuvwxyz0123456789'
HEX = '0123456789abcdef'
B64 = ALNUM + '+/'
URLSAFE = ALNUM + '-_'


class Corpus:
    def __init__(self, root, seed=20261205):
        self.root = root
        self.rng = random.Random(seed)
        self.truth = {}

    def word(self, alphabet, length):
        return ''.join(self.rng.choice(alphabet) for dummy in range(length))

    def password(self, length=16):
        return self.word(ALNUM, length - 2) + self.rng.choice('!#%') + self.rng.choice('0123456789')

    def write(self, relpath, lines):
        """``lines``: (text, kind or None, label, secret value or None)."""
        path = os.path.join(self.root, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            handle.write(''.join(text + '\n' for text, dummy, dummy, dummy in lines))
        marks = dict((number, (kind, label, value)) for number, (dummy, kind, label, value) in enumerate(lines, 1) if kind)
        self.truth[relpath] = marks

    def one(self, relpath, text, kind, label, value=None, before=(), after=()):
        self.write(relpath, [(t, None, None, None) for t in before] + [(text, kind, label, value)]
                   + [(t, None, None, None) for t in after])


def jwt(corpus):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip('=')
    header = part({'alg': 'HS256', 'typ': 'JWT'})
    payload = part({'sub': corpus.word(LOWER, 10), 'iat': 1764900000, 'role': 'service'})
    return '%s.%s.%s' % (header, payload, corpus.word(URLSAFE, 43))


def real_keys(base):
    """Private keys made by openssl and ssh-keygen: {label: PEM text}."""
    keys = {}
    os.makedirs(base, exist_ok=True)
    commands = {
        'rsa_pkcs8': ['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
        'rsa_traditional': None,
        'ec_p256': ['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
        'ed25519_pkcs8': ['openssl', 'genpkey', '-algorithm', 'ED25519'],
        'ec_encrypted': ['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384',
                         '-aes256', '-pass', 'pass:corpus-passphrase'],
    }
    for label, argv in commands.items():
        if argv:
            keys[label] = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    keys['rsa_traditional'] = subprocess.run(['openssl', 'pkey', '-traditional'], input=keys['rsa_pkcs8'], check=True,
                                             capture_output=True, text=True).stdout
    for label, kind in (('openssh_ed25519', 'ed25519'), ('openssh_ecdsa', 'ecdsa')):
        path = os.path.join(base, label)
        subprocess.run(['ssh-keygen', '-q', '-t', kind, '-N', '', '-C', 'corpus', '-f', path], check=True)
        with open(path) as handle:
            keys[label] = handle.read()
        with open(path + '.pub') as handle:
            keys[label + '_pub'] = handle.read().strip()
    return keys


def key_material(pem):
    """The lines of a PEM body (what must never be shown)."""
    return [line for line in pem.splitlines() if line and not line.startswith('-----') and ':' not in line]


def secrets_(c, keys):
    """The real secrets: one per file (or one per marked line), in the files they are usually found in."""
    aws_id = 'AKIA' + c.word(UPPER, 16)
    aws_secret = c.word(B64, 40)
    c.write('config/aws.py', [('import boto3', None, None, None),
                              ('AWS_ACCESS_KEY_ID = "%s"' % aws_id, SECRET, 'aws_access_key_id', aws_id),
                              ('AWS_SECRET_ACCESS_KEY = "%s"' % aws_secret, SECRET, 'aws_secret_key', aws_secret)])
    for prefix in ('ghp', 'gho', 'ghu', 'ghs', 'ghr'):
        token = '%s_%s' % (prefix, c.word(ALNUM, 36))
        c.one('ci/github_%s.sh' % prefix, 'export GITHUB_TOKEN=%s' % token, SECRET, 'github_' + prefix, token,
              before=['#!/bin/sh'], after=['gh release list'])
    token = 'github_pat_%s_%s' % (c.word(ALNUM, 22), c.word(ALNUM, 59))
    c.one('ci/github_fine.yml', '  token: %s' % token, SECRET, 'github_pat', token, before=['github:'])
    token = 'glpat-' + c.word(URLSAFE, 20)
    c.one('ci/gitlab.env.sh', 'GITLAB_TOKEN=%s' % token, SECRET, 'gitlab_pat', token)
    digits = '0123456789'
    for label, token in (('slack_bot', 'xoxb-%s-%s-%s' % (c.word(digits, 12), c.word(digits, 13), c.word(ALNUM, 24))),
                         ('slack_user', 'xoxp-%s-%s-%s-%s' % (c.word('0123456789', 12), c.word('0123456789', 12),
                                                              c.word('0123456789', 13), c.word(HEX, 32))),
                         ('slack_webhook', 'https://hooks.slack.com/services/T%s/B%s/%s' % (
                             c.word(UPPER, 8), c.word(UPPER, 10), c.word(ALNUM, 24)))):
        c.one('app/notify/%s.py' % label, 'SLACK = "%s"' % token, SECRET, label, token, before=['import requests'])
    for label, token in (('stripe_live', 'sk_live_' + c.word(ALNUM, 24)), ('stripe_restricted', 'rk_live_' + c.word(ALNUM, 24))):
        c.one('app/billing/%s.rb' % label, 'Stripe.api_key = "%s"' % token, SECRET, label, token)
    for label, token in (('twilio_sid', 'AC' + c.word(HEX, 32)), ('twilio_key', 'SK' + c.word(HEX, 32))):
        c.one('app/sms/%s.js' % label, "const twilioCredential = '%s';" % token, SECRET, label, token)
    token = 'SG.%s.%s' % (c.word(URLSAFE, 22), c.word(URLSAFE, 43))
    c.one('app/mail/sendgrid.py', 'SENDGRID_API_KEY = "%s"' % token, SECRET, 'sendgrid', token)
    token = 'npm_' + c.word(ALNUM, 36)
    c.one('web/.npmrc', '//registry.npmjs.org/:_authToken=%s' % token, SECRET, 'npm_token', token,
          before=['registry=https://registry.npmjs.org/'])
    key = c.word(B64, 86) + '=='
    c.one('app/storage/azure.cs', 'var conn = "DefaultEndpointsProtocol=https;AccountName=shopfiles;AccountKey=%s;'
          'EndpointSuffix=core.windows.net";' % key, SECRET, 'azure_storage', key)
    token = jwt(c)
    c.one('app/api/client.ts', 'const serviceToken = "%s";' % token, SECRET, 'jwt', token)
    token = c.word(HEX, 32) + '-us12'
    c.one('app/mail/mailchimp.php', "$mailchimp_key = '%s';" % token, SECRET, 'mailchimp', token)
    token = '%s.%s.%s' % ('M' + c.word(URLSAFE, 23), c.word(URLSAFE, 6), c.word(URLSAFE, 27))
    c.one('bots/discord.py', 'client.run("%s")' % token, SECRET, 'discord', token)
    token = '%s:AA%s' % (c.word('0123456789', 10), c.word(URLSAFE, 33))
    c.one('bots/telegram.py', 'BOT = "%s"' % token, SECRET, 'telegram', token)
    token = 'pypi-AgEIcHlwaS5vcmc' + c.word(URLSAFE, 80)
    c.one('release/.pypirc.ini', 'password = %s' % token, SECRET, 'pypi', token, before=['[pypi]', 'username = __token__'])
    token = 'sk-%sT3BlbkFJ%s' % (c.word(ALNUM, 20), c.word(ALNUM, 20))
    c.one('app/ai/openai.py', 'openai.api_key = "%s"' % token, SECRET, 'openai', token)
    token = 'sq0csp-' + c.word(URLSAFE, 43)
    c.one('app/billing/square.py', 'SQUARE_SECRET = "%s"' % token, SECRET, 'square', token)
    for label, token in (('vault', 'hvs.' + c.word(URLSAFE, 90)), ('shopify', 'shpat_' + c.word(HEX, 32)),
                         ('digitalocean', 'dop_v1_' + c.word(HEX, 64)), ('gcp_api_key', 'AIza' + c.word(URLSAFE, 35)),
                         ('newrelic', 'NRAK-' + c.word(UPPER, 27)), ('databricks', 'dapi' + c.word(HEX, 32))):
        c.one('deploy/tokens/%s.tf' % label, 'token = "%s"' % token, SECRET, label, token)
    # Private keys: files, and inline with escaped newlines (service-account JSON, YAML setting).
    for label in ('rsa_pkcs8', 'rsa_traditional', 'ec_p256', 'ed25519_pkcs8', 'ec_encrypted', 'openssh_ed25519',
                  'openssh_ecdsa'):
        pem = keys[label]
        marked = [(line, SECRET if number == 0 else None, label, pem if number == 0 else None)
                  for number, line in enumerate(pem.strip().splitlines())]
        c.write('keys/%s.txt' % label, marked)
    inline = keys['ec_p256'].replace('\n', '\\n')
    c.one('gcp/service-account.json', json.dumps({'type': 'service_account', 'project_id': 'shop-prod',
                                                 'private_key_id': c.word(HEX, 40), 'private_key': inline})
          .replace('\\\\n', '\\n'), SECRET, 'pem_inline_json', keys['ec_p256'])
    inline = keys['rsa_pkcs8'].replace('\n', '\\n')
    c.one('config/signing.yml', 'signing_key: "%s"' % inline, SECRET, 'pem_inline_yaml', keys['rsa_pkcs8'],
          before=['jwt:', '  issuer: shop'])
    # Database URLs and .pgpass lines.
    for scheme, relpath, template in (
            ('postgresql', 'config/database.json', '{"default": {"url": "postgresql://app:%s@db.internal:5432/shop"}}'),
            ('postgres', 'config/settings.py', 'DATABASE_URL = "postgres://shop:%s@10.0.0.5/shop?sslmode=require"'),
            ('mysql', 'legacy/config.php', "$dsn = 'mysql://report:%s@mysql.internal:3306/reports';"),
            ('mongodb+srv', 'services/catalog.js', 'const uri = "mongodb+srv://catalog:%s@cluster0.ab1cd.mongodb.net/c";'),
            ('redis', 'config/cache.yml', 'cache_url: redis://:%s@redis.internal:6379/0'),
            ('amqp', 'config/queue.ini', 'broker = amqp://worker:%s@rabbit.internal:5672/')):
        value = c.password()
        c.one(relpath, template % value, SECRET, 'db_url_' + scheme, value)
    value = c.password()
    c.one('ops/pgpass.conf', 'db.internal:5432:shop:backup:%s' % value, SECRET, 'pgpass', value)
    value = c.password()
    c.one('ops/restore.sh', 'db.internal:5432:*:restore:%s' % value, SECRET, 'pgpass_heredoc', value,
          before=['#!/bin/sh', "cat > ~/.pgpass <<'EOF'"], after=['EOF', 'chmod 0600 ~/.pgpass'])
    # Passwords and API keys assigned in config files, quoted and not.
    for relpath, template, label in (
            ('config/app.ini', 'password = %s', 'ini_password'),
            ('config/app.properties', 'db.password=%s', 'properties_password'),
            ('config/app.yml', '  password: %s', 'yaml_password'),
            ('docker-compose.yml', '      POSTGRES_PASSWORD: %s', 'compose_password'),
            ('scripts/backup.sh', 'export PGPASSWORD="%s"', 'shell_password'),
            ('app/settings_local.py', 'SECRET_KEY = "%s"', 'django_secret'),
            ('web/config.js', "module.exports = { apiKey: '%s' };", 'js_api_key'),
            ('config/secrets.json', '{"client_secret": "%s"}', 'json_client_secret'),
            ('config/mail.toml', 'smtp_password = "%s"', 'toml_password'),
            ('app/Config.java', 'private static final String DB_PASSWORD = "%s";', 'java_password'),
            ('app/main.go', 'const apiSecret = "%s"', 'go_secret')):
        value = c.password(20)
        before = {'config/app.yml': ['database:', '  user: shop'],
                  'docker-compose.yml': ['services:', '  db:', '    environment:']}.get(relpath, [])
        c.one(relpath, template % value, SECRET, label, value, before=before)
    value = c.word(ALNUM, 12) + '\\"' + c.word(ALNUM, 12)
    c.one('app/escaped.py', 'password = "%s"' % value, SECRET, 'escaped_quote', value.split('\\"')[1])
    user_pass = c.password()
    c.one('scripts/fetch.sh', 'curl -s https://deploy:%s@artifacts.internal/repo/app.tar.gz' % user_pass, SECRET,
          'basic_auth_url', user_pass)
    token = c.word(B64, 44)
    c.one('app/integrations.py', 'WEBHOOK_SIGNING = "%s"' % token, SECRET, 'generic_base64', token)
    token = c.word(HEX, 64)
    c.one('app/crypto.py', 'HMAC_KEY = "%s"' % token, SECRET, 'generic_hex', token)
    # Hard ones: a password passed positionally and one in a JDBC query string (no keyword, no user:pass@).
    value = c.password()
    c.one('app/db_connect.py', 'conn = psycopg2.connect("db.internal", "shop", "%s")' % value, SECRET, 'positional', value)
    value = c.password()
    c.one('config/jdbc.properties', 'url=jdbc:postgresql://db.internal:5432/shop?user=shop&password=%s' % value, SECRET,
          'jdbc_query', value)
    aws2, gh2 = c.word(B64, 40), 'ghp_' + c.word(ALNUM, 36)
    c.one('deploy/two.env.sh', 'AWS_SECRET_ACCESS_KEY="%s" GITHUB_TOKEN=%s' % (aws2, gh2), SECRET, 'two_on_a_line',
          aws2 + ' ' + gh2)


def decoys(c, keys):
    """Look-alikes that are not secrets: examples, placeholders, hashes, digests, images, CSRF, public keys."""
    lines = [
        ('docs/aws.md', 'aws_access_key_id = AKIAIOSFODNN7EXAMPLE'),
        ('docs/aws2.py', 'AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"'),
        ('docs/readme.py', 'api_key = "<your-api-key>"'),
        ('docs/setup.yml', 'password: "********"'),
        ('config/env.py', 'DB_PASSWORD = os.environ["DB_PASSWORD"]'),
        ('config/tpl.yml', 'password: "{{ vault_db_password }}"'),
        ('config/tpl2.py', 'password = "${DB_PASSWORD}"'),
        ('config/tpl3.ini', 'password = %(db_password)s'),
        ('docs/example.ini', 'password = changeme'),
        ('docs/example2.properties', 'db.password=YOUR_PASSWORD_HERE'),
        ('docs/example3.json', '{"token": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}'),
        ('app/forms.py', 'PASSWORD_FIELD = "password"'),
        ('app/labels.py', 'password_label = "Password"'),
        ('app/auth_fixture.py', 'ADMIN_HASH = "$2b$12$%s"' % c.word(ALNUM + './', 53)),
        ('app/argon.py', 'stored = "$argon2id$v=19$m=65536,t=3,p=4$%s$%s"' % (c.word(B64, 22), c.word(B64, 43))),
        ('web/npm-shrinkwrap.json', '      "integrity": "sha512-%s=="' % c.word(B64, 86)),
        ('web/index.html', '<script src="/app.js" integrity="sha384-%s" crossorigin="anonymous"></script>' % c.word(B64, 64)),
        ('web/logo.html', '<img alt="logo" src="data:image/png;base64,%s">' % c.word(B64, 120)),
        ('web/form.html', '<input type="hidden" name="csrfmiddlewaretoken" value="%s">' % c.word(ALNUM, 64)),
        ('web/meta.html', '<meta name="csrf-token" content="%s">' % c.word(B64, 44)),
        ('deploy/release.json', '{"commit": "%s"}' % c.word(HEX, 40)),
        ('deploy/checksums.py', 'SHA256 = "%s"' % c.word(HEX, 64)),
        ('requirements-hashes.txt', 'requests==2.32.3 --hash=sha256:%s' % c.word(HEX, 64)),
        ('app/ids.py', 'REQUEST_ID = "%s-%s-4%s-a%s-%s"' % (
            c.word(HEX, 8), c.word(HEX, 4), c.word(HEX, 3), c.word(HEX, 3), c.word(HEX, 12))),
        ('config/db_placeholder.yml', 'url: postgres://user:${DB_PASS}@db.internal/shop'),
        ('docs/db.md', 'DATABASE_URL=postgres://user:password@localhost:5432/app'),
        ('app/routes.py', 'LOGIN_URL = "https://shop.example.com/account/login?next=/orders"'),
        ('app/names.py', 'HANDLER = "OrderFulfillmentNotificationHandlerFactory"'),
        ('keys/deploy.pub', keys['openssh_ed25519_pub']),
        ('keys/known_hosts', 'github.com ' + keys['openssh_ecdsa_pub'].rsplit(' ', 1)[0]),
        ('vault/group_vars.yml', 'db_password: !vault |'),
        ('app/colors.css', '.brand { color: #1a2b3c; background: #ffffff; }'),
        ('app/version.py', 'VERSION = "4.12.7+build.20261205"'),
        ('docs/token.md', 'Set GITHUB_TOKEN to your personal access token (ghp_...).'),
        ('docs/stripe.md', 'STRIPE_KEY=sk_live_your_key_here'),
        ('config/empty.env.sh', 'export DB_PASSWORD='),
        ('config/none.py', 'password = None'),
        ('config/getenv.js', 'const password = process.env.DB_PASSWORD;'),
        ('app/test_login.py', 'client.login(username="alice", password=password)'),
        ('docs/pgpass.md', 'hostname:port:database:username:password'),
        # Hard ones: realistic fakes in test fixtures look exactly like secrets.
        ('tests/fixtures/fake_github.py', 'FAKE_TOKEN = "ghp_%s"' % c.word(ALNUM, 36)),
        ('tests/fixtures/fake_password.py', 'TEST_PASSWORD = "%s"' % c.password(20)),
        ('app/i18n.py', 'PASSWORD_RESET_SUBJECT = "Reset your password"'),
        ('app/gravatar.py', 'AVATAR = "https://www.gravatar.com/avatar/%s?d=identicon"' % c.word(HEX, 32)),
        ('web/sw.js', "const CACHE = 'shop-static-v%s';" % c.word('0123456789', 3)),
        ('docs/jwt.md', 'Authorization: Bearer <token>'),
        ('config/redis.conf', 'requirepass ""'),
        ('docs/mysql.md', 'mysql://user:pass@host/db'),
        ('app/settings_prod.py', 'SECRET_KEY = os.environ.get("SECRET_KEY", "")'),
        ('web/sri.html', '<link rel="stylesheet" href="/a.css" integrity="sha256-%s=">' % c.word(B64, 43)),
    ]
    for relpath, text in lines:
        c.one(relpath, text, DECOY, relpath, None)
    cert = subprocess.run(['openssl', 'req', '-x509', '-key', '/dev/stdin', '-subj', '/CN=shop.test', '-days', '1'],
                          input=keys['ec_p256'], check=True, capture_output=True, text=True).stdout
    c.write('certs/shop.crt', [(line, DECOY if number == 0 else None, 'certificate', None)
                               for number, line in enumerate(cert.strip().splitlines())])
    vault = ['$ANSIBLE_VAULT;1.1;AES256'] + [c.word(HEX, 80) for dummy in range(5)]
    c.write('vault/secrets.yml', [(line, DECOY if number == 0 else None, 'ansible_vault', None)
                                  for number, line in enumerate(vault)])


def build(root):
    """Write the corpus under ``root``; return (truth, planted values that must never appear in any output)."""
    corpus = Corpus(root)
    keys = real_keys(os.path.join(os.path.dirname(root), 'corpus-keys'))
    secrets_(corpus, keys)
    decoys(corpus, keys)
    planted = []
    for marks in corpus.truth.values():
        for kind, label, value in marks.values():
            if kind != SECRET or not value:
                continue
            if '-----BEGIN' in value:
                planted.extend(key_material(value))
            else:
                planted.extend(value.split(' '))
    return corpus.truth, planted


def score(truth, hits):
    """(recall, precision, details) of ``hits``, a set of (relative path, line)."""
    secret_lines = set((path, line) for path, marks in truth.items() for line, mark in marks.items() if mark[0] == SECRET)
    found = secret_lines & hits
    false = hits - secret_lines
    recall = len(found) / float(len(secret_lines))
    precision = len(found) / float(len(hits)) if hits else 1.0
    return recall, precision, dict(secrets=len(secret_lines), found=len(found), false_positives=sorted(false),
                                   missed=sorted(secret_lines - hits))

"""A seeded application tree for the security audit tests: what the audit must find, and what it must not touch."""

from __future__ import annotations

import hashlib
import os
import stat

from psycopg2 import sql

# Documented AWS example key and a private key header: fake, but shaped like the real thing.
FAKE_AWS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE'
FAKE_DB_PASSWORD = 'not-a-real-password-42'
SETTINGS = ('import os\n'
            '\n'
            'AWS_ACCESS_KEY_ID = "%s"\n'
            'DATABASE_URL = os.environ["DATABASE_URL"]\n'
            'SIGNING_KEY = """\n'
            '-----BEGIN RSA PRIVATE KEY-----\n'
            'MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n'
            '-----END RSA PRIVATE KEY-----\n'
            '"""\n' % FAKE_AWS_KEY_ID)


def seed_app_tree(base):
    """Create ``base/app`` (the audited root) and ``base/outside`` (which the audit must never touch).

    app/.env 0644 (a secret file, world-readable), app/uploads 0777 (world-writable),
    app/config/settings.py (a fake AWS key on line 3, a private key header on line 6),
    app/README.md (clean), and links from app/ to outside/ that must not be followed.
    """
    app = os.path.join(base, 'app')
    outside = os.path.join(base, 'outside')
    for directory in (os.path.join(app, 'config'), os.path.join(app, 'uploads'), os.path.join(outside, 'shared')):
        os.makedirs(directory, exist_ok=True)
    files = {
        os.path.join(app, '.env'): 'DB_PASSWORD=%s\nSECRET_KEY=another-fake-value\n' % FAKE_DB_PASSWORD,
        os.path.join(app, 'config', 'settings.py'): SETTINGS,
        os.path.join(app, 'README.md'): '# MiniEcom\n\nRun `make serve` to start the shop.\n',
        os.path.join(outside, '.env'): 'OUTSIDE=1\n',
    }
    for path, text in files.items():
        with open(path, 'w') as handle:
            handle.write(text)
        os.chmod(path, 0o644)
    os.chmod(app, 0o755)
    os.chmod(os.path.join(app, 'config'), 0o755)
    os.chmod(os.path.join(app, 'uploads'), 0o777)
    os.chmod(os.path.join(outside, 'shared'), 0o777)
    os.symlink(os.path.join(outside, '.env'), os.path.join(app, 'config', 'outside.env'))
    os.symlink(os.path.join(outside, 'shared'), os.path.join(app, 'shared'))
    return app, outside


def tree_state(base):
    """{relative path: (octal mode, sha256 of content or link target)} of everything under ``base``."""
    state = {}
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                content = 'link:' + os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                with open(path, 'rb') as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
            else:
                content = None
            state[os.path.relpath(path, base)] = ('%04o' % stat.S_IMODE(info.st_mode), content)
    return state


def seed_access(pg):
    """A superuser beyond postgres, and the application's users table with one recent, one stale, one never."""
    if not pg.execute("SELECT 1 FROM pg_roles WHERE rolname = 'sa_shop_admin'"):
        pg.execute('CREATE ROLE sa_shop_admin SUPERUSER LOGIN')
    pg.execute('CREATE SCHEMA IF NOT EXISTS sa_shop AUTHORIZATION monitor', dbname='app')
    pg.execute('DROP TABLE IF EXISTS sa_shop.users', dbname='app')
    pg.execute('CREATE TABLE sa_shop.users (email text PRIMARY KEY, last_login_at timestamptz)', dbname='app')
    pg.execute("INSERT INTO sa_shop.users VALUES ('alice@shop.test', now() - interval '10 days'), "
               "('bob@shop.test', now() - interval '200 days'), ('carol@shop.test', NULL)", dbname='app')
    pg.execute(sql.SQL('GRANT SELECT ON sa_shop.users TO {}').format(sql.Identifier('monitor')), dbname='app')

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Peer authentication the Debian way, without running the whole module as ``postgres``.

Debian's packaged cluster admits the ``postgres`` role only through the unix socket with
peer authentication: the server asks the kernel which OS user is on the other end of the
socket (``SO_PEERCRED``, the *effective* uid at ``connect()``) and accepts it only if it is
``postgres``. A module running as root (``become: true``) would be refused, and running the
whole module as ``postgres`` (``become_user: postgres``) would make every file it writes
(snapshots, manifests, the lock, state files) belong to ``postgres`` instead of the owner and
modes the roles document.

So a module given ``login_os_user`` stays root and takes that identity only where PostgreSQL
looks: while its own connections are opened (effective uid/gid switched for the duration of
``connect()``, under a lock, and switched back) and in the client programs it starts
(pg_dump, pg_restore, psql run with that uid/gid; their output still flows through pipes the
root module reads and writes to disk). Nothing else runs as that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import threading

# seteuid is process-wide (glibc applies it to every thread): one switch at a time, and only
# around connect() calls, which do no file I/O of their own.
_IDENTITY_LOCK = threading.Lock()


class OsUserError(Exception):
    """``login_os_user`` cannot be honoured (unknown user, or the module does not run as root)."""


def _entry(os_user):
    try:
        return pwd.getpwnam(os_user)
    except KeyError:
        raise OsUserError('login_os_user %r is not a user on this host: give the OS user the server admits by '
                          'peer authentication (postgres on Debian) or leave login_os_user empty' % os_user)


def needs_switch(os_user):
    """True when ``os_user`` differs from the user this process runs as.

    Raises :class:`OsUserError` when a switch is needed but impossible (not root), naming both
    users and the fix, before anything is changed.
    """
    if not os_user:
        return False
    entry = _entry(os_user)
    if entry.pw_uid == os.geteuid():
        return False
    if os.geteuid() != 0:
        current = pwd.getpwuid(os.geteuid()).pw_name
        raise OsUserError('login_os_user %r needs root to act as that user, but the module runs as %r: run the task '
                          'with become: true (sudo), or as %r itself' % (os_user, current, os_user))
    return True


@contextlib.contextmanager
def acting_as(os_user):
    """Take ``os_user``'s effective uid and gid for the block (a no-op when no switch is needed)."""
    if not needs_switch(os_user):
        yield
        return
    entry = _entry(os_user)
    with _IDENTITY_LOCK:
        os.setegid(entry.pw_gid)
        os.seteuid(entry.pw_uid)
        try:
            yield
        finally:
            os.seteuid(0)
            os.setegid(0)


def client_process_options(os_user, env=None):
    """Keyword arguments for ``subprocess.Popen``/``run`` so a client program runs as ``os_user``.

    ``preexec_fn`` rather than Popen's ``user=``/``group=`` (Python 3.9+): targets run 3.8 too.
    HOME points at the user's home, as libpq looks there for ``.pgpass`` and ``.postgresql/``.
    """
    if not needs_switch(os_user):
        return {} if env is None else dict(env=env)
    entry = _entry(os_user)
    child_env = dict(os.environ if env is None else env)
    child_env['HOME'] = entry.pw_dir
    child_env['USER'] = child_env['LOGNAME'] = entry.pw_name

    def demote():
        os.setgid(entry.pw_gid)
        os.initgroups(entry.pw_name, entry.pw_gid)
        os.setuid(entry.pw_uid)

    return dict(preexec_fn=demote, env=child_env, cwd='/')

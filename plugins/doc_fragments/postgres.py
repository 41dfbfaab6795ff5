# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL connection options shared by every module that talks to a database."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - Empty means the local unix socket (see O(login_unix_socket)).
    type: str
    default: ''
    aliases: [host]
  login_port:
    description:
      - TCP port of the PostgreSQL server.
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description:
      - Role to connect as.
    type: str
    default: postgres
    aliases: [user]
  login_password:
    description:
      - Password of O(login_user). Never logged.
      - Empty means no password (peer, trust or C(~/.pgpass) authentication).
    type: str
    default: ''
    aliases: [password]
  login_db:
    description:
      - Database to connect to. Empty means C(postgres).
    type: str
    default: ''
    aliases: [db]
  login_unix_socket:
    description:
      - Directory of the server's unix socket; wins over O(login_host) when set.
    type: str
    default: ''
    aliases: [unix_socket]
  ssl_mode:
    description:
      - libpq SSL mode of the connection.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of the certificate authority (or authorities) that signed the server's certificate
        (libpq C(sslrootcert)).
      - Needed on the managed host with O(ssl_mode=verify-ca) or O(ssl_mode=verify-full), unless libpq's default
        C(~/.postgresql/root.crt) holds it.
      - With O(ssl_mode=verify-full) O(login_host) must be a name (or address) the server certificate carries.
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description:
      - Client certificate file on the managed host, for servers that authenticate clients by certificate
        (libpq C(sslcert)).
    type: path
  ssl_key:
    description:
      - Private key file of O(ssl_cert) on the managed host (libpq C(sslkey)); libpq refuses a key file readable by
        group or others.
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection before failing.
    type: int
    default: 10
  login_os_user:
    description:
      - OS user the module acts as toward PostgreSQL, for peer authentication over the unix socket (Debian's packaged
        cluster admits the C(postgres) role only from the C(postgres) OS user, with no password).
      - The module keeps running as root (C(become=true)) and takes this user's identity only while it opens its
        connections and in the client programs it runs (pg_dump, pg_restore, psql), so the files it writes keep the
        owner and mode the roles document.
      - Empty means the module's own user. Needs root when it names another user.
    type: str
    default: ''
attributes:
  action_group:
    description: Use C(group/engineroom.maintenance.postgres) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - engineroom.maintenance.postgres
requirements:
  - psycopg2 (C(python3-psycopg2) or C(psycopg2-binary)) on the managed host
notes:
  - The modules taking these options form the action group C(engineroom.maintenance.postgres), so the options can be
    set once for a play with C(module_defaults) and C(group/engineroom.maintenance.postgres), as with
    community.postgresql.
  - Connection failures are reported with the target, the cause and the next step,
    for example a wrong password, a refused port or an unknown database.
'''

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
  connect_timeout:
    description:
      - Seconds to wait for the connection before failing.
    type: int
    default: 10
requirements:
  - psycopg2 (C(python3-psycopg2) or C(psycopg2-binary)) on the managed host
notes:
  - Connection failures are reported with the target, the cause and the next step,
    for example a wrong password, a refused port or an unknown database.
'''

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Redis client speaking RESP2 over TCP, TLS or a unix socket, with AUTH (password or ACL user).

The collection needs a handful of commands (INFO, SCAN, TTL, MEMORY USAGE,
EXPIRE, UNLINK, BGSAVE...) on hosts where redis-py may be absent, so this is
the one place the protocol is spoken: commands go out as RESP arrays of bulk
strings (never inline, so a key with spaces or newlines is one argument), and
replies come back as ``str`` (simple strings), ``int``, ``bytes`` (bulk
strings, keys stay exact), ``None`` or lists. :meth:`RedisClient.pipeline`
sends a batch in one write and reads the replies in order, which is what keeps
a SCAN over a million keys followed by TTL checks at a few seconds.

Every error reply raises :class:`RedisReplyError` with its code (``LOADING``,
``MISCONF``, ``WRONGPASS``, ``NOAUTH``, ``NOPERM``...) so callers can phrase it
for an operator; a connection that cannot be made or breaks raises
:class:`RedisConnectionError`. Every command sent is recorded in
:attr:`RedisClient.commands` with the AUTH secret masked.
"""

from __future__ import annotations

import socket
import ssl

DEFAULT_PORT = 6379
READ_BYTES = 65536
MASK = '********'


class RedisError(Exception):
    """Anything that went wrong talking to Redis, phrased for an operator."""


class RedisConnectionError(RedisError):
    """The server cannot be reached, or the connection broke."""


class RedisReplyError(RedisError):
    """The server answered with an error reply; :attr:`code` is its first word (``LOADING``, ``MISCONF``...)."""

    def __init__(self, message):
        super().__init__(message)
        self.code = message.split(' ', 1)[0] if message else 'ERR'


def encode(args):
    """One command as a RESP array of bulk strings."""
    parts = [b'*%d\r\n' % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        else:
            data = str(arg).encode('utf-8')
        parts.append(b'$%d\r\n%s\r\n' % (len(data), data))
    return b''.join(parts)


def encode_each(command, keys):
    """``command key`` for every key, as one buffer (the per-key part is all that is built in the loop)."""
    head = b'*%d\r\n' % (len(command) + 1) + encode(command)[len(b'*%d\r\n' % len(command)):]
    return b''.join(b'%s$%d\r\n%s\r\n' % (head, len(key), key) for key in keys)


class ReplyReader:
    """Parses RESP2 replies from a socket through one growing buffer (no per-line system call)."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()
        self.pos = 0

    def _fill(self):
        try:
            data = self.sock.recv(READ_BYTES)
        except socket.timeout as exc:
            raise RedisConnectionError('no answer within the timeout') from exc
        except OSError as exc:
            raise RedisConnectionError('the connection broke: %s' % (exc.strerror or exc)) from exc
        if not data:
            raise RedisConnectionError('the server closed the connection')
        if self.pos:
            del self.buffer[:self.pos]
            self.pos = 0
        self.buffer += data

    def _line(self):
        while True:
            end = self.buffer.find(b'\r\n', self.pos)
            if end >= 0:
                line = bytes(self.buffer[self.pos:end])
                self.pos = end + 2
                return line
            self._fill()

    def _exact(self, size):
        while len(self.buffer) - self.pos < size + 2:
            self._fill()
        data = bytes(self.buffer[self.pos:self.pos + size])
        self.pos += size + 2
        return data

    def read_many(self, count):
        """``count`` replies; integers (the usual answer to per-key commands) take a short path."""
        replies = []
        append = replies.append
        buffer = self.buffer
        while len(replies) < count:
            end = buffer.find(b'\r\n', self.pos)
            if end >= 0 and buffer[self.pos] == 58:  # b':'
                append(int(buffer[self.pos + 1:end]))
                self.pos = end + 2
                continue
            if end < 0 and len(buffer) - self.pos < 64:
                self._fill()
                buffer = self.buffer
                continue
            append(self.read())
            buffer = self.buffer
        return replies

    def _element(self):
        """One element of an array: bulk strings (SCAN's keys) parsed in place, anything else through :meth:`read`."""
        buffer, pos = self.buffer, self.pos
        end = buffer.find(b'\r\n', pos)
        if end > pos and buffer[pos] == 36:  # b'$'
            size = int(buffer[pos + 1:end])
            start = end + 2
            if size >= 0 and len(buffer) >= start + size + 2:
                self.pos = start + size + 2
                return bytes(buffer[start:start + size])
        return self.read()

    def read(self):
        """One reply; an error reply is returned as a :class:`RedisReplyError` instance (raised by the caller)."""
        line = self._line()
        kind, payload = line[:1], line[1:]
        if kind == b'+':
            return payload.decode('utf-8', 'replace')
        if kind == b'-':
            return RedisReplyError(payload.decode('utf-8', 'replace'))
        if kind == b':':
            return int(payload)
        if kind == b'$':
            size = int(payload)
            return None if size < 0 else self._exact(size)
        if kind == b'*':
            count = int(payload)
            return None if count < 0 else [self._element() for dummy in range(count)]
        raise RedisConnectionError('the server sent something that is not a Redis reply: %r' % line[:40])


def shown(args):
    """A command as it appears in ``executed_commands``: AUTH's secret masked, long arguments cut."""
    words = [a.decode('utf-8', 'replace') if isinstance(a, bytes) else str(a) for a in args]
    if words and words[0].upper() == 'AUTH':
        words = words[:-1] + [MASK]
    return ' '.join(w if len(w) <= 80 else w[:77] + '...' for w in words)


class RedisClient:
    """One connection to one server; use as a context manager or call :meth:`close`."""

    def __init__(self, host='127.0.0.1', port=DEFAULT_PORT, unix_socket=None, user=None, password=None, tls=False,
                 ca_cert=None, client_cert=None, client_key=None, validate_certs=True, timeout=10.0):
        self.host = host or '127.0.0.1'
        self.port = port or DEFAULT_PORT
        self.unix_socket = unix_socket
        self.user = user
        self.password = password
        self.tls = dict(enabled=tls, ca_cert=ca_cert, client_cert=client_cert, client_key=client_key,
                        validate_certs=validate_certs)
        self.timeout = timeout
        self.where = unix_socket or '%s:%s' % (self.host, self.port)
        self.server_version = None  # set by the caller once INFO has said it
        self.commands = []
        self.sock = None
        self.reader = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc_info):
        self.close()

    def _socket(self):
        try:
            if self.unix_socket:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.unix_socket)
            else:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small commands go out at once
        except socket.gaierror as exc:
            raise RedisConnectionError('cannot resolve Redis host %s: %s (check login_host)' % (self.host, exc)) from exc
        except socket.timeout as exc:
            raise RedisConnectionError('Redis at %s did not answer within %s s' % (self.where, self.timeout)) from exc
        except OSError as exc:
            raise RedisConnectionError('cannot connect to Redis at %s: %s (is redis-server running there, on this port?)'
                                       % (self.where, exc.strerror or exc)) from exc
        if not self.tls['enabled']:
            return sock
        return self._wrap_tls(sock)

    def _wrap_tls(self, sock):
        tls = self.tls
        try:
            context = ssl.create_default_context(cafile=tls['ca_cert'])
            if not tls['validate_certs']:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if tls['client_cert']:
                context.load_cert_chain(tls['client_cert'], tls['client_key'])
            return context.wrap_socket(sock, server_hostname=None if self.unix_socket else self.host)
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise RedisConnectionError('TLS handshake with Redis at %s failed: %s (check tls, ca_cert, client_cert)'
                                       % (self.where, exc)) from exc

    def connect(self):
        """Open the connection and authenticate; errors name the server and the likely fix."""
        self.sock = self._socket()
        self.reader = ReplyReader(self.sock)
        if self.password:
            auth = ['AUTH'] + ([self.user] if self.user else []) + [self.password]
            try:
                self.command(*auth)
            except RedisReplyError as exc:
                self.close()
                who = 'user %r' % self.user if self.user else 'the default user'
                raise RedisReplyError('%s: Redis at %s refused the password of %s: %s (check login_user and '
                                      'login_password)' % (exc.code, self.where, who, exc)) from exc
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _send(self, payload):
        try:
            self.sock.sendall(payload)
        except OSError as exc:
            raise RedisConnectionError('cannot send to Redis at %s: %s' % (self.where, exc.strerror or exc)) from exc

    def command(self, *args, **kwargs):
        """Send one command and return its reply; an error reply raises :class:`RedisReplyError`."""
        if kwargs.get('record', True):
            self.commands.append(shown(args))
        self._send(encode(args))
        reply = self.reader.read()
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    def pipeline(self, commands):
        """Send a batch of commands in one write; return their replies in order (error replies as exceptions)."""
        if not commands:
            return []
        self._send(b''.join(encode(args) for args in commands))
        return [self.reader.read() for dummy in commands]

    def each(self, command, keys):
        """Pipeline ``command key`` for every key in one write; the replies in order (error replies as exceptions)."""
        if not keys:
            return []
        self._send(encode_each(command, keys))
        return self.reader.read_many(len(keys))

    def text(self, *args):
        """A command whose bulk reply is text (INFO, CONFIG GET values)."""
        reply = self.command(*args)
        return reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else reply


def parse_info(text):
    """INFO's ``key:value`` lines as a dict of strings (section headers and blank lines skipped)."""
    values = {}
    for line in (text or '').splitlines():
        if ':' in line and not line.startswith('#'):
            key, value = line.split(':', 1)
            values[key] = value.strip()
    return values

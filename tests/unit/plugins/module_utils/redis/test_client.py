"""The RESP client: encoding, replies split across reads, binary keys, error codes, AUTH masking, a real server."""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.engineroom.maintenance.plugins.module_utils.redis.client import (
    RedisClient,
    RedisConnectionError,
    RedisReplyError,
    ReplyReader,
    encode,
    parse_info,
    shown,
)


def reader_of(data, piece=1):
    """A ReplyReader over a socket pair fed ``data`` ``piece`` bytes at a time (replies split anywhere)."""
    left, right = socket.socketpair()

    def feed():
        for start in range(0, len(data), piece):
            right.sendall(data[start:start + piece])
        right.close()
    threading.Thread(target=feed, daemon=True).start()
    left.settimeout(5)
    return ReplyReader(left)


def test_encode_is_an_array_of_bulk_strings_even_for_spaces_and_bytes():
    assert encode(['SET', 'a b', b'\x00\r\n', 5]) == b'*4\r\n$3\r\nSET\r\n$3\r\na b\r\n$3\r\n\x00\r\n\r\n$1\r\n5\r\n'


@pytest.mark.parametrize('piece', [1, 3, 4096])
def test_replies_of_every_kind_split_at_any_byte(piece):
    data = b'+OK\r\n:42\r\n$5\r\nk\r\nx\x00\r\n$-1\r\n*2\r\n$1\r\n0\r\n*2\r\n$2\r\na:\r\n$0\r\n\r\n-LOADING Redis is loading\r\n*-1\r\n'
    reader = reader_of(data, piece)
    assert reader.read() == 'OK'
    assert reader.read() == 42
    assert reader.read() == b'k\r\nx\x00'  # bulk strings stay bytes, CRLF inside kept
    assert reader.read() is None
    assert reader.read() == [b'0', [b'a:', b'']]
    error = reader.read()
    assert isinstance(error, RedisReplyError) and error.code == 'LOADING'
    assert reader.read() is None


def test_a_closed_connection_mid_reply_is_an_error_not_a_short_reply():
    reader = reader_of(b'$10\r\nabc')
    with pytest.raises(RedisConnectionError, match='closed the connection'):
        reader.read()


def test_garbage_is_not_a_reply():
    with pytest.raises(RedisConnectionError, match='not a Redis reply'):
        reader_of(b'HTTP/1.1 400\r\n').read()


def test_shown_masks_the_auth_secret_and_cuts_long_values():
    assert shown(['AUTH', 'maint', 's3cret']) == 'AUTH maint ********'
    assert shown(['auth', 's3cret']) == 'auth ********'
    assert shown(['SET', 'k', 'v' * 200]).endswith('...') and len(shown(['SET', 'k', 'v' * 200])) < 100


def test_parse_info_skips_headers_and_keeps_colons_in_values():
    assert parse_info('# Server\r\nredis_version:7.0.15\r\n\r\nexecutable:/usr/bin/x:y\r\n') == {
        'redis_version': '7.0.15', 'executable': '/usr/bin/x:y'}


def test_real_server_round_trip_pipeline_and_commands_recorded(redis):
    with RedisClient(port=redis.port) as client:
        assert client.command('PING') == 'PONG'
        assert client.command('SET', 'unit:bin', b'\xff\x00') == 'OK'
        replies = client.pipeline([['GET', 'unit:bin'], ['INCR', 'unit:bin'], ['DEL', 'unit:bin']])
        assert replies[0] == b'\xff\x00' and isinstance(replies[1], RedisReplyError) and replies[2] == 1
        assert client.commands == ['PING', 'SET unit:bin \ufffd\x00']


def test_wrong_password_names_the_user_and_masks_it(redis_auth):
    client = RedisClient(port=redis_auth.port, password='wrong-pw')
    with pytest.raises(RedisReplyError, match='WRONGPASS.*refused the password of the default user') as caught:
        client.connect()
    assert 'wrong-pw' not in str(caught.value) and client.commands == ['AUTH ********']


def test_refused_port_says_what_to_check():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with pytest.raises(RedisConnectionError, match='cannot connect to Redis at 127.0.0.1:%d' % port):
        RedisClient(port=port, timeout=2).connect()

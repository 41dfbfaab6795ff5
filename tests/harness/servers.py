"""Throwaway Redis and HTTP servers on loopback, for tests and the demo sandbox."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.harness.ports import free_port, wait_listening


class RedisServer:
    """``redis-server`` in the foreground on a free loopback port, no persistence."""

    def __init__(self, work_dir, password=None):
        self.work_dir = work_dir
        self.password = password
        self.port = free_port()
        self.process = None

    def start(self):
        binary = shutil.which('redis-server')
        if not binary:
            raise RuntimeError('redis-server not found: apt-get install redis-server')
        os.makedirs(self.work_dir, exist_ok=True)
        argv = [binary, '--port', str(self.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
                '--dir', self.work_dir, '--logfile', os.path.join(self.work_dir, 'redis.log')]
        if self.password:
            argv += ['--requirepass', self.password]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        wait_listening(self.port)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class _Handler(BaseHTTPRequestHandler):
    """``/status/<code>`` answers that code; ``?delay_ms=N`` waits first; ``/health`` says ok."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        delay_ms = int(query.get('delay_ms', ['0'])[0])
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        code = 200
        body = b'{"status": "ok"}\n'
        if url.path.startswith('/status/'):
            code = int(url.path.rsplit('/', 1)[1])
            body = b'status %d\n' % code
        try:
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def log_message(self, *args):  # keep pytest output clean
        return


class HttpServer:
    """A threaded HTTP server on a free loopback port answering chosen codes and latencies."""

    def __init__(self):
        self.server = ThreadingHTTPServer(('127.0.0.1', free_port()), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

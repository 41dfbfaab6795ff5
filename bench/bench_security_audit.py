"""Secret scan and mode checks of security_audit against detect-secrets' own CLI, grep -rE and find, on one tree.

    SECURITY_BENCH_BYTES=20971520 python -m bench.run security_audit   # default 20 MiB of source files

Setup: an application tree of 64 KiB Python-like source files in 20 directories, a
hard-coded secret (AWS key ID, private key header or password assignment, random
values) every ~2000 lines, a world-writable directory, generated deterministically in
a temp dir and removed afterwards. Medians of SECURITY_BENCH_REPEATS runs (default 3)
after one warm-up (page cache warm). The module is timed by its own
``metrics.duration_ms``. detect-secrets runs every plugin on every line (well under
1 MB/s), hence the smaller default size than grep alone would need.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time

from tests.harness.playbook import BIN_DIR, run_tasks

MODULE = 'engineroom.maintenance.security_audit'
FILE_BYTES = 64 * 1024
DIRS = 20
SECRETS = ['AWS_ACCESS_KEY_ID = "AKIAQ7R2LM4XV9TN3KWD"\n', 'KEY = """-----BEGIN RSA PRIVATE KEY-----\n',
           'DB_PASSWORD = "Wq9sLp2Xk7Vr4Tz"\n']
GREP_PATTERNS = ['AKIA[0-9A-Z]{16}', '-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----',
                 '(password|passwd|pwd|secret)["\']?[ \t]*[:=][ \t]*["\'][^"\' \t]{4,}["\']']


def _source_file(rng, index):
    """About FILE_BYTES of code-like lines; every ~2000th line a secret."""
    lines = []
    size = 0
    number = 0
    while size < FILE_BYTES:
        number += 1
        if rng.random() < 1 / 2000.0:
            line = SECRETS[rng.randrange(len(SECRETS))]
        else:
            line = rng.choice([
                'def handler_%d_%d(request, order_id):\n' % (index, number),
                '    total = sum(item.price * item.quantity for item in order.items)  # %d\n' % number,
                '    logger.info("order %%s paid: %%s", order_id, total)\n',
                '    return render(request, "shop/order.html", {"order": order, "n": %d})\n' % number,
                '\n',
            ])
        lines.append(line)
        size += len(line)
    return ''.join(lines)


def _generate(root, total):
    rng = random.Random(8)
    files = max(1, total // FILE_BYTES)
    written = 0
    for index in range(files):
        directory = os.path.join(root, 'app', 'pkg%02d' % (index % DIRS))
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, 'module%05d.py' % index), 'w') as handle:
            written += handle.write(_source_file(rng, index))
    os.chmod(os.path.join(root, 'app', 'pkg00'), 0o777)
    return files, written


def _timed(argv, cwd=None):
    started = time.monotonic()
    completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False, cwd=cwd,
                               env=dict(os.environ, LC_ALL='C'))
    return time.monotonic() - started, completed.stdout


def _median(argv, repeats, cwd=None):
    _timed(argv, cwd)  # warm-up
    runs = [_timed(argv, cwd) for dummy in range(repeats)]
    return statistics.median(r[0] for r in runs), runs[0][1]


def _module(app, repeats):
    task = {'name': 'audit', MODULE: dict(app_root=app, checks=['secret_files', 'world_writable_dirs', 'secret_scan'],
                                          scan_max_seconds=7200, scan_max_total_bytes=1 << 40)}
    results = []
    for dummy in range(repeats + 1):
        result = run_tasks([task]).result('audit')
        if result.get('failed'):
            raise RuntimeError('security_audit failed: %s' % result.get('msg'))
        results.append(result)
    results = results[1:]  # the first was the warm-up
    return statistics.median(r['metrics']['duration_ms'] for r in results) / 1000.0, results[-1]


def run():
    total = int(os.environ.get('SECURITY_BENCH_BYTES', str(20 * 1024 ** 2)))
    repeats = int(os.environ.get('SECURITY_BENCH_REPEATS', '3'))
    workdir = tempfile.mkdtemp(prefix='engineroom-bench-security-')
    try:
        files, size = _generate(workdir, total)
        app = os.path.join(workdir, 'app')
        grep_argv = ['grep', '-rnIiE'] + [arg for p in GREP_PATTERNS for arg in ('-e', p)] + [app]
        grep_s, grep_out = _median(grep_argv, repeats)
        find_s, find_out = _median(['find', app, '-type', 'd', '-perm', '-o+w'], repeats)
        ds_s, ds_out = _median([os.path.join(BIN_DIR, 'detect-secrets'), 'scan', '--all-files', '.'], repeats, cwd=app)
        module_s, result = _module(app, repeats)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    grep_hits = len(grep_out.splitlines())
    ds_hits = sum(len(items) for items in json.loads(ds_out)['results'].values())
    secrets = sum(1 for f in result['findings'] if f['code'] == 'hardcoded_secret')
    dirs = sum(1 for f in result['findings'] if f['code'] == 'world_writable_dir')
    mb = size / 1e6
    return '\n'.join([
        '## security_audit: secret scan and mode checks vs detect-secrets, grep -rE and find',
        '',
        'Setup: %d generated source files of ~64 KiB in %d directories, %.1f MB in total, a secret every ~2000'
        ' lines, one world-writable directory; medians of %d runs after a warm-up (page cache warm). Size knob:'
        ' `SECURITY_BENCH_BYTES` (default 20 MiB). The module ran its file checks (walk, modes, content scan with'
        ' detect-secrets\' plugins and filters plus its own rules); detect-secrets ran its CLI on the same tree; grep'
        ' ran the 3 patterns it can express.' % (files, DIRS, mb, repeats),
        '',
        '| what | wall s | MB/s | result |',
        '| --- | ---: | ---: | --- |',
        '| `cd app && detect-secrets scan --all-files .` | %.2f | %.2f | %d secrets |' % (ds_s, mb / ds_s, ds_hits),
        '| `grep -rnIiE -e AWS -e KEY -e PASSWORD app/` | %.2f | %.0f | %d lines |' % (grep_s, mb / grep_s, grep_hits),
        '| `find app/ -type d -perm -o+w` | %.3f | | %d directories |' % (find_s, len(find_out.splitlines())),
        '| module (walk + modes + scan, `metrics.duration_ms`) | %.2f | %.2f | %d hard-coded secrets, %d world-writable'
        ' dirs, %d files scanned |' % (module_s, mb / module_s, secrets, dirs, result['metrics']['files_scanned']),
        '',
        'Ratio: the module takes **%.2f x** the time of detect-secrets\' CLI, and reports the same number of secret lines:'
        ' **%s**.' % (module_s / ds_s, 'yes' if secrets == ds_hits else 'NO (%d vs %d)' % (secrets, ds_hits)),
        '',
        'How: the plugins\' own trigger patterns run over each whole file in C (case-insensitive ones on the lower-cased'
        ' text), and only the lines they touch go through detect-secrets\' plugins and filters, which then decide as its'
        ' `scan_file` does; detect-secrets runs every plugin on every line.',
    ])

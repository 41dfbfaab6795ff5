"""Error review of log_rotation_check against the seeds' grep pipeline, on the same generated logs.

    LOGSCAN_BENCH_BYTES=2147483648 python -m bench.run logscan   # default 2 GiB over 10 files
    LOGSCAN_BENCH_JSON_BYTES=1073741824                           # the structured (JSON lines) case, default 1 GiB

Setup: 10 application logs (ISO timestamps, ~0.5 % ERROR/CRITICAL/FATAL lines,
multi-line Python tracebacks), generated deterministically in a temp dir and
removed afterwards. Each figure is the median of LOGSCAN_BENCH_REPEATS runs
(default 3) after one warm-up, so every tool reads from the page cache.
The module is timed by its own ``duration_ms`` (no ansible-playbook start-up).
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

from tests.harness.logs import app_log_lines, grep_count, write_sized_log
from tests.harness.playbook import run_tasks

MODULE = 'engineroom.maintenance.log_rotation_check'
FILES = 10
APPEND_BYTES = 10 * 1024 * 1024
PATTERNS = ['ERROR', 'CRITICAL', 'FATAL', 'Traceback']


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pipeline(stages):
    """Run argv stages connected by pipes (no shell); return (seconds, CPU seconds, last stage's output)."""
    cpu = _children_cpu()
    started = time.monotonic()
    processes = []
    previous = None
    for index, argv in enumerate(stages):
        last = index == len(stages) - 1
        proc = subprocess.Popen(argv, stdin=previous, stdout=subprocess.PIPE, env=dict(os.environ, LC_ALL='C'))
        if previous is not None:
            previous.close()
        previous = proc.stdout
        processes.append(proc)
        if last:
            output = proc.communicate()[0]
    for proc in processes:
        proc.wait()
    return time.monotonic() - started, _children_cpu() - cpu, output


def _median_pipeline(stages, repeats):
    _pipeline(stages)  # warm-up: page cache
    runs = [_pipeline(stages) for dummy in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[0][2]


def _module(paths, repeats, **args):
    task = {'name': 'scan', MODULE: dict(args, paths=paths, scan=True, check_logrotate=False, ghost_scope='none')}
    results = []
    for dummy in range(repeats):
        result = run_tasks([task]).result('scan')
        if result.get('failed'):
            raise RuntimeError('log_rotation_check failed: %s' % result.get('msg'))
        results.append(result)
    return (statistics.median(r['duration_ms'] for r in results) / 1000.0,
            statistics.median(r['metrics']['cpu_ms'] for r in results) / 1000.0, results[-1])


def _rate(nbytes, seconds):
    """GB/s (decimal, as grep figures are usually quoted)."""
    return nbytes / seconds / 1e9


def write_json_log(path, total, seed=7):
    """JSON lines where every line carries ``"error": null`` and ~0.2 % are ``"level": "error"``; returns
    (bytes, lines, error records)."""
    rng = random.Random(seed)
    size = lines = errors = 0
    levels = ['info', 'info', 'info', 'debug', 'warn']
    with open(path, 'w') as handle:
        batch = []
        while size < total:
            level = 'error' if rng.random() < 0.002 else rng.choice(levels)
            errors += level == 'error'
            line = json.dumps({'time': '2026-11-20T10:%02d:%02d.%03dZ' % (lines // 60000 % 60, lines // 1000 % 60, lines % 1000),
                               'level': level, 'logger': 'app.http',
                               'msg': 'request %d handled in %d ms' % (lines, rng.randint(1, 900)),
                               'error': None, 'request_id': '%032x' % rng.getrandbits(128)}) + '\n'
            batch.append(line)
            size += len(line)
            lines += 1
            if len(batch) >= 10000:
                handle.write(''.join(batch))
                batch = []
        handle.write(''.join(batch))
    return size, lines, errors


def structured_case(workdir, repeats):
    """The JSON-lines case: the module (format auto) against ``grep -c '"level": *"error"'`` on the same file."""
    total = int(os.environ.get('LOGSCAN_BENCH_JSON_BYTES', str(1024 ** 3)))
    path = os.path.join(workdir, 'app.json')
    size, lines, errors = write_json_log(path, total)
    grep_s, grep_cpu, grep_out = _median_pipeline([['grep', '-c', '"level": *"error"', path]], repeats)
    substring_s, dummy, substring_out = _median_pipeline([['grep', '-c', '-i', 'error', path]], repeats)
    _module([path], 1)  # warm-up
    module_s, module_cpu, result = _module([path], repeats)
    levels = result['errors']['levels']
    return [
        '### Structured log: JSON lines where every line contains `error`',
        '',
        'Setup: one JSON-lines log of %.2f GiB (%s bytes, %s lines), every line carrying `"error": null`, %s records'
        ' (%.2f %%) with `"level": "error"`; size knob `LOGSCAN_BENCH_JSON_BYTES` (default 1 GiB); medians of %d runs.'
        % (size / 1024.0 ** 3, format(size, ','), format(lines, ','), format(errors, ','), 100.0 * errors / lines, repeats),
        '',
        '| what | wall s | GB/s (wall) | CPU s | result |',
        '| --- | ---: | ---: | ---: | --- |',
        '| `grep -c \'"level": *"error"\' FILE` | %.2f | %.2f | %.2f | %s lines |'
        % (grep_s, _rate(size, grep_s), grep_cpu, grep_out.decode().strip()),
        '| `grep -ci error FILE` (what a substring search counts) | %.2f | %.2f | | %s lines |'
        % (substring_s, _rate(size, substring_s), substring_out.decode().strip()),
        '| module scan, `format: auto` (detected `%s`) | %.2f | %.2f | %.2f | levels %s, counts ERROR %d |'
        % (result['errors']['files'][0]['format'], module_s, _rate(size, module_s), module_cpu,
           json.dumps(levels, sort_keys=True), result['errors']['counts']['ERROR']),
        '',
        'Counts by level exact: **%s** (expected error %d). Throughput = **%.2f x** `grep -c \'"level": *"error"\'`'
        ' by wall time (target >= 0.5).'
        % ('yes' if levels == {'error': errors} else 'NO', errors, grep_s / module_s),
        '',
        'How: for a JSON log grep runs with an expression that finds the candidate records (`"level" *: *"error"`'
        ' and the other level keys and names, `-i`), and Python decodes only those lines to read the level; a'
        ' substring search would have counted every line.',
    ]


def run():
    total = int(os.environ.get('LOGSCAN_BENCH_BYTES', str(2 * 1024 ** 3)))
    repeats = int(os.environ.get('LOGSCAN_BENCH_REPEATS', '3'))
    workdir = tempfile.mkdtemp(prefix='engineroom-bench-logscan-')
    try:
        paths = [os.path.join(workdir, 'app%02d.log' % i) for i in range(FILES)]
        size = sum(write_sized_log(path, total // FILES, seed=i) for i, path in enumerate(paths))
        load_before = os.getloadavg()
        grep_wc_s, grep_wc_cpu, grep_lines = _median_pipeline([['grep', '-a', '-i', 'error'] + paths, ['wc', '-l']], repeats)
        own_grep_s, own_grep_cpu, own_grep_lines = _median_pipeline(
            [['grep', '-a', '-b', '-i', '-E', '|'.join(PATTERNS)] + paths, ['wc', '-l']], repeats)
        seeds_s, seeds_cpu, seeds_top = _median_pipeline(
            [['grep', '-h', '-a', '-i', 'error'] + paths, ['sort'], ['uniq', '-c'], ['sort', '-rn'], ['head']], repeats)
        _module(paths, 1)  # warm-up
        full_s, full_cpu, full = _module(paths, repeats)
        expected = dict((p, grep_count(p, *paths)) for p in PATTERNS)
        same_counts = full['errors']['counts'] == expected

        state = os.path.join(workdir, 'state', 'cursors.json')
        _module(paths, 1, state_file=state)  # establishes the cursors
        increments = []
        for round_index in range(repeats):
            block = b''.join(app_log_lines(12000, seed=100 + round_index))
            per_file = APPEND_BYTES // FILES
            for path in paths:
                with open(path, 'ab') as handle:
                    written = 0
                    while written < per_file:
                        handle.write(block[:per_file - written])
                        written += min(len(block), per_file - written)
            increments.append(_module(paths, 1, state_file=state))
        incr_s = statistics.median(i[0] for i in increments)
        incr_cpu = statistics.median(i[1] for i in increments)
        incr = increments[-1][2]
        for path in paths:
            os.unlink(path)
        structured = structured_case(workdir, repeats)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    gib = size / 1024.0 ** 3
    top_line = seeds_top.decode('utf-8', 'replace').splitlines()[0].strip()[:90] if seeds_top else ''
    top_module = full['errors']['top_messages'][0] if full['errors']['top_messages'] else {}
    lines = [
        '## logscan: error review (log_rotation_check scan) vs grep',
        '',
        'Setup: %d generated application logs, %.2f GiB in total (%s bytes), ~0.5 %% error lines with multi-line'
        ' Python tracebacks; medians of %d runs after a warm-up (page cache warm). Size knob:'
        ' `LOGSCAN_BENCH_BYTES` (default 2 GiB). CPU seconds are user+system of every process involved (grep,'
        ' sort, the module and its grep children); wall seconds depend on what else runs on the 2 cores.'
        % (FILES, gib, format(size, ','), repeats),
        '',
        '| what | wall s | GB/s (wall) | CPU s | GB/s per CPU s | result |',
        '| --- | ---: | ---: | ---: | ---: | --- |',
        '| `grep -i error FILES \\| wc -l` | %.2f | %.2f | %.2f | %.2f | %s lines |'
        % (grep_wc_s, _rate(size, grep_wc_s), grep_wc_cpu, _rate(size, grep_wc_cpu), grep_lines.decode().strip()),
        '| the module\'s own grep alone: `grep -a -b -i -E \'%s\' FILES \\| wc -l` | %.2f | %.2f | %.2f | %.2f | %s lines |'
        % ('\\|'.join(PATTERNS), own_grep_s, _rate(size, own_grep_s), own_grep_cpu, _rate(size, own_grep_cpu),
           own_grep_lines.decode().strip()),
        '| seeds: `grep -i error \\| sort \\| uniq -c \\| sort -rn \\| head` | %.2f | %.2f | %.2f | %.2f |'
        ' top: `%s` (every line unique) |'
        % (seeds_s, _rate(size, seeds_s), seeds_cpu, _rate(size, seeds_cpu), top_line.replace('|', '\\|')),
        '| module full scan (4 patterns, tracebacks, top messages) | %.2f | %.2f | %.2f | %.2f |'
        ' ERROR %d lines, %d events, %d tracebacks; top: %d x `%s` |'
        % (full_s, _rate(size, full_s), full_cpu, _rate(size, full_cpu), full['errors']['counts']['ERROR'],
           full['errors']['events'], full['errors']['tracebacks'], top_module.get('count', 0),
           top_module.get('message', '').replace('|', '\\|')),
        '| module incremental re-scan after appending %d MiB | %.3f | %.2f | %.3f | %.2f | %s bytes read, %s skipped by cursor |'
        % (APPEND_BYTES // 1024 ** 2, incr_s, _rate(incr['bytes_scanned'], incr_s), incr_cpu,
           _rate(incr['bytes_scanned'], incr_cpu), format(incr['bytes_scanned'], ','),
           format(incr['bytes_skipped_by_cursor'], ',')),
        '',
        'Ratios: full scan throughput = **%.2f x** `grep -i error | wc -l` by wall time (target >= 0.5), %.2f x by'
        ' CPU time, %.2f x the seeds\' pipeline (wall); counts per pattern equal `grep -ci`: **%s** (%s).'
        ' Incremental re-scan = **%.2f %%** of the full scan\'s wall time (target < 2 %%).'
        % (grep_wc_s / full_s, grep_wc_cpu / full_cpu, seeds_s / full_s, 'yes' if same_counts else 'NO',
           ', '.join('%s %d' % item for item in expected.items()), 100.0 * incr_s / full_s),
        '',
        'How: grep (`-a -b -i -E` with the escaped patterns, argv, `LC_ALL=C`, reading the descriptor from the cursor)'
        ' finds candidate lines, two files at a time; Python parses only those (~0.5 %%), reading traceback frames'
        ' with `pread`. Case-insensitive search for the 4 patterns costs grep itself %.2fx the CPU of `grep -i error`'
        ' (the row above; no better with `-F`, with the 832 case variants and no `-i`, or with `-P`), so by CPU time'
        ' the scan\'s ceiling is %.2fx with the parsing for free (here ~%.2f CPU s of Python on top of grep\'s %.2f);'
        ' it stays within 2x by wall time only by overlapping grep with the parsing and scanning two files at once,'
        ' which a loaded machine does not allow. A plain Python line loop was measured at ~17 s for 2 GB (issue 6);'
        ' a case-insensitive Python `re` over 8 MiB chunks at 43 MB/s, `lower()` + 4 `find` at 440 MB/s (grep: ~1.5'
        ' GB/s per CPU second for one pattern, ~0.8 for four).'
        % (own_grep_cpu / grep_wc_cpu, grep_wc_cpu / own_grep_cpu, max(full_cpu - own_grep_cpu, 0.0), own_grep_cpu),
        '',
        'Load average (1, 5, 15 min) at the start %s and at the end %s of this run.'
        % (', '.join('%.2f' % v for v in load_before), ', '.join('%.2f' % v for v in load_after)),
        '',
    ] + structured
    return '\n'.join(lines)

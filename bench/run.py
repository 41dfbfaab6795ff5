"""Run benchmarks and rebuild docs/PERFORMANCE.md.

    python -m bench.run            # every bench/bench_*.py
    python -m bench.run vacuum     # only bench/bench_vacuum.py

Each bench module has ``run() -> str``: one Markdown section with its setup,
the raw tool's figures and the module's, side by side in one run, and the
ratios. The section is stored as docs/performance/<name>.md, so running one
benchmark keeps the others' last figures; docs/PERFORMANCE.md is rebuilt from
all sections every time.
"""

from __future__ import annotations

import datetime
import glob
import importlib
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = os.path.join(ROOT, 'docs', 'performance')
REPORT = os.path.join(ROOT, 'docs', 'PERFORMANCE.md')


def available():
    return sorted(os.path.basename(p)[len('bench_'):-3] for p in glob.glob(os.path.join(ROOT, 'bench', 'bench_*.py')))


def machine_line():
    return '%s, %d CPUs, Python %s, measured %s' % (
        platform.platform(terse=True), os.cpu_count() or 0, platform.python_version(),
        datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))


def rebuild_report():
    parts = ['# Performance', '',
             'Written by `make bench` (`python -m bench.run`). Each section compares a module with the raw tool',
             'it replaces or drives, measured side by side in one run on the same data; ratios are what to read.',
             'Tests never assert on timings; these figures are the only place speed is judged.', '']
    for path in sorted(glob.glob(os.path.join(SECTIONS, '*.md'))):
        with open(path) as handle:
            parts.append(handle.read().rstrip() + '\n')
    with open(REPORT, 'w') as handle:
        handle.write('\n'.join(parts))


def main(argv):
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        sys.exit('unknown benchmark(s) %s; available: %s' % (', '.join(unknown), ', '.join(available())))
    os.makedirs(SECTIONS, exist_ok=True)
    for name in names:
        print('== bench %s' % name, flush=True)
        section = importlib.import_module('bench.bench_%s' % name).run()
        with open(os.path.join(SECTIONS, '%s.md' % name), 'w') as handle:
            handle.write(section.rstrip() + '\n\n_Machine: %s._\n' % machine_line())
    rebuild_report()
    print('written: %s' % REPORT)


if __name__ == '__main__':
    main(sys.argv[1:])

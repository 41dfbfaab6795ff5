"""snapshot_archive / snapshot_restore against the seeds' pg_dump, zip and docker exec, and the raw pipelines.

The data is meant to behave like an application's, not like pgbench's
(whose dump compresses about 100:1, which flatters every compressor):

* database: ``customers``, ``orders`` and ``events`` with words drawn from a
  skewed vocabulary, JSON documents, prices, timestamps and md5 session ids,
  generated in SQL from a fixed ``setseed`` (its custom dump compresses about
  4:1 with zstd -3, 3.4:1 with gzip). ``BENCH_SNAPSHOT_SCALE`` (default 70)
  scales the rows: about 17 MB of database per unit, 1.2 GB at 70. A
  container from the test image gets the same data at
  ``BENCH_SNAPSHOT_CONTAINER_SCALE`` (default: the same scale).
* uploads tree of ``BENCH_SNAPSHOT_TREE_MB`` MB (default 2000) in
  ``BENCH_SNAPSHOT_FILES`` files (default 10,000), fixed seed: by count 45 %
  small JSON documents, 15 % text files, 5 % logs (text compresses about 3:1),
  25 % ``.jpg``, 7 % ``.png`` and 3 % ``.pdf`` of random bytes
  (incompressible, about two thirds of the bytes); sizes log-uniform per kind.

Everything is removed afterwards.

Every run writes a new file into memory freed just before: a raw command's
output file is deleted before it runs, and a module's ``dest`` is emptied
before each run. On this VM, page cache taken from memory the guest has not
used lately costs up to twice the system time (the balloon's free-page
reporting), so a run that reuses freshly freed pages while the other does
not would measure the hypervisor, not the tool.

Each method runs ``BENCH_SNAPSHOT_REPEATS`` times (default 3); medians are
reported. The modules run as Ansible runs them on a target (the module file
with its JSON arguments, the collection on PYTHONPATH), so ansible-playbook's
start-up is not counted; their time is their own ``metrics.duration_ms`` /
``rto_s``, which includes verifying the snapshot (a second full read), and the
peak memory is the module process's maximum RSS.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import re
import resource
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time

from tests.harness.playbook import REPO_ROOT
from tests.harness.postgres import PostgresCluster

SCALE = int(os.environ.get('BENCH_SNAPSHOT_SCALE', '70'))
CONTAINER_SCALE = int(os.environ.get('BENCH_SNAPSHOT_CONTAINER_SCALE', str(SCALE)))
TREE_MB = int(os.environ.get('BENCH_SNAPSHOT_TREE_MB', '2000'))
FILES = int(os.environ.get('BENCH_SNAPSHOT_FILES', '10000'))
REPEATS = int(os.environ.get('BENCH_SNAPSHOT_REPEATS', '3'))
# BENCH_SNAPSHOT_SECTIONS: the sections to run, of database, container, full, smallfiles, incremental (default: all). A subset
# replaces only its own sections in docs/performance/snapshot.md; the others keep their last figures.
ALL_SECTIONS = ('database', 'container', 'full', 'smallfiles', 'incremental')
SECTIONS = tuple(os.environ.get('BENCH_SNAPSHOT_SECTIONS', ','.join(ALL_SECTIONS)).split(','))
SECTION_TITLES = dict(database='### Database tier', container='### `container:`', full='### Full tier',
                      smallfiles='### Small files', incremental='### Incremental')
DOC = os.path.join(REPO_ROOT, 'docs', 'performance', 'snapshot.md')
IMAGE = os.environ.get('ENGINEROOM_TEST_IMAGE', 'engineroom-maintenance-test:bookworm')
DB = 'bench_snapshot'
# The module counts rows exactly below exact_count_max_rows (1,000,000) and estimates beyond. At the default
# scale that is only ``customers``; at a reduced scale every table would fall below it and be counted in full,
# so the threshold shrinks with the scale to keep the same work per row as at scale 70.
EXACT_COUNT_MAX_ROWS = 1000000 * SCALE // 70
MODULES = os.path.join(REPO_ROOT, 'plugins', 'modules')
SEED = 20261123
# (share of the files, suffix, smallest and largest size before scaling to TREE_MB, text or random bytes)
KINDS = (
    (0.45, '.json', 500, 20000, True),
    (0.15, '.txt', 2000, 200000, True),
    (0.05, '.log', 100000, 8000000, True),
    (0.25, '.jpg', 30000, 3000000, False),
    (0.07, '.png', 5000, 500000, False),
    (0.03, '.pdf', 50000, 5000000, False),
)
# Runs one command and reports the largest RSS among its children (the module process) on stderr.
PEAK_RSS = ('import resource, subprocess, sys\n'
            'done = subprocess.run(sys.argv[1:])\n'
            'usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n'
            'sys.stderr.write("\\nPEAK_RSS_KB=%d CPU_S=%.3f\\n" % (usage.ru_maxrss, usage.ru_utime + usage.ru_stime))\n'
            'sys.exit(done.returncode)\n')


def timed(func):
    started = time.monotonic()
    func()
    return time.monotonic() - started


def pipeline(*argvs, out=None):
    """Run argv lists connected by pipes (no shell), the last one's stdout into a new ``out``; check every exit code."""
    if out and os.path.exists(out):
        os.unlink(out)
    procs = []
    previous = None
    for index, argv in enumerate(argvs):
        last = index == len(argvs) - 1
        stdout = (open(out, 'wb') if out else subprocess.DEVNULL) if last else subprocess.PIPE
        proc = subprocess.Popen(argv, stdin=previous, stdout=stdout)
        if previous is not None:
            previous.close()
        if last and out:
            stdout.close()
        previous = proc.stdout
        procs.append(proc)
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError('%s exited %d' % (proc.args, proc.returncode))


def run_module(name, args, workdir):
    """Run a module as Ansible does on the target; return (result, peak RSS in MB)."""
    args_path = os.path.join(workdir, 'args.json')
    with open(args_path, 'w') as handle:
        json.dump(dict(ANSIBLE_MODULE_ARGS=args), handle)
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO_ROOT, 'collections'))
    done = subprocess.run([sys.executable, '-c', PEAK_RSS, sys.executable, os.path.join(MODULES, name + '.py'),
                           args_path], capture_output=True, text=True, env=env, check=False)
    result = json.loads(done.stdout)
    if result.get('failed'):
        raise RuntimeError('%s failed: %s' % (name, result.get('msg')))
    peak_kb = int(done.stderr.rsplit('PEAK_RSS_KB=', 1)[1].split()[0])
    result['bench_cpu_s'] = float(done.stderr.rsplit('CPU_S=', 1)[1].split()[0])  # user + system, all threads
    return result, peak_kb / 1024.0


def median_of(func):
    """Median seconds of REPEATS calls of ``func`` (returning (seconds, extra)), and the last call's extra."""
    runs = [func() for _repeat in range(REPEATS)]
    return statistics.median(run[0] for run in runs), runs[-1][1]


def module_medians(args_for, workdir, name='snapshot_archive'):
    """Median total (write + verify) and write-only seconds of REPEATS module runs, and the last (result, peak MB).

    Each run starts with ``dest`` emptied, as each raw command starts with its output file deleted (see the
    module docstring).
    """
    runs = []
    for _repeat in range(REPEATS):
        shutil.rmtree(args_for['dest'], ignore_errors=True)
        runs.append(run_module(name, args_for, workdir))
    total = statistics.median(r['snapshot']['duration_ms'] for r, _peak in runs) / 1000.0
    write = statistics.median(r['snapshot']['write_ms'] for r, _peak in runs) / 1000.0
    return total, write, runs[-1]


def size_mb(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _subdirs, fs in os.walk(path) for f in fs) / 1e6
    return os.path.getsize(path) / 1e6


def _vocabulary(rng, count):
    return sorted(set(''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _letter in range(rng.randint(3, 10)))
                      for _word in range(count)))


def text_pool(rng, size):
    """``size`` bytes of log lines and JSON documents with words from a skewed vocabulary (about 3:1 with zstd -3)."""
    words = _vocabulary(rng, 800)
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    lines = []
    total = 0
    while total < size:
        phrase = ' '.join(rng.choices(words, weights, k=rng.randint(3, 14)))
        if rng.random() < 0.5:
            line = '2026-%02d-%02dT%02d:%02d:%02d.%03dZ %s req=%08x user=%d %s\n' % (
                rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                rng.randint(0, 999), rng.choice(('INFO', 'WARN', 'DEBUG', 'ERROR')), rng.getrandbits(32),
                rng.randint(1, 10 ** 6), phrase)
        else:
            line = '{"id": %d, "sku": "%s-%05d", "name": "%s", "price": %d.%02d, "tags": ["%s", "%s"]}\n' % (
                rng.randint(1, 10 ** 7), rng.choice(words).upper(), rng.randint(0, 99999), phrase,
                rng.randint(1, 999), rng.randint(0, 99), rng.choice(words), rng.choice(words))
        lines.append(line)
        total += len(line)
    return ''.join(lines).encode()


def make_tree(root):
    """FILES files of about TREE_MB MB in total, kinds and sizes drawn from KINDS, 200 per directory.

    Text files are slices of one 24 MB pool at random offsets (a zstd window
    rarely sees a slice twice); the others are random bytes.
    """
    rng = random.Random(SEED)
    pool = text_pool(rng, 24 * 10 ** 6)
    plan = []
    for _index in range(FILES):
        pick = rng.random()
        for share, suffix, low, high, is_text in KINDS:
            if pick < share:
                break
            pick -= share
        plan.append((suffix, low * (high / low) ** rng.random(), is_text))
    scale = TREE_MB * 1e6 / sum(item[1] for item in plan)
    for index, (suffix, size, is_text) in enumerate(plan):
        directory = os.path.join(root, 'u%03d' % (index // 200))
        os.makedirs(directory, exist_ok=True)
        size = max(1, int(size * scale))
        if is_text:
            start = rng.randrange(0, max(1, len(pool) - size))
            data = (pool[start:] + pool)[:size]
        else:
            data = rng.randbytes(size)
        with open(os.path.join(directory, 'f%05d%s' % (index, suffix)), 'wb') as handle:
            handle.write(data)


def database_sql(scale):
    """SQL creating and filling the bench tables, deterministic (setseed, no parallel workers): psql -c runs it."""
    words = _vocabulary(random.Random(SEED), 600)
    vocabulary = 'ARRAY[%s]' % ','.join("'%s'" % word for word in words)
    pick = '(%s)[1 + floor(%d * random() ^ 3)::int]' % (vocabulary, len(words))  # skewed: low ranks are frequent

    def phrase(count):  # correlated with g, so it is drawn again for every row
        return "array_to_string(ARRAY(SELECT %s FROM generate_series(1, %s) WHERE g IS NOT NULL), ' ')" % (pick, count)
    return ';\n'.join([
        'SET max_parallel_workers_per_gather = 0',
        'SELECT setseed(0.20261123)',
        'CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, '
        'created_at timestamptz NOT NULL, profile jsonb NOT NULL)',
        "INSERT INTO customers SELECT g, initcap(%s), 'user' || g || '@' || %s || '.example', "
        "timestamptz '2020-01-01' + random() * interval '1800 days', jsonb_build_object("
        "'plan', (ARRAY['free','team','business','enterprise'])[1 + floor(4 * random() ^ 2)::int], "
        "'locale', (ARRAY['en_GB','de_DE','fr_FR','en_US','nl_NL'])[1 + floor(5 * random())::int], "
        "'newsletter', random() < 0.3, 'bio', %s) FROM generate_series(1, %d) g"
        % (phrase('2'), pick, phrase('(random() * 25)::int'), scale * 2000),
        'CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, '
        'total numeric(12,2) NOT NULL, created_at timestamptz NOT NULL, items jsonb NOT NULL, note text)',
        "INSERT INTO orders SELECT g, 1 + floor(random() * %d)::bigint, "
        "(ARRAY['pending','paid','shipped','delivered','refunded'])[1 + floor(5 * random() ^ 0.5)::int], "
        "round((random() * 500)::numeric, 2), timestamptz '2024-01-01' + g * interval '7 seconds', "
        "(SELECT jsonb_agg(jsonb_build_object('sku', upper(%s) || '-' || (random() * 99999)::int, "
        "'qty', 1 + (random() * 4)::int, 'price', round((random() * 120)::numeric, 2))) "
        "FROM generate_series(1, 1 + (random() * 4)::int) WHERE g IS NOT NULL), "
        "CASE WHEN random() < 0.4 THEN %s END FROM generate_series(1, %d) g"
        % (scale * 2000, pick, phrase('(random() * 30)::int'), scale * 20000),
        'CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, kind text NOT NULL, '
        'session text NOT NULL, payload jsonb NOT NULL)',
        "INSERT INTO events SELECT g, timestamptz '2026-01-01' + g * interval '250 milliseconds', "
        "(ARRAY['page_view','api_call','login','search','upload','error'])[1 + floor(6 * random() ^ 2)::int], "
        "md5(floor(random() * %d)::text), jsonb_build_object('path', '/' || %s || '/' || %s, "
        "'ms', (random() ^ 3 * 2000)::int, "
        "'status', (ARRAY[200,200,200,201,204,302,404,500])[1 + floor(8 * random())::int], "
        "'message', %s) FROM generate_series(1, %d) g"
        % (scale * 5000, pick, pick, phrase('(random() * 12)::int'), scale * 40000),
        'ANALYZE',
    ])


PSQL_LOAD = ['-X', '-q', '-o', os.devnull, '-v', 'ON_ERROR_STOP=1']


def row(label, seconds, size, base_s, note=''):
    output = '%.0f MB' % size if size is not None else '–'
    return '| %s | %.2f s | %s | %.2f× | %s |' % (label, seconds, output, base_s / seconds if seconds else 0, note)


def database_section(cluster, work):
    pg_bin = cluster.bin_dir
    conn_args = ['-h', cluster.socket_dir, '-p', str(cluster.port), '-U', 'postgres']
    dump = [os.path.join(pg_bin, 'pg_dump')] + conn_args
    out = os.path.join(work, 'out')
    started = time.monotonic()
    subprocess.run([os.path.join(pg_bin, 'psql')] + PSQL_LOAD + conn_args + ['-d', DB, '-c', database_sql(SCALE)],
                   check=True)
    load_s = time.monotonic() - started
    db_mb = cluster.execute('SELECT pg_database_size(%s)', (DB,))[0][0] / 1e6

    def raw(*argvs):
        def once():
            seconds = timed(lambda: pipeline(*argvs, out=out))
            return seconds, size_mb(out)
        return once
    seeds_s, seeds_mb = median_of(raw(dump + ['-d', DB]))
    fc_s, fc_mb = median_of(raw(dump + ['-Fc', '-d', DB]))
    shutil.copy(out, os.path.join(work, 'fc.dump'))
    zstd_s, zstd_mb = median_of(raw(dump + ['-Fc', '-Z0', '-d', DB], ['zstd', '-q', '-T0', '-3']))
    dest = os.path.join(work, 'snaps')
    args = dict(login_unix_socket=cluster.socket_dir, login_port=cluster.port, database=DB, dest=dest,
                slot='always', keep_last=1, min_free_bytes=0, exact_count_max_rows=EXACT_COUNT_MAX_ROWS)

    module_s, module_write_s, (snap, _peak) = module_medians(args, work)
    module_mb = snap['snapshot']['size_bytes'] / 1e6
    # Fingerprint cost: the same snapshot with fingerprint counts and none (the default above is full).
    fp_counts_s, fp_counts_write_s = module_medians(dict(args, fingerprint='counts'), work)[:2]
    fp_none_s, fp_none_write_s = module_medians(dict(args, fingerprint='none'), work)[:2]
    module_medians(args, work)  # the default snapshot again, for the drill below
    full_read_s = median_of(lambda: (timed(lambda: subprocess.run(
        [os.path.join(pg_bin, 'pg_restore'), '-f', os.devnull, os.path.join(work, 'fc.dump')], check=True)), None))[0]

    restore_db = [0]

    def pg_restore_once():
        restore_db[0] += 1
        name = 'bench_restore_%d' % restore_db[0]
        cluster.create_database(name)
        seconds = timed(lambda: subprocess.run([os.path.join(pg_bin, 'pg_restore'), '--no-owner'] + conn_args
                                               + ['-d', name, os.path.join(work, 'fc.dump')], check=True))
        cluster.execute('DROP DATABASE %s' % name)
        return seconds, None
    restore_s = median_of(pg_restore_once)[0]

    def drill_once():
        result = run_module('snapshot_restore', dict(login_unix_socket=cluster.socket_dir, login_port=cluster.port,
                                                     dest=dest, database=DB), work)[0]
        return result['rto_s'], result
    rto_s, drill = median_of(drill_once)
    lines = [
        '### Database tier (scale %d: %.0f MB database of customers, orders, events; loaded in %.0f s)' % (
            SCALE, db_mb, load_s), '',
        '| method | time (median) | output | speed vs `pg_dump -Fc` | note |', '| --- | --- | --- | --- | --- |',
        row('`pg_dump > file.sql` (seeds)', seeds_s, seeds_mb, fc_s),
        row('`pg_dump -Fc` (built-in gzip)', fc_s, fc_mb, fc_s),
        row('`pg_dump -Fc -Z0 \\| zstd -T0 -3` (raw pipeline the module drives)', zstd_s, zstd_mb, fc_s),
        row('snapshot_archive defaults (custom + zstd), writing', module_write_s, module_mb, fc_s,
            'dump, compress, hash, fsync'),
        row('snapshot_archive defaults, total with verification', module_s, module_mb, fc_s,
            'plus re-read, decompression, `pg_restore -f /dev/null` (every data block)'),
        row('snapshot_archive `fingerprint: counts`, writing', fp_counts_write_s, module_mb, fc_s),
        row('snapshot_archive `fingerprint: none`, writing', fp_none_write_s, module_mb, fc_s),
        '',
        'The three comparisons of the fidelity work (issue 15; report, not assert):', '',
        '| comparison | module | baseline | difference |', '| --- | --- | --- | --- |',
        '| dump + fingerprint (default `full`) vs dump alone (`fingerprint: none`), writing | %.2f s | %.2f s | '
        '**%+.0f %%** (target ≤ +30 %%) |' % (module_write_s, fp_none_write_s, 100.0 * (module_write_s / fp_none_write_s - 1)),
        '| full-read verification (module total − writing) vs `pg_restore -f /dev/null` of the `-Fc` file | %.2f s | '
        '%.2f s | %+.0f %% |' % (module_s - module_write_s, full_read_s, 100.0 * ((module_s - module_write_s) / full_read_s - 1)),
        '| drill `rto_s` (verify + restore, owners and ACLs) vs `pg_restore` into an empty database | %.2f s | %.2f s | '
        '%+.0f %% |' % (rto_s, restore_s, 100.0 * (rto_s / restore_s - 1)),
        '',
        'Fingerprint cost (writing, default `full` vs `none`): **%+.0f %%** (target ≤ +30 %%); `counts` %+.0f %%. '
        'Totals with verification: full %.2f s, counts %.2f s, none %.2f s.' % (
            100.0 * (module_write_s / fp_none_write_s - 1), 100.0 * (fp_counts_write_s / fp_none_write_s - 1),
            module_s, fp_counts_s, fp_none_s),
        '',
        'Full-read verification: module verification (total − writing, default) %.2f s vs `pg_restore -f /dev/null` '
        'of the `-Fc` file %.2f s.' % (module_s - module_write_s, full_read_s),
        '',
        'Targets (writing / total): module ≤ 1.10× the raw pipeline → **%.2f× / %.2f×**; ≥ 2.5× faster than '
        '`pg_dump -Fc` → **%.2f× / %.2f×**; ≤ 1.6× the seeds\' plain dump → **%.2f× / %.2f×**, at ≤ 1/4 of its '
        'size → **1/%.1f** (the raw pipeline: 1/%.1f; the ratio is the data\'s, not the module\'s).' % (
            module_write_s / zstd_s, module_s / zstd_s, fc_s / module_write_s, fc_s / module_s,
            module_write_s / seeds_s, module_s / seeds_s, seeds_mb / module_mb, seeds_mb / zstd_mb),
        '',
        'Restore: `pg_restore` of the `-Fc` file %.2f s; snapshot_restore `rto_s` (verify + restore into a scratch '
        'database, owners and ACLs) %.2f s, fingerprint compared: %s.' % (
            restore_s, rto_s, 'all match' if drill['matches'] else 'MISMATCH'),
    ]
    return lines


def container_section(work):
    import docker
    client = docker.from_env(timeout=120)
    name = 'engineroom-bench-snapshot-%d' % os.getpid()
    container = client.containers.run(IMAGE, command=['sleep', 'infinity'], name=name, detach=True)
    try:
        container.exec_run(['pg_ctlcluster', '15', 'main', 'start'])
        for _attempt in range(60):
            if container.exec_run(['pg_isready'], user='postgres')[0] == 0:
                break
            time.sleep(0.5)
        container.exec_run(['createdb', DB], user='postgres')
        code, output = container.exec_run(['psql'] + PSQL_LOAD + ['-d', DB, '-c', database_sql(CONTAINER_SCALE)],
                                          user='postgres')
        if code != 0:
            raise RuntimeError(output)
        out = os.path.join(work, 'docker.dump')

        def cli_once():
            seconds = timed(lambda: pipeline(['docker', 'exec', '-u', 'postgres', name, 'pg_dump', '-Fc', '-Z0', DB],
                                             out=out))
            return seconds, size_mb(out)
        cli_s, cli_mb = median_of(cli_once)
        dest = os.path.join(work, 'csnaps')

        module_s, module_write_s, (snap, _peak) = module_medians(
            dict(database=DB, container=name, dest=dest, slot='always', keep_last=1, min_free_bytes=0,
                 exact_count_max_rows=1000000 * CONTAINER_SCALE // 70), work)
    finally:
        container.remove(force=True)
        client.close()
    return [
        '### `container:` path (the same tables at scale %d inside the test image)' % CONTAINER_SCALE, '',
        '| method | time (median) | output | speed vs CLI | note |', '| --- | --- | --- | --- | --- |',
        row('`docker exec … pg_dump -Fc -Z0 > file` (seeds, CLI)', cli_s, cli_mb, cli_s, '%.0f MB/s' % (cli_mb / cli_s)),
        row('snapshot_archive `container:` (Docker API socket + zstd in one thread), writing', module_write_s,
            snap['snapshot']['size_bytes'] / 1e6, cli_s,
            '%.0f MB/s of dump' % (snap['snapshot']['source_bytes'] / 1e6 / module_write_s)),
        row('snapshot_archive `container:`, total with verification', module_s, snap['snapshot']['size_bytes'] / 1e6,
            cli_s, ''),
        '', 'Target: at least as fast as the CLI → **%.2f×** writing, **%.2f×** with verification.' % (
            cli_s / module_write_s, cli_s / module_s),
    ]


def full_section(work):
    tree = os.path.join(work, 'uploads')
    started = time.monotonic()
    make_tree(tree)
    gen_s = time.monotonic() - started
    tree_mb = size_mb(tree)
    out = os.path.join(work, 'tree.out')

    def cmd_once(argv_list, target):
        def once():
            if os.path.exists(target):
                os.unlink(target)
            seconds = timed(lambda: pipeline(*argv_list, out=None if target.endswith('.zip') else target))
            return seconds, size_mb(target)
        return once
    zip_target = os.path.join(work, 'seeds.zip')
    zip_s, zip_mb = median_of(cmd_once([['zip', '-r', '-q', zip_target, tree]], zip_target))
    tar_s, tar_mb = median_of(cmd_once([['tar', '-C', work, '-cf', '-', 'uploads'], ['zstd', '-q', '-T0', '-3']], out))
    dest = os.path.join(work, 'fsnaps')
    figures = {}
    for fmt in ('tar.zst', 'zip'):
        figures[fmt] = module_medians(dict(tier='full', paths=[tree], archive_format=fmt, dest=dest, prefix='bench',
                                           slot='always', keep_last=1, min_free_bytes=0), work)
    drill = run_module('snapshot_restore', dict(dest=dest, tier='full', prefix='bench', scratch_dir=work), work)[0]
    tar_mod_s, tar_write_s, (tar_res, tar_peak) = figures['tar.zst']
    zip_mod_s, zip_write_s, (zip_res, zip_peak) = figures['zip']
    return [
        '### Full tier (%d files, %.0f MB: JSON, text and logs; random `.jpg`/`.png`/`.pdf`; generated in %.0f s)' % (
            FILES, tree_mb, gen_s),
        '',
        '| method | time (median) | output | speed vs `zip -r` | note |', '| --- | --- | --- | --- | --- |',
        row('`zip -r` (seeds)', zip_s, zip_mb, zip_s),
        row('`tar -cf - \\| zstd -T0 -3` (raw)', tar_s, tar_mb, zip_s),
        row('snapshot_archive `tar.zst`, writing', tar_write_s, tar_res['snapshot']['size_bytes'] / 1e6, zip_s,
            'photos/PDFs stored in raw frames; peak RSS %.0f MB (whole run)' % tar_peak),
        row('snapshot_archive `tar.zst`, total with verification', tar_mod_s, tar_res['snapshot']['size_bytes'] / 1e6,
            zip_s, ''),
        row('snapshot_archive `zip` (jpg stored), writing', zip_write_s, zip_res['snapshot']['size_bytes'] / 1e6,
            zip_s, 'peak RSS %.0f MB (whole run)' % zip_peak),
        row('snapshot_archive `zip`, total with verification', zip_mod_s, zip_res['snapshot']['size_bytes'] / 1e6,
            zip_s, ''),
        '',
        'Targets (writing / total): tar.zst ≥ 8× faster than `zip -r` → **%.1f× / %.1f×**; ≤ 1.1× the raw pipeline '
        '→ **%.2f× / %.2f×**; no larger than the zip → **%.2f×** its size; peak memory < 200 MB → **%.0f MB**; '
        'zip ≥ 2.5× faster than `zip -r` → **%.1f× / %.1f×**.' % (
            zip_s / tar_write_s, zip_s / tar_mod_s, tar_write_s / tar_s, tar_mod_s / tar_s,
            tar_res['snapshot']['size_bytes'] / 1e6 / zip_mb, tar_peak, zip_s / zip_write_s, zip_s / zip_mod_s),
        '',
        'Restore drill of the tar.zst (extract, compare count/bytes): `rto_s` %.2f s, %s.' % (
            drill['rto_s'], 'files match' if drill['matches'] else 'MISMATCH'),
    ]


# ---- small files (issue 23): a tree nobody here wrote, many small files, and incompressible media ----
SMALL_SOURCES = tuple(os.environ.get(
    'BENCH_SMALLFILES_SOURCES',
    '/usr/share/doc:/usr/lib/python3.11:/usr/lib/python3/dist-packages:/usr/share/locale:/usr/share/man').split(':'))
SMALL_MIN_FILES = int(os.environ.get('BENCH_SMALLFILES_MIN_FILES', '15000'))
SMALL_MEDIA_MB = int(os.environ.get('BENCH_SMALLFILES_MEDIA_MB', '440'))


def copy_system_files(target, sources, min_files):
    """Copy regular files and symlinks of ``sources`` (system files) under ``target`` until ``min_files`` are there.

    Sources are copied in order, layout kept, until
    ``min_files`` regular files have been copied; unreadable entries are
    skipped. Returns the number of regular files copied.
    """
    copied = 0
    for source in sources:
        base = os.path.join(target, source.strip('/').replace('/', '_'))
        for directory, dirnames, filenames in os.walk(source):
            dirnames.sort()
            if copied >= min_files:
                break
            into = os.path.join(base, os.path.relpath(directory, source))
            os.makedirs(into, exist_ok=True)
            for name in sorted(filenames):
                if copied >= min_files:
                    break
                path = os.path.join(directory, name)
                try:
                    if os.path.islink(path):
                        os.symlink(os.readlink(path), os.path.join(into, name))
                    elif os.path.isfile(path):
                        shutil.copyfile(path, os.path.join(into, name))
                        copied += 1
                except OSError:
                    continue
    return copied


def make_small_tree(root):
    """System files (>= SMALL_MIN_FILES) plus SMALL_MEDIA_MB of random ``.jpg``/``.png`` (50 KB - 5 MB, fixed seed)."""
    copied = copy_system_files(os.path.join(root, 'system'), SMALL_SOURCES, SMALL_MIN_FILES)
    rng = random.Random(SEED)
    media = os.path.join(root, 'media')
    os.makedirs(media)
    left = SMALL_MEDIA_MB * 10 ** 6
    index = 0
    while left > 0:
        size = min(left, int(50000 * 100 ** rng.random()))
        with open(os.path.join(media, 'm%04d%s' % (index, rng.choice(('.jpg', '.jpg', '.png')))), 'wb') as handle:
            handle.write(rng.randbytes(size))
        left -= size
        index += 1
    return copied + index


def tree_counts(root):
    """Regular files under ``root`` and their MB (symlinks not counted)."""
    sizes = [os.lstat(os.path.join(d, f)) for d, _subdirs, fs in os.walk(root) for f in fs]
    regular = [info.st_size for info in sizes if stat.S_ISREG(info.st_mode)]
    return len(regular), sum(regular) / 1e6


def _null_sink():
    class Null:
        size = 0

        def write(self, data):
            self.size += len(data)
            return len(data)

        def flush(self):
            pass
    return Null()


def breakdown_lines(tree, work, artifact):
    """Where the module's time goes on ``tree``: its stages run cumulatively in this process, medians of REPEATS.

    Each row adds one stage to the previous one, so the differences are the
    stages' costs as the module pays them (threads overlapping included).
    """
    sys.path.insert(0, os.path.join(REPO_ROOT, 'collections'))
    from ansible_collections.engineroom.maintenance.plugins.module_utils.snapshots import (  # pylint: disable=import-outside-toplevel
        compression, tar_stream, tree as tree_mod, verify)
    target = os.path.join(work, 'breakdown.tar.zst')

    def to_file(sync):
        with open(target, 'wb') as handle:
            tar_stream.write_tar(compression.HashingWriter(compression.SyncingFile(handle) if sync else handle), 'zstd',
                                 3, [tree], [])
            handle.flush()
            if sync:
                os.fsync(handle.fileno())

    def sha_only():
        with open(artifact, 'rb', buffering=0) as handle:
            digest = hashlib.sha256()
            for chunk in iter(lambda: handle.read(compression.CHUNK_BYTES), b''):
                digest.update(chunk)

    def decompress_only():
        with open(artifact, 'rb', buffering=0) as handle:
            compression.read_all(compression.open_decompressor('zstd', handle))
    stages = [
        ('walk + lstat (`walk_tree`)', lambda: sum(1 for _entry in tree_mod.walk_tree([tree], []))),
        ('+ tar headers and reading every file (`write_tar`, no compression, to nowhere)',
         lambda: tar_stream.write_tar(_null_sink(), 'none', 0, [tree], [])),
        ('+ zstd frames on the pool, raw frames for media (`write_tar` tar.zst to nowhere)',
         lambda: tar_stream.write_tar(_null_sink(), 'zstd', 3, [tree], [])),
        ('+ sha256 of the artifact, written into the page cache (what the raw pipeline does with its output)',
         lambda: to_file(False)),
        ('+ flushed to the disk every 64 MiB and fsynced (the module\'s writing without the space check)',
         lambda: to_file(True)),
        ('verification: sha256 of the artifact alone', sha_only),
        ('verification: decompression of every frame alone', decompress_only),
        ('verification: the module\'s one pass (read-ahead sha256 + decompression + tar scan)',
         lambda: verify._scan_tar_fast(artifact, 'tar.zst', False)),
    ]
    lines = ['', 'Where the time goes (the module\'s stages run one after another in the bench process, each row '
             'adding one stage to the row before; medians of %d; load average %.2f):' % (REPEATS, os.getloadavg()[0]),
             '', '| stage | time (median) | CPU, all threads (median) |', '| --- | --- | --- |']

    def cpu_s():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    for label, func in stages:
        runs = []
        for _repeat in range(REPEATS):
            before = cpu_s()
            runs.append((timed(func), cpu_s() - before))
        lines.append('| %s | %.2f s | %.2f s |' % (
            label, statistics.median(run[0] for run in runs), statistics.median(run[1] for run in runs)))
    os.unlink(target)
    return lines


def smallfiles_section(work):
    """The full tier on many small files: raw ``tar | zstd -T0 -3`` vs the module, writing and with verification."""
    tree = os.path.join(work, 'small')
    started = time.monotonic()
    make_small_tree(tree)
    gen_s = time.monotonic() - started
    files, tree_mb = tree_counts(tree)
    out = os.path.join(work, 'small.tar.zst')

    def raw_once():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = timed(lambda: pipeline(['tar', '-C', work, '-cf', '-', 'small'], ['zstd', '-q', '-T0', '-3'], out=out))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return seconds, size_mb(out), after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    dest = os.path.join(work, 'ssnaps')
    args = dict(tier='full', paths=[tree], archive_format='tar.zst', dest=dest, prefix='small', slot='always',
                keep_last=1, min_free_bytes=0)
    raws, modules, hashed = [], [], []
    for _repeat in range(REPEATS):  # interleaved, so a burst of load on the shared machine hits all alike
        raws.append(raw_once())
        os.unlink(out)
        shutil.rmtree(dest, ignore_errors=True)
        hashed.append(run_module('snapshot_archive', dict(args, file_checksums=True), work)[0])
        shutil.rmtree(dest, ignore_errors=True)
        modules.append(run_module('snapshot_archive', args, work))
    load = os.getloadavg()
    raw_s = statistics.median(run[0] for run in raws)

    def median_s(results, key):
        return statistics.median(res['snapshot'][key] for res in results) / 1000.0
    results = [res for res, _peak in modules]
    total_s, write_s, verify_s = median_s(results, 'duration_ms'), median_s(results, 'write_ms'), median_s(
        results, 'verify_ms')
    peak = max(peak for _res, peak in modules)
    size = results[-1]['snapshot']['size_bytes'] / 1e6
    lines = [
        '### Small files (issue 23: %d files, %.0f MB: system documentation, Python packages, locale and man pages '
        'copied from this machine, plus %d MB of random `.jpg`/`.png`; built in %.0f s)' % (
            files, tree_mb, SMALL_MEDIA_MB, gen_s), '',
        '| method | time (median) | output | vs raw | note |', '| --- | --- | --- | --- | --- |',
        '| `tar -cf - tree \\| zstd -T0 -3` (raw) | %.2f s | %.0f MB | 1.00× | CPU %.2f s (user + system) |' % (
            raw_s, raws[-1][1], statistics.median(run[2] for run in raws)),
        '| snapshot_archive `tar.zst`, writing | %.2f s | %.0f MB | %.2f× | includes the space check\'s walk |' % (
            write_s, size, write_s / raw_s),
        '| snapshot_archive `tar.zst`, writing + verification (module duration) | %.2f s | | %.2f× | '
        'verification %.2f s: artifact sha256, every frame decompressed, every member read; CPU %.2f s for the '
        'whole module run (Python start-up, space check, writing, verification) |' % (
            total_s, total_s / raw_s, verify_s, statistics.median(res['bench_cpu_s'] for res in results)),
        '| the same with `file_checksums: true`, writing + verification | %.2f s | | %.2f× | writing %.2f s; '
        'every member hashed twice (written, read back) |' % (
            median_s(hashed, 'duration_ms'), median_s(hashed, 'duration_ms') / raw_s, median_s(hashed, 'write_ms')),
        '',
        'Targets: writing ≤ 1.15× raw → **%.2f×**; writing + verification ≤ 1.6× raw → **%.2f×**; peak RSS < 200 MB '
        '→ **%.0f MB** (module process, largest of the runs). Load average after the runs: %.2f / %.2f / %.2f; '
        'raw and module runs interleaved, so the ratios compare like with like on a shared machine.' % (
            write_s / raw_s, total_s / raw_s, peak, load[0], load[1], load[2]),
        '',
        'CPU (user + system, all threads), which the load does not change: the raw pipeline %.2f s; the whole module '
        'run %.2f s (**%.2f×**), Python start-up, space check, writing and verification included; the stages are in '
        'the breakdown below. With a load average above the number of cores, wall-clock ratios measure each side\'s '
        'share of the CPUs as much as its work: the module\'s pipeline (one Python thread reading and making headers, '
        'compression on a pool, hashing and writing on a thread) waits for the scheduler at every hand-off.' % (
            statistics.median(run[2] for run in raws), statistics.median(res['bench_cpu_s'] for res in results),
            statistics.median(res['bench_cpu_s'] for res in results) / statistics.median(run[2] for run in raws)),
    ]
    artifact = [os.path.join(dest, name) for name in os.listdir(dest) if name.endswith('.tar.zst')][0]
    return lines + breakdown_lines(tree, work, artifact)


def merge_sections(previous, fresh):
    """``previous`` (the last docs/performance/snapshot.md) with the ``###`` sections in ``fresh`` replaced or added.

    Returns (sections in ALL_SECTIONS order, tail): the tail is the previous
    notes (``>`` lines). Each section carries its own ``_Measured ..._``
    line, so the previous machine line is dropped (bench/run.py adds this
    run's).
    """
    blocks, tail, current = {}, [], None
    for line in previous.splitlines():
        if line.startswith('### '):
            current = next((name for name, title in SECTION_TITLES.items() if line.startswith(title)), None)
            blocks.setdefault(current, [])
        if line.startswith('_Machine: '):
            continue
        if line.startswith('>'):
            tail.append(line)
        elif current is not None:
            blocks[current].append(line)
    blocks.update(fresh)
    sections = []
    for name in ALL_SECTIONS:
        if blocks.get(name):
            sections += list(blocks[name]) + ([''] if blocks[name][-1] else [])
    return sections, tail


def change_files(tree, share, rng):
    """Rewrite ``share`` of the tree's files with new random bytes of the same size; returns (count, bytes)."""
    paths = sorted(os.path.join(d, f) for d, _subdirs, fs in os.walk(tree) for f in fs)
    chosen = rng.sample(paths, max(1, int(len(paths) * share)))
    for path in chosen:
        size = os.path.getsize(path)
        with open(path, 'wb') as handle:
            handle.write(rng.randbytes(size))
    return len(chosen), sum(os.path.getsize(path) for path in chosen)


def incremental_section(work):
    """mode incremental after 1 % of the files changed, against the full archive; restore of base + 6 links."""
    tree = os.path.join(work, 'inc-uploads')
    make_tree(tree)
    tree_mb = size_mb(tree)
    rng = random.Random(SEED + 1)
    dest = os.path.join(work, 'isnaps')
    common = dict(tier='full', paths=[tree], dest=dest, prefix='inc', slot='always', min_free_bytes=0,
                  file_checksums=True)
    fulls, incs = [], []
    for _repeat in range(REPEATS):
        shutil.rmtree(dest, ignore_errors=True)
        fulls.append(run_module('snapshot_archive', dict(common, mode='full'), work)[0])
        changed = change_files(tree, 0.01, rng)
        incs.append((run_module('snapshot_archive', dict(common, mode='incremental'), work), changed))
    full_s = statistics.median(r['snapshot']['duration_ms'] for r in fulls) / 1000.0
    full_w = statistics.median(r['snapshot']['write_ms'] for r in fulls) / 1000.0
    inc_s = statistics.median(r[0][0]['snapshot']['duration_ms'] for r in incs) / 1000.0
    inc_w = statistics.median(r[0][0]['snapshot']['write_ms'] for r in incs) / 1000.0
    (inc_res, inc_peak), (changed_n, changed_b) = incs[-1]
    for _link in range(5):  # the last repeat's base + link, and 5 more links: a chain of 6
        change_files(tree, 0.01, rng)
        run_module('snapshot_archive', dict(common, mode='incremental'), work)
    chain_drill = run_module('snapshot_restore', dict(dest=dest, tier='full', prefix='inc', scratch_dir=work), work)[0]
    full_dest = os.path.join(work, 'isnaps-full')
    shutil.rmtree(full_dest, ignore_errors=True)
    run_module('snapshot_archive', dict(common, dest=full_dest, mode='full'), work)
    full_drill = run_module('snapshot_restore', dict(dest=full_dest, tier='full', prefix='inc', scratch_dir=work),
                            work)[0]
    try:
        with open('/proc/loadavg') as handle:
            load = handle.read().split()[:3]
    except OSError:
        load = ['?']
    full_mb = fulls[-1]['snapshot']['size_bytes'] / 1e6
    inc_mb = inc_res['snapshot']['size_bytes'] / 1e6
    return [
        '### Incremental archives (%d files, %.0f MB; 1 %% of the files rewritten between runs)' % (FILES, tree_mb),
        '',
        '| method | time (median) | output | vs the full archive | note |', '| --- | --- | --- | --- | --- |',
        row('full archive (`mode: full`, file index), writing', full_w, full_mb, full_w),
        row('full archive, total with verification', full_s, full_mb, full_s),
        row('incremental after 1 % changed, writing', inc_w, inc_mb, full_w,
            '%d files / %.1f MB changed; peak RSS %.0f MB' % (changed_n, changed_b / 1e6, inc_peak)),
        row('incremental, total with verification', inc_s, inc_mb, full_s,
            '%d referenced' % inc_res['incremental']['referenced_files']),
        row('restore drill of the full archive', full_drill['rto_s'], None, full_drill['rto_s'],
            'files match' if full_drill['matches'] else 'MISMATCH'),
        row('restore drill of base + 6 incrementals', chain_drill['rto_s'], None, full_drill['rto_s'],
            '%d archives read, every file checked by sha256: %s' % (
                len(chain_drill['files']['chain']), 'match' if chain_drill['matches'] else 'MISMATCH')),
        '',
        'Targets: incremental ≤ 5 %% of the full archive\'s time → **%.1f %% writing, %.1f %% total**; output ∝ changed '
        'bytes → **%.1f MB for %.1f MB changed** (%.2f×). Load average during the run: %s.' % (
            100.0 * inc_w / full_w, 100.0 * inc_s / full_s, inc_mb, changed_b / 1e6, inc_mb / (changed_b / 1e6),
            ' '.join(load)),
    ]


def run():
    base = tempfile.mkdtemp(prefix='bench-snapshot-', dir=os.environ.get('BENCH_SNAPSHOT_DIR'))
    os.chmod(base, 0o755)
    work = os.path.join(base, 'work')
    os.mkdir(work)
    fresh = {}
    try:
        if 'database' in SECTIONS:
            cluster = PostgresCluster(os.path.join(base, 'pg'), durable=True).start()
            try:
                cluster.create_database(DB)
                fresh['database'] = database_section(cluster, work)
            finally:
                cluster.stop()
        for name, section in (('container', container_section), ('full', full_section),
                              ('smallfiles', smallfiles_section), ('incremental', incremental_section)):
            if name in SECTIONS:
                fresh[name] = section(work)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    stamp = '_Measured %s._' % datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%MZ')
    for name in fresh:
        fresh[name] = fresh[name] + ['', stamp]
    tail = []
    if set(SECTIONS) != set(ALL_SECTIONS) and os.path.exists(DOC):
        with open(DOC) as handle:
            lines, tail = merge_sections(handle.read(), fresh)
        tail = [''] + tail if tail else []
    else:
        lines = []
        for name in ALL_SECTIONS:
            lines += fresh.get(name, []) + ['']
    reduced = SCALE != 70 or TREE_MB != 2000 or FILES != 10000
    head = [
        '## snapshot_archive / snapshot_restore: dumps and archives', '',
        'Setup: throwaway PostgreSQL 15 cluster (fsync on) with an application-like database (random words, JSON, '
        'timestamps; about 4:1 with zstd); a test-image container with the same; a generated uploads tree of '
        'many small documents and incompressible images (fixed seeds); a small-files tree copied from system files. '
        'Median of %d runs per method. Module times are the module\'s '
        'own `duration_ms` run as on a target (no ansible-playbook start-up) and **include verification** '
        '(re-hash, decompression, `pg_restore -f /dev/null` or full archive listing).%s%s' % (
            REPEATS, ' **Reduced scale** on a shared 2-core machine (BENCH_SNAPSHOT_SCALE=%d, '
            'BENCH_SNAPSHOT_TREE_MB=%d, BENCH_SNAPSHOT_FILES=%d; `exact_count_max_rows` scaled to %d so the same '
            'tables are counted exactly as at scale 70); rerun at the defaults on a quiet machine.'
            % (SCALE, TREE_MB, FILES, EXACT_COUNT_MAX_ROWS) if reduced and 'database' in SECTIONS else '',
            ' This run: BENCH_SNAPSHOT_SECTIONS=%s; the other sections are from an earlier run.' % ','.join(SECTIONS)
            if set(SECTIONS) != set(ALL_SECTIONS) else ''),
        '',
    ]
    return re.sub('\n{3,}', '\n\n', '\n'.join(head + lines + tail)).rstrip('\n') + '\n'

# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probes of the host itself: disk, memory, load, processes, systemd units and commands."""

from __future__ import annotations

import os
import subprocess
import time

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms, format_argv

OUTPUT_TAIL_CHARS = 2000


def probe_disk(probe, finding, thresholds, timeout):
    entries = []
    for path in probe['path']:
        if not os.path.exists(path):
            finding.flag('unhealthy', 'path %s does not exist (missing mount or wrong path)' % path)
            continue
        stats = os.statvfs(path)
        used_blocks = stats.f_blocks - stats.f_bfree
        usable_blocks = used_blocks + stats.f_bavail
        used_pct = round(100.0 * used_blocks / usable_blocks, 1) if usable_blocks else 0.0
        used_inodes = stats.f_files - stats.f_ffree
        usable_inodes = used_inodes + stats.f_favail
        inodes_pct = round(100.0 * used_inodes / usable_inodes, 1) if usable_inodes else 0.0
        entries.append(dict(path=path, size_bytes=stats.f_blocks * stats.f_frsize,
                            used_bytes=used_blocks * stats.f_frsize, free_bytes=stats.f_bavail * stats.f_frsize,
                            used_pct=used_pct, inodes_used_pct=inodes_pct))
        finding.check(used_pct, thresholds['degraded_pct'], thresholds['unhealthy_pct'],
                      'disk %s %s %% used' % (path, used_pct))
        finding.check(inodes_pct, thresholds['degraded_pct'], thresholds['unhealthy_pct'],
                      'disk %s %s %% of inodes used' % (path, inodes_pct))
    finding.details['paths'] = entries
    finding.summary = ', '.join('%s %s %% used' % (e['path'], e['used_pct']) for e in entries)


def _read_meminfo():
    values = {}
    with open('/proc/meminfo') as handle:
        for line in handle:
            key, rest = line.split(':', 1)
            values[key] = int(rest.split()[0]) * 1024
    return values


def probe_memory(probe, finding, thresholds, timeout):
    info = _read_meminfo()
    total, available = info['MemTotal'], info.get('MemAvailable', info['MemFree'])
    used_pct = round(100.0 * (total - available) / total, 1)
    swap_total, swap_free = info.get('SwapTotal', 0), info.get('SwapFree', 0)
    finding.details.update(total_bytes=total, available_bytes=available, used_pct=used_pct,
                           swap_used_bytes=swap_total - swap_free)
    finding.check(used_pct, thresholds['degraded_pct'], thresholds['unhealthy_pct'],
                  'memory %s %% used' % used_pct)
    finding.summary = 'memory %s %% used' % used_pct


def probe_load(probe, finding, thresholds, timeout):
    with open('/proc/loadavg') as handle:
        load1, load5, load15 = (float(v) for v in handle.read().split()[:3])
    cpus = os.cpu_count() or 1
    per_cpu = round(load5 / cpus, 2)
    finding.details.update(load1=load1, load5=load5, load15=load15, cpus=cpus, load5_per_cpu=per_cpu)
    finding.check(per_cpu, thresholds['degraded_load'], thresholds['unhealthy_load'],
                  '5-minute load %s per CPU' % per_cpu)
    finding.summary = '5-minute load %s on %d CPUs' % (load5, cpus)


# --- process, systemd ---------------------------------------------------------

def _processes_named(name):
    """PIDs whose command name or argv[0] basename is ``name`` (zombies excluded)."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as handle:
                stat = handle.read()
            comm = stat[stat.index('(') + 1:stat.rindex(')')]
            state = stat[stat.rindex(')') + 2:][:1]
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                argv0 = handle.read().split(b'\0', 1)[0].decode('utf-8', 'replace')
        except (OSError, ValueError):
            continue  # the process ended while we looked
        if state == 'Z':
            continue
        if name in (comm, os.path.basename(argv0)) or (len(name) > 15 and comm == name[:15]):
            pids.append(int(entry))
    return sorted(pids)


def _check_pidfile(pidfile, finding):
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        finding.flag('unhealthy', 'pidfile %s unreadable: %s' % (pidfile, getattr(exc, 'strerror', None) or exc))
        return
    finding.details['pid'] = pid
    if not os.path.exists('/proc/%d' % pid):
        finding.flag('unhealthy', 'pidfile %s names pid %d, which is not running' % (pidfile, pid))


def probe_process(probe, finding, thresholds, timeout):
    if probe.get('pidfile'):
        _check_pidfile(probe['pidfile'], finding)
    name = probe.get('process_name')
    if name:
        pids = _processes_named(name)
        minimum = probe.get('min_count', 1)
        finding.details.update(process_name=name, count=len(pids), pids=pids[:20])
        if len(pids) < minimum:
            finding.flag('unhealthy', '%d process(es) named %s running, expected at least %d'
                         % (len(pids), name, minimum))
    finding.summary = ('%d %s process(es) running' % (finding.details['count'], name) if name
                       else 'pid %s running' % finding.details.get('pid'))


SYSTEMD_DEGRADED_STATES = ('activating', 'reloading', 'deactivating')


def probe_systemd(probe, finding, thresholds, timeout):
    unit = probe['unit']
    if not os.path.isdir('/run/systemd/system'):
        # Containers and minimal hosts run without systemd: fall back to the process table.
        fallback = dict(probe, process_name=probe.get('process_name') or unit.rsplit('.', 1)[0])
        finding.details['systemd'] = False
        probe_process(fallback, finding, thresholds, timeout)
        return
    argv = ['systemctl', 'show', unit, '--no-pager', '--property=LoadState,ActiveState,SubState,MainPID,NRestarts']
    finding.commands.append(format_argv(argv))
    try:
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        finding.flag('unhealthy', 'cannot ask systemd about %s: %s' % (unit, exc))
        return
    props = dict(line.split('=', 1) for line in completed.stdout.decode('utf-8', 'replace').splitlines() if '=' in line)
    finding.details.update(systemd=True, load_state=props.get('LoadState'), active_state=props.get('ActiveState'),
                           sub_state=props.get('SubState'), main_pid=int(props.get('MainPID') or 0),
                           restarts=int(props.get('NRestarts') or 0))
    active = props.get('ActiveState')
    if props.get('LoadState') == 'not-found':
        finding.flag('unhealthy', 'systemd unit %s not found' % unit)
    elif active in SYSTEMD_DEGRADED_STATES:
        finding.flag('degraded', 'systemd unit %s is %s' % (unit, active))
    elif active != 'active':
        finding.flag('unhealthy', 'systemd unit %s is %s (%s)' % (unit, active, props.get('SubState')))
    finding.summary = 'unit %s %s/%s' % (unit, active, props.get('SubState'))


def probe_command(probe, finding, thresholds, timeout):
    argv = [str(arg) for arg in probe['argv']]
    finding.commands.append(format_argv(argv))
    started = time.monotonic()
    try:
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=timeout, check=False, cwd=probe.get('chdir'))
    except FileNotFoundError:
        finding.flag('unhealthy', 'command %s not found (install it or give its full path in argv)' % argv[0])
        return
    except subprocess.TimeoutExpired:
        finding.flag('unhealthy', 'command %s did not finish within %s s (killed)' % (argv[0], timeout))
        return
    except OSError as exc:
        finding.flag('unhealthy', 'cannot run %s: %s' % (argv[0], exc.strerror or exc))
        return
    finding.response_ms = elapsed_ms(started)
    output = completed.stdout.decode('utf-8', 'replace')
    finding.details.update(rc=completed.returncode, output_tail=output[-OUTPUT_TAIL_CHARS:])
    if completed.returncode in (probe.get('degraded_rc') or []):
        finding.flag('degraded', '%s exited %d (listed in degraded_rc)' % (argv[0], completed.returncode))
    elif completed.returncode != 0:
        finding.flag('unhealthy', '%s exited %d' % (argv[0], completed.returncode))
    finding.summary = '%s exited %d in %s ms' % (argv[0], completed.returncode, finding.response_ms)

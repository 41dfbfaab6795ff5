# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance log's record schema: events, statuses, and what a record keeps of a result.

One place for the format that the callback writes and the report, the capacity
review and the Markdown log read:

- every line of ``maintenance.jsonl`` is one event (``EVENTS``) with
  ``schema_version``, ``event``, ``run_id`` and ``time`` first;
- a task's ``status`` is one of ``TASK_STATUSES``; a run's and a host's status one
  of ``HOST_STATUS_ORDER`` (worst first), or ``ENDED_WITHOUT_SUMMARY`` for a run
  whose end ansible never reported;
- ``record_fields`` is what is kept of a module's result (generic, no per-module code);
- ``json_line`` encodes an event as strict JSON (RFC 8259): a NaN or infinite number
  becomes ``null`` and its key path is listed under ``non_finite``.
"""

from __future__ import annotations

import json
import math

# 2: ``rescued`` and ``ignored`` task statuses (1 wrote ``failed`` with ``ignored: true``), ``non_finite``,
# ``pid`` in run_start, runs closed as ``ended_without_summary``.
SCHEMA_VERSION = 2
EVENTS = ('run_start', 'task', 'run_end')
TASK_STATUSES = ('ok', 'changed', 'failed', 'rescued', 'ignored', 'skipped', 'unreachable')
# Task statuses whose reason the log keeps (a failure, even one a rescue or ignore_errors dealt with).
FAILURE_STATUSES = ('failed', 'rescued', 'ignored', 'unreachable')
HOST_STATUS_ORDER = ('unreachable', 'failed', 'changed', 'ok', 'skipped')
ENDED_WITHOUT_SUMMARY = 'ended_without_summary'
ENDED_WITHOUT_SUMMARY_TEXT = 'ended without a summary (killed or fatal error)'
# Per-host counts of a run_end, in ansible's recap order (``unreachable`` is ansible's ``dark``).
STAT_KEYS = ('ok', 'changed', 'unreachable', 'failures', 'skipped', 'rescued', 'ignored')
STAT_OF_STATUS = dict(changed='changed', failed='failures', rescued='rescued', ignored='ignored', skipped='skipped',
                      unreachable='unreachable')

TEXT_LIMIT = 600          # characters kept of a msg or summary
ITEMS_LIMIT = 100         # entries kept of a name/status list (probes, tables, ...)
ITEM_METRICS_LIMIT = 20   # numbers kept per list entry
STDERR_TAIL = 300         # characters kept of the end of stderr
UNIT_SUFFIXES = ('_pct', '_bytes', '_ms', '_s', '_count', '_total')
# Top-level result lists that are open findings as a whole (security audit, pg_insight).
VIOLATION_KEYS = dict(violations='violation', findings='finding')


def is_number(value):
    # the exact types first: the report asks this of every figure of a year of a fleet's log
    return type(value) in (int, float) or (isinstance(value, (int, float)) and not isinstance(value, bool))  # pylint: disable=unidiomatic-typecheck


def clip(text, limit=TEXT_LIMIT):
    """One line of at most ``limit`` characters: the log is for reading, not for raw output."""
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + '…'


# --- strict JSON ----------------------------------------------------------------------------

def finite_copy(value, path, non_finite):
    """``value`` with every NaN/±Infinity float replaced by None; their key paths go to ``non_finite``."""
    if isinstance(value, float) and not math.isfinite(value):
        non_finite.append(path)
        return None
    if isinstance(value, dict):
        return dict((key, finite_copy(item, '%s.%s' % (path, key) if path else str(key), non_finite))
                    for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [finite_copy(item, '%s[%d]' % (path, index), non_finite) for index, item in enumerate(value)]
    return value


def json_line(record):
    """One event as a line of strict JSON (no NaN/Infinity tokens), newline included."""
    non_finite = []
    clean = finite_copy(record, '', non_finite)
    if non_finite:
        clean['non_finite'] = non_finite
    return json.dumps(clean, default=str, ensure_ascii=False, allow_nan=False) + '\n'


# --- what a record keeps of a module result ----------------------------------------------------

def numeric_leaves(value, prefix='', depth=0):
    """Numbers with a unit suffix in a list entry (or its ``details``), flattened to ``label key`` names.

    Lists of dicts are labelled by their ``path`` or ``name`` so that a disk probe's
    ``details.paths[].used_pct`` becomes ``/srv used_pct``: charts over time need stable names.
    """
    found = {}
    if depth > 3:
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            if is_number(item) and str(key).endswith(UNIT_SUFFIXES):
                found[(prefix + ' ' + str(key)).strip()] = item
            elif isinstance(item, (dict, list)):
                found.update(numeric_leaves(item, prefix, depth + 1))
    elif isinstance(value, list):
        for index, entry in enumerate(value):
            if isinstance(entry, dict):
                label = entry.get('path') or entry.get('name') or str(index)
                found.update(numeric_leaves(entry, (prefix + ' ' + str(label)).strip(), depth + 1))
    return found


def entry_label(entry):
    """What a list entry is about: its ``name``, ``path``, or ``database.schema.table``."""
    for key in ('name', 'path'):
        if isinstance(entry.get(key), str):
            return entry[key]
    if isinstance(entry.get('table'), str):
        return '.'.join(str(entry[key]) for key in ('database', 'schema', 'table') if entry.get(key))
    return None


def entry_status(entry):
    """An entry's ``status``, or whether its own ``violations`` list is empty (log policies)."""
    if isinstance(entry.get('status'), str):
        return entry['status']
    if isinstance(entry.get('violations'), list):
        return 'violation' if entry['violations'] else 'compliant'
    return None


def entry_message(entry):
    if isinstance(entry.get('message'), str):
        return entry['message']
    if isinstance(entry.get('violations'), list) and entry['violations']:
        return '; '.join(str(v.get('message') or v.get('code')) if isinstance(v, dict) else str(v)
                         for v in entry['violations'])
    return entry.get('reason') if isinstance(entry.get('reason'), str) else None


def is_status_list(value):
    return (isinstance(value, list) and bool(value)
            and all(isinstance(e, dict) and entry_label(e) is not None and entry_status(e) is not None for e in value))


def status_items(entries):
    """A compact copy of a list of entries with a name and a status (probes, tables, log policies...)."""
    items = []
    for entry in entries[:ITEMS_LIMIT]:
        item = dict(name=clip(entry_label(entry), 120), status=clip(entry_status(entry), 40))
        message = entry_message(entry)
        if message:
            item['message'] = clip(message, 240)
        numbers = numeric_leaves({k: v for k, v in entry.items() if is_number(v)})
        numbers.update(numeric_leaves(entry.get('details')))
        numbers = dict(sorted(numbers.items())[:ITEM_METRICS_LIMIT])
        if numbers:
            item['metrics'] = numbers
        items.append(item)
    return items


def violation_items(entries, kind):
    """A compact copy of a module's ``violations`` or ``findings``: scalar fields of dicts, strings as messages."""
    items = []
    for entry in entries[:ITEMS_LIMIT]:
        if isinstance(entry, dict):
            item = dict((str(k), clip(v, 240) if isinstance(v, str) else v) for k, v in entry.items()
                        if isinstance(v, (str, int, float, bool)) or v is None)
        else:
            item = dict(message=clip(entry, 240))
        item['kind'] = kind
        items.append(item)
    return items


def exception_line(value):
    """The last non-empty line of a traceback (``ValueError: ...``), or the text of a 2.19 error dict."""
    if isinstance(value, dict):
        value = value.get('msg') or value.get('message') or ''
    lines = [line.strip() for line in str(value or '').splitlines() if line.strip()]
    # 2.19 says "(traceback unavailable)" where there was no exception to show: nothing to tell then.
    return lines[-1] if lines and not lines[-1].startswith('(traceback unavailable') else ''


def own_reasons(result):
    """The reasons one result carries, in the order ansible puts them there."""
    parts = []
    for key in ('msg', 'reason'):
        if isinstance(result.get(key), str) and result[key].strip():
            parts.append(result[key].strip())
    verdict = result.get('failed_when_result')
    if isinstance(verdict, str) and verdict.strip():  # a failed_when that could not be evaluated
        parts.append('failed_when: %s' % verdict.strip())
    exception = exception_line(result.get('exception'))
    if exception and exception not in ' '.join(parts):
        parts.append(exception)
    if result.get('rc') not in (None, 0):
        parts.append('rc %s' % result['rc'])
    for key in ('stderr', 'module_stderr'):
        text = result.get(key)
        if isinstance(text, str) and text.strip():
            parts.append(text.strip()[-STDERR_TAIL:])
            break
    return parts


def failure_message(result):
    """Why a result failed: ``msg``, ``reason``, ``failed_when_result``, the exception, rc and stderr tail,
    and the failed loop items' own reasons (a failed loop says only "One or more items failed")."""
    parts = own_reasons(result)
    if isinstance(result.get('results'), list):
        for item in result['results']:
            if isinstance(item, dict) and item.get('failed') and not item.get('_ansible_no_log'):
                reasons = own_reasons(item)
                if reasons:
                    label = item.get('item') if isinstance(item.get('item'), (str, int, float)) else None
                    parts.append(('item %s: ' % label if label is not None else '') + ': '.join(reasons))
    seen = []
    for part in parts:
        if part not in seen:
            seen.append(part)
    return clip(': '.join(seen)) if seen else ''


def record_fields(result, failed=False):
    """What the log keeps of one module result: summary, metrics, msg and name/status lists.

    Generic by design (docs/DESIGN.md): every collection module returns ``summary`` and
    ``metrics``; any list of entries with a name (``name``, ``path`` or ``table``) and a status
    (``status``, or their own ``violations`` list) - health probes, vacuumed tables, log
    policies - and ``violations``/``findings`` lists are kept in compact form for the report.
    """
    fields = {}
    if isinstance(result.get('summary'), str):
        fields['summary'] = clip(result['summary'])
    if isinstance(result.get('metrics'), dict):
        fields['metrics'] = dict((str(k), v) for k, v in result['metrics'].items() if is_number(v))
    # ansible-core 2.19 strips ``failed`` from the results callbacks see: the event says it.
    message = failure_message(result) if failed else result.get('msg')
    if message and isinstance(message, str):
        fields['msg'] = clip(message)
    if isinstance(result.get('status'), str):
        fields['result_status'] = clip(result['status'], 40)
    lists = {}
    for key, value in result.items():
        if key in VIOLATION_KEYS and isinstance(value, list):
            fields.setdefault('violations', []).extend(violation_items(value, VIOLATION_KEYS[key]))
        elif key != 'results' and is_status_list(value):
            lists[key] = status_items(value)
    if lists:
        fields['items'] = lists
    if 'summary' not in fields and isinstance(result.get('results'), list):
        # A loop: keep the items' own summaries, skipping hidden (no_log) items.
        summaries = [r['summary'] for r in result['results']
                     if isinstance(r, dict) and isinstance(r.get('summary'), str) and not r.get('_ansible_no_log')]
        if summaries:
            fields['summary'] = clip('; '.join(summaries))
    return fields


def host_status(stats):
    """A host's status in a run from its counts: the worst that happened to it."""
    if stats.get('unreachable'):
        return 'unreachable'
    if stats.get('failures'):
        return 'failed'
    if stats.get('changed'):
        return 'changed'
    if stats.get('ok'):
        return 'ok'
    return 'skipped'


def overall_status(statuses):
    """A run's status: the worst of its hosts' statuses (``ok`` without hosts)."""
    return next((s for s in HOST_STATUS_ORDER if s in statuses), 'ok')


def counts_of(statuses):
    """Per-host counts, as ansible's recap keeps them, from a run's recorded task statuses.

    An ignored failure counts as ok and ignored, a rescued one as rescued, like ansible's
    strategy does; used for a run that ended without ansible's own summary.
    """
    counts = dict((key, 0) for key in STAT_KEYS)
    for status in statuses:
        if status in ('ok', 'changed', 'ignored'):
            counts['ok'] += 1
        if status in STAT_OF_STATUS:
            counts[STAT_OF_STATUS[status]] += 1
    return counts


def task_status(event):
    """A task event's status in today's schema (schema 1 wrote an ignored failure as ``failed`` + ``ignored``)."""
    status = str(event.get('status'))
    if status in ('failed', 'unreachable') and event.get('ignored'):
        return 'ignored'
    return status

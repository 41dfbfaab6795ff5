# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker hygiene: read the engine's containers, images and volumes, plan a safe cleanup, carry it out.

Why this shape:

* One plan, computed from one reading of the engine, drives both check mode
  and the real run, so ``--check`` lists exactly what a real run removes.
* Everything is removed one object at a time by ID, never through the
  engine's ``prune`` endpoints: those take only label/age filters, so name
  globs (``keep_containers``, ``name_patterns``) could not be honoured, and
  they would remove whatever matches at that moment, including objects that
  appeared after the plan was made.
* Containers go with ``v=False`` (their anonymous volumes stay) and images
  with ``noprune=True`` (their untagged parents stay): nothing is removed that
  the plan did not list.
* An image or volume still used by a container that stays is never planned;
  one whose only user is a container the plan removes is, so a second run
  has nothing left to do.
* Sizes come from the engine's disk-usage report (``docker system df -v``):
  a container's writable layer, an image's bytes not shared with other
  images, a volume's usage. They are what removing the object frees.
"""

from __future__ import annotations

import datetime
import fnmatch

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.time import iso_utc

try:
    import docker.errors
except ImportError:  # the module reports the missing library through missing_required_lib
    pass

STOPPED_STATES = ('created', 'exited', 'dead')
ZERO_TIME = '0001-01-01T00:00:00Z'


class HygieneError(Exception):
    """A refusal or engine failure already phrased for the operator."""


def parse_label_filters(items):
    """``["key", "key=value"]`` -> ``[(key, None), (key, value)]``; an empty key is refused."""
    filters = []
    for item in items:
        key, sep, value = str(item).partition('=')
        if not key.strip():
            raise HygieneError('only_labels entry %r has no label name: give "name" or "name=value"' % item)
        filters.append((key.strip(), value if sep else None))
    return filters


def labels_match(labels, label_filters):
    """Every filter holds: the label exists and, when a value is given, has exactly that value."""
    labels = labels or {}
    return all(key in labels and (value is None or labels[key] == value) for key, value in label_filters)


def name_matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def docker_time(text):
    """The engine's RFC 3339 timestamps (nanoseconds, ``Z``) as aware UTC datetimes; None for the zero time."""
    if not text or text.startswith('0001-01-01'):
        return None
    stamp = text.rstrip('Z').split('.')[0]
    return datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%S').replace(tzinfo=datetime.timezone.utc)


def read_engine(client):
    """One reading of the engine: the disk-usage report plus an inspect of every container.

    Returns (containers, images, volumes) as plain dicts; ``commands`` lists
    the CLI equivalents of the API calls made.
    """
    try:
        usage = client.api.df()
        containers = []
        for summary in usage.get('Containers') or []:
            try:
                details = client.api.inspect_container(summary['Id'])
            except docker.errors.NotFound:
                continue  # removed by someone else since the report: not ours to judge
            state = details.get('State') or {}
            containers.append(dict(
                id=summary['Id'], name=(details.get('Name') or '').lstrip('/'), image=summary.get('Image'),
                image_id=summary.get('ImageID'), status=state.get('Status'), restart_count=details.get('RestartCount', 0),
                health=(state.get('Health') or {}).get('Status'), labels=summary.get('Labels') or {},
                size_bytes=summary.get('SizeRw') or 0, created=docker_time(details.get('Created')),
                finished=docker_time(state.get('FinishedAt')), exit_code=state.get('ExitCode'),
                volumes=sorted(m['Name'] for m in details.get('Mounts') or [] if m.get('Type') == 'volume'),
            ))
    except (docker.errors.DockerException, OSError) as exc:  # requests' connection errors are OSErrors
        raise HygieneError('cannot read containers and disk usage from the Docker engine: %s' % exc) from exc
    images = []
    for image in usage.get('Images') or []:
        shared = image.get('SharedSize')
        size = image.get('Size') or 0
        images.append(dict(
            id=image['Id'], tags=[t for t in image.get('RepoTags') or [] if t != '<none>:<none>'],
            labels=image.get('Labels') or {}, parent_id=image.get('ParentId') or '',
            created=datetime.datetime.fromtimestamp(image.get('Created') or 0, datetime.timezone.utc),
            size_bytes=size - shared if shared is not None and 0 <= shared <= size else size,
        ))
    volumes = []
    for volume in usage.get('Volumes') or []:
        data = volume.get('UsageData') or {}
        volumes.append(dict(name=volume['Name'], labels=volume.get('Labels') or {},
                            size_bytes=data['Size'] if (data.get('Size') or 0) > 0 else 0))
    return containers, images, volumes


def plan(containers, images, volumes, options, now):
    """Decide what goes. Returns (container entries, image entries, volume entries), each with ``action`` and ``reason``.

    ``options``: prune_containers, prune_images, prune_volumes, keep_containers,
    name_patterns, label_filters, min_age_h. Containers are all reported (the
    status/restart review covers the host); images and volumes only when they
    are candidates (dangling / unused) that pass the filters.
    """
    patterns, label_filters = options['name_patterns'], options['label_filters']
    min_age = datetime.timedelta(hours=options['min_age_h'])
    entries = []
    for item in sorted(containers, key=lambda c: c['name']):
        entry = dict(item, action='keep', reason=None)
        if item['status'] in STOPPED_STATES and options['prune_containers']:
            stopped = item['finished'] or item['created']
            if patterns and not name_matches(item['name'], patterns):
                entry['reason'] = 'not matched by name_patterns'
            elif not labels_match(item['labels'], label_filters):
                entry['reason'] = 'not matched by only_labels'
            elif name_matches(item['name'], options['keep_containers']):
                entry['reason'] = 'kept by keep_containers'
            elif stopped and now - stopped < min_age:
                entry['reason'] = 'stopped %.1f h ago, under min_age_h %s' % (
                    (now - stopped).total_seconds() / 3600.0, options['min_age_h'])
            else:
                entry.update(action='remove', reason='%s since %s' % (item['status'], iso_utc(stopped) or 'unknown'))
        entries.append(entry)
    staying = [e for e in entries if e['action'] == 'keep']
    used_images = set(e['image_id'] for e in staying)
    parents = set(i['parent_id'] for i in images if i['parent_id'])
    image_entries = []
    if options['prune_images']:
        for image in sorted(images, key=lambda i: i['created']):
            # Dangling as `docker image prune` means it: untagged and no image built on it.
            if image['tags'] or image['id'] in parents or not labels_match(image['labels'], label_filters):
                continue
            if image['id'] in used_images:
                continue  # still the image of a container that stays
            image_entries.append(dict(image, action='remove', reason='dangling (untagged, no child image)'))
    used_volumes = set(v for e in staying for v in e['volumes'])
    volume_entries = []
    if options['prune_volumes']:
        for volume in sorted(volumes, key=lambda v: v['name']):
            if volume['name'] in used_volumes or not labels_match(volume['labels'], label_filters):
                continue
            if patterns and not name_matches(volume['name'], patterns):
                continue
            volume_entries.append(dict(volume, action='remove', reason='used by no container that stays'))
    return entries, image_entries, volume_entries


def _removal(call, what, entry, **kwargs):
    """Remove one object; its ``outcome`` becomes removed, gone (someone was faster), skipped (in use) or failed."""
    try:
        call(**kwargs)
        entry.update(outcome='removed')
    except docker.errors.NotFound:
        entry.update(outcome='gone', reason='already removed by someone else', size_bytes=0)
    except docker.errors.APIError as exc:
        conflict = exc.response is not None and exc.response.status_code == 409
        entry.update(outcome='skipped' if conflict else 'failed',
                     reason='%s: %s' % ('in use' if conflict else 'cannot remove %s' % what, exc.explanation or exc))
    except (docker.errors.DockerException, OSError) as exc:  # the engine stopped answering
        entry.update(outcome='failed', reason='cannot remove %s: %s' % (what, exc))


def execute(client, containers, images, volumes, check_mode):
    """Carry the plan out (or mark it planned), setting each entry's ``outcome``; return the removals' CLI equivalents."""
    commands = []
    for entry in containers:
        if entry['action'] != 'remove':
            entry['outcome'] = 'kept'
            continue
        commands.append('docker container rm %s' % entry['id'][:12])
        if check_mode:
            entry['outcome'] = 'planned'
        else:
            _removal(client.api.remove_container, 'container', entry, container=entry['id'], v=False)
    for entry in images:
        commands.append('docker image rm --no-prune %s' % entry['id'].split(':')[-1][:12])
        if check_mode:
            entry['outcome'] = 'planned'
        else:
            _removal(client.api.remove_image, 'image', entry, image=entry['id'], noprune=True)
    for entry in volumes:
        commands.append('docker volume rm %s' % entry['name'])
        if check_mode:
            entry['outcome'] = 'planned'
        else:
            _removal(client.api.remove_volume, 'volume', entry, name=entry['name'])
    return commands


def attention(containers, warn_restart_count):
    """Containers an operator should look at: unhealthy, restarting, or restarted at least ``warn_restart_count`` times."""
    found = []
    for entry in containers:
        reasons = []
        if entry['health'] == 'unhealthy':
            reasons.append('unhealthy')
        if entry['status'] == 'restarting':
            reasons.append('restarting')
        if warn_restart_count and entry['restart_count'] >= warn_restart_count:
            reasons.append('restarted %d times' % entry['restart_count'])
        if reasons:
            found.append(dict(name=entry['name'], status=entry['status'], health=entry['health'],
                              restart_count=entry['restart_count'], reasons=reasons))
    return found


def public_container(entry):
    return dict(name=entry['name'], id=entry['id'][:12], image=entry['image'], status=entry['status'],
                health=entry['health'], restart_count=entry['restart_count'], size_bytes=entry['size_bytes'],
                stopped_at=iso_utc(entry['finished']) if entry['status'] in STOPPED_STATES else None,
                outcome=entry['outcome'], reason=entry['reason'])


def public_image(entry):
    return dict(id=entry['id'], created=iso_utc(entry['created']), size_bytes=entry['size_bytes'],
                labels=entry['labels'], outcome=entry['outcome'], reason=entry['reason'])


def public_volume(entry):
    return dict(name=entry['name'], size_bytes=entry['size_bytes'], labels=entry['labels'],
                outcome=entry['outcome'], reason=entry['reason'])

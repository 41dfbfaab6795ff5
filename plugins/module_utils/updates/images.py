# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether each running container's image tag has moved in its registry.

The image a container runs is compared by manifest digest: the local one is
in the image's ``RepoDigests`` (recorded when it was pulled or pushed), the
registry's is asked through the engine (``GET /distribution/<ref>/json``),
which uses the engine's own registry credentials. A registry that cannot be
reached is reported for that image; the others go on.
"""

from __future__ import annotations


def _repository(reference):
    """``host:5000/app:1.2`` -> ``host:5000/app``; a digest reference keeps its repository."""
    name = reference.split('@', 1)[0]
    last = name.rsplit('/', 1)[-1]
    return name.rsplit(':', 1)[0] if ':' in last else name


def review_container(client, container):
    reference = (container.attrs.get('Config') or {}).get('Image') or ''
    entry = dict(container=container.name, image=reference, local_digest=None, registry_digest=None,
                 update_available=False, error=None)
    repository = _repository(reference)
    try:
        image = client.images.get(container.attrs['Image'])
        digests = [d.split('@', 1)[1] for d in image.attrs.get('RepoDigests') or [] if d.split('@', 1)[0] == repository]
        entry['local_digest'] = digests[0] if digests else None
        registry = client.images.get_registry_data(reference if ':' in reference.rsplit('/', 1)[-1]
                                                   else reference + ':latest')
        entry['registry_digest'] = registry.id
        if entry['local_digest'] is None:
            entry['error'] = 'the image of %s was built locally or loaded (no digest from %s): cannot compare' % (
                container.name, repository)
        else:
            entry['update_available'] = registry.id not in digests
    except Exception as exc:  # docker.errors.APIError / NotFound / requests errors, per image
        entry['error'] = 'cannot ask the registry of %s about %s: %s' % (
            container.name, reference, str(exc).strip()[:300])
    return entry


def review_images(client):
    return [review_container(client, c) for c in client.containers.list()]

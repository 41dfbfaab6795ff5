# -*- coding: utf-8 -*-
# Copyright: engineroom.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The http probe: one request, its status code, body substring and latency."""

from __future__ import annotations

import socket
import time

from ansible.module_utils.urls import open_url
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.engineroom.maintenance.plugins.module_utils.common.result import elapsed_ms

BODY_READ_LIMIT = 1024 * 1024


def probe_http(probe, finding, thresholds, timeout):
    url = probe['url']
    expected = probe.get('expect_status') or [200]
    method = probe.get('method') or 'GET'
    finding.commands.append('%s %s' % (method, url))
    started = time.monotonic()
    try:
        response = open_url(url, method=method, timeout=timeout, validate_certs=probe.get('validate_certs', True),
                            follow_redirects='safe' if probe.get('follow_redirects', True) else 'none',
                            headers=probe.get('headers') or None)
        status_code = response.getcode()
        body = response.read(BODY_READ_LIMIT)
    except HTTPError as exc:
        status_code = exc.code
        body = exc.read(BODY_READ_LIMIT) if exc.fp else b''
    except socket.timeout:
        finding.flag('unhealthy', '%s did not answer within %s s' % (url, timeout))
        return
    except URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.timeout) or 'timed out' in str(reason):
            finding.flag('unhealthy', '%s did not answer within %s s' % (url, timeout))
        elif isinstance(reason, socket.gaierror):
            finding.flag('unhealthy', 'cannot resolve the host of %s: %s' % (url, reason))
        else:
            finding.flag('unhealthy', 'cannot reach %s: %s' % (url, reason))
        return
    except Exception as exc:  # pylint: disable=broad-except
        # open_url raises ssl/connection errors of several types; each is a finding.
        finding.flag('unhealthy', 'cannot reach %s: %s' % (url, exc))
        return
    finding.response_ms = elapsed_ms(started)
    finding.details.update(status_code=status_code, body_bytes=len(body))
    if status_code not in expected:
        finding.flag('unhealthy', '%s answered HTTP %s, expected %s' % (url, status_code, expected))
    substring = probe.get('body_contains')
    if substring is not None:
        found = substring.encode('utf-8') in body
        finding.details['body_contains'] = found
        if not found:
            finding.flag('unhealthy', '%s body does not contain %r' % (url, substring))
    finding.check_latency(thresholds, '%s %s' % (method, url))
    finding.summary = '%s answered HTTP %s in %s ms' % (url, status_code, finding.response_ms)

#!/usr/bin/env bash
# Put the collections molecule's docker driver needs into the venv (idempotent).
#
#   scripts/molecule-collections.sh [VENV]     # VENV defaults to $VENV or .venv
#
# Ansible Galaxy is not reachable, so community.docker, ansible.posix,
# community.library_inventory_filtering_v1 and awx.awx (for
# playbooks/awx_setup.yml) are taken from the `ansible` wheel on
# PyPI (cached in .cache/wheels) and extracted into the venv's site-packages,
# where ansible-core finds ansible_collections/ without any configuration.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${VENV:-${ROOT}/.venv}}"
ANSIBLE_VERSION="${ANSIBLE_WHEEL_VERSION:-12.3.0}"
WHEELS="${ROOT}/.cache/wheels"
COLLECTIONS=(community/docker ansible/posix community/library_inventory_filtering_v1 awx/awx)

log() { printf '[molecule-collections] %s\n' "$*" >&2; }

PY="${VENV}/bin/python"
if [ ! -x "${PY}" ]; then
    log "no python in ${VENV}; create it first: python3 -m venv .venv && .venv/bin/pip install -r requirements/test.txt"
    exit 1
fi
SITE="$("${PY}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
MARKER="${SITE}/ansible_collections/.engineroom-from-ansible-${ANSIBLE_VERSION}"

missing=0
for coll in "${COLLECTIONS[@]}"; do
    [ -d "${SITE}/ansible_collections/${coll}" ] || missing=1
done
if [ -f "${MARKER}" ] && [ "${missing}" = 0 ]; then
    log "collections from ansible ${ANSIBLE_VERSION} already in ${SITE}"
    exit 0
fi

mkdir -p "${WHEELS}"
WHEEL="$(find "${WHEELS}" -maxdepth 1 -name "ansible-${ANSIBLE_VERSION}-*.whl" | head -n 1)"
if [ -z "${WHEEL}" ]; then
    log "downloading ansible==${ANSIBLE_VERSION} (no deps) into ${WHEELS}"
    "${PY}" -m pip download --quiet --no-deps "ansible==${ANSIBLE_VERSION}" -d "${WHEELS}"
    WHEEL="$(find "${WHEELS}" -maxdepth 1 -name "ansible-${ANSIBLE_VERSION}-*.whl" | head -n 1)"
fi
[ -n "${WHEEL}" ] || { log "wheel for ansible ${ANSIBLE_VERSION} not found"; exit 1; }

log "extracting ${COLLECTIONS[*]} from $(basename "${WHEEL}") into ${SITE}"
"${PY}" - "${WHEEL}" "${SITE}" "${COLLECTIONS[@]}" <<'PYEOF'
import os
import shutil
import sys
import zipfile

wheel, site, *collections = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    names = zf.namelist()
    for coll in collections:
        prefix = f"ansible_collections/{coll}/"
        members = [n for n in names if n.startswith(prefix)]
        if not members:
            sys.exit(f"{prefix} not found in {wheel}")
        dest = os.path.join(site, "ansible_collections", coll)
        shutil.rmtree(dest, ignore_errors=True)
        for member in members:
            zf.extract(member, site)
        print(f"  {coll}: {len(members)} files")
PYEOF
touch "${MARKER}"
"${VENV}/bin/ansible-galaxy" collection list 2>/dev/null \
    | grep -E '^(community\.docker|ansible\.posix|community\.library_inventory_filtering_v1|awx\.awx) ' >&2 || true

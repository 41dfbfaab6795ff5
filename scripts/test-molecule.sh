#!/usr/bin/env bash
# The molecule entry point `make test` calls.
#
#   scripts/test-molecule.sh                 # molecule test --all
#   scripts/test-molecule.sh default other   # only these scenarios, one by one
#
# Environment: VENV (default .venv), MOLECULE_TEST_IMAGE
# (default engineroom-maintenance-test:bookworm), MOLECULE_OPTS (extra
# arguments for `molecule test`, e.g. "--destroy never").
#
# Steps: venv (created from requirements/test.txt if molecule is missing),
# docker engine, local test image, driver collections, collection symlink,
# then `molecule test` from the repo root (scenarios: extensions/molecule/*/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
VENV="${VENV:-${ROOT}/.venv}"
export MOLECULE_TEST_IMAGE="${MOLECULE_TEST_IMAGE:-engineroom-maintenance-test:bookworm}"

log() { printf '[test-molecule] %s\n' "$*" >&2; }
start=${SECONDS}

if [ ! -x "${VENV}/bin/molecule" ]; then
    log "creating ${VENV} from requirements/test.txt"
    [ -x "${VENV}/bin/python" ] || python3 -m venv "${VENV}"
    "${VENV}/bin/pip" install --quiet -r requirements/test.txt
fi

bash "${ROOT}/scripts/docker-engine.sh"
TEST_IMAGE="${MOLECULE_TEST_IMAGE}" bash "${ROOT}/scripts/build-test-image.sh"
# The real_hosts scenario's Debian 11/12/13 images (cached in the image store by recipe hash).
bash "${ROOT}/scripts/build-host-images.sh"
bash "${ROOT}/scripts/molecule-collections.sh" "${VENV}"

# engineroom.maintenance resolves from the checkout (same as `make collection-link`).
LINK="${ROOT}/collections/ansible_collections/engineroom/maintenance"
if [ ! -e "${LINK}" ] || [ -L "${LINK}" ]; then
    mkdir -p "$(dirname "${LINK}")"
    ln -sfn ../../.. "${LINK}"
fi

export VIRTUAL_ENV="${VENV}"
export PATH="${VENV}/bin:${PATH}"
# The checkout's collections first; the driver's collections are found in the
# venv's site-packages (ansible scans ansible_collections/ on sys.path).
export ANSIBLE_COLLECTIONS_PATH="${ROOT}/collections"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
export PY_COLORS="${PY_COLORS:-0}"

read -r -a opts <<<"${MOLECULE_OPTS:-}"
status=0
if [ "$#" -eq 0 ]; then
    log "molecule test --all"
    molecule test --all "${opts[@]}" || status=$?
else
    for scenario in "$@"; do
        log "molecule test -s ${scenario}"
        molecule test -s "${scenario}" "${opts[@]}" || { status=$?; break; }
    done
fi

log "finished with status ${status} in $((SECONDS - start))s"
exit "${status}"

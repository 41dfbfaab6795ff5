#!/usr/bin/env bash
# Run ansible-lint (production profile, offline; settings in .ansible-lint and
# .yamllint) on this checkout. Exits non-zero on any finding.
#
#   scripts/test-lint.sh                       # the whole repository
#   scripts/test-lint.sh playbooks/x.yml       # extra arguments go to ansible-lint
#
# The collection is resolved the way ansible-playbook resolves it from a
# checkout: ANSIBLE_COLLECTIONS_PATH = ./collections (where
# ansible_collections/engineroom/maintenance is a symlink to this directory)
# followed by the venv's site-packages (community.docker & co.).
# Nothing is fetched from Ansible Galaxy (offline: true in .ansible-lint).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-$ROOT/.venv}

log() { printf '==> %s\n' "$*" >&2; }

if [[ ! -x "$VENV/bin/ansible-lint" ]]; then
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    log "installing requirements/test.txt into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements/test.txt
fi

shopt -s nullglob
ignore_files=(.ansible-lint-ignore .config/ansible-lint-ignore.txt)
shopt -u nullglob
for f in "${ignore_files[@]}"; do
    if [[ -e "$f" ]]; then
        log "ignore files are not allowed here: $f"
        exit 2
    fi
done

link=collections/ansible_collections/engineroom/maintenance
if [[ -L "$link" || ! -e "$link" ]]; then
    mkdir -p collections/ansible_collections/engineroom
    ln -sfn ../../.. "$link"
fi

site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export ANSIBLE_COLLECTIONS_PATH="$ROOT/collections:$site"
export PATH="$VENV/bin:$PATH"

log "ansible-lint $* (ANSIBLE_COLLECTIONS_PATH=$ANSIBLE_COLLECTIONS_PATH)"
ansible-lint "$@"

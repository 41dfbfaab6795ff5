#!/usr/bin/env bash
# Run `ansible-test sanity` on this collection, offline (PyPI and Debian apt
# are the only hosts reached), with no tests/sanity/ignore-*.txt file.
#
#   scripts/test-sanity.sh                  # every sanity test that applies
#   scripts/test-sanity.sh --test pylint    # extra arguments go to ansible-test
#
# What it does, and why (details: docs/TESTING.md):
#   1. installs shellcheck and rsync with apt-get when they are missing;
#   2. creates .cache/sanity-venv with ansible-core (requirements/sanity.txt),
#      which provides ansible-test; reinstalled only when the pins change;
#   3. seeds ~/.ansible/test/cache/get_pip_<ver>.py with a small stand-in that
#      installs pip from a pip wheel downloaded from PyPI into
#      .cache/sanity/wheels: ansible-test creates one virtualenv per sanity
#      test (even with --local) and bootstraps pip in it with a get-pip.py that
#      it would otherwise download from a host this machine cannot reach;
#   4. copies the checkout (rsync) to
#      .cache/ansible-test/ansible_collections/engineroom/maintenance, since
#      ansible-test needs a real path of that shape, with an empty git
#      repository in it so that ansible-test lists the copied files;
#   5. runs `ansible-test sanity --local --python X.Y` there; its exit status
#      is this script's (non-zero on any sanity error).
# Re-runs reuse everything (venvs under ~/.ansible/test/venv are cached by
# ansible-test itself, keyed by their pinned requirements).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PYTHON=${PYTHON:-python3}
CACHE="$ROOT/.cache"
VENV="$CACHE/sanity-venv"
WHEELS="$CACHE/sanity/wheels"
COLL="$CACHE/ansible-test/ansible_collections/engineroom/maintenance"
GET_PIP_MARKER='# engineroom.maintenance: offline get-pip stand-in'

log() { printf '==> %s\n' "$*" >&2; }

# --- 0. no ignore files ------------------------------------------------------
shopt -s nullglob
ignore_files=(tests/sanity/ignore-*.txt)
shopt -u nullglob
if ((${#ignore_files[@]})); then
    log "ignore files are not allowed here: ${ignore_files[*]}"
    exit 2
fi

# --- 1. system tools -----------------------------------------------------------
missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- 2. the venv that provides ansible-test -----------------------------------
stamp="$VENV/.requirements.sha256"
want=$(cat requirements/sanity.txt requirements/controller.txt | sha256sum | cut -d' ' -f1)
if [[ ! -x "$VENV/bin/ansible-test" || ! -f "$stamp" || $(cat "$stamp") != "$want" ]]; then
    log "creating $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements/sanity.txt
    echo "$want" >"$stamp"
fi
PYVER=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# --- 3. offline stand-in for ansible-test's get-pip.py ------------------------
# ansible-test pins the pip it bootstraps (get_venv_packages() in
# ansible_test/_internal/python_requirements.py) and looks for the bootstrap
# script in ~/.ansible/test/cache/get_pip_<ver>.py before downloading it.
PIP_VERSION=$("$VENV/bin/python" - <<'EOF'
import pathlib, re, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / '_internal' / 'python_requirements.py'
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
EOF
)
pip_wheel="$WHEELS/pip-$PIP_VERSION-py3-none-any.whl"
if [[ ! -f "$pip_wheel" ]]; then
    log "downloading pip $PIP_VERSION wheel from PyPI"
    mkdir -p "$WHEELS"
    "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps \
        -d "$WHEELS" "pip==$PIP_VERSION"
fi
get_pip="$HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
get_pip_text="$GET_PIP_MARKER
# Written by scripts/test-sanity.sh. ansible-test runs this file as the
# get-pip.py it would download from a host this machine cannot reach, with
# arguments such as 'pip==$PIP_VERSION --no-setuptools --no-wheel'. It does
# what get-pip.py does, with pip taken from a wheel that lies on disk.
import sys
WHEEL = '$pip_wheel'
sys.path.insert(0, WHEEL)
from pip._internal.cli.main import main  # noqa: E402
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel', '--no-pip')]
sys.exit(main(['install', '--upgrade', '--force-reinstall', '--no-index',
               '--find-links', '$WHEELS'] + args))"
if [[ ! -f "$get_pip" ]] || { grep -qxF "$GET_PIP_MARKER" "$get_pip" && [[ $(cat "$get_pip") != "$get_pip_text" ]]; }; then
    log "writing $get_pip"
    mkdir -p "$(dirname "$get_pip")"
    printf '%s\n' "$get_pip_text" >"$get_pip"
fi

# --- 4. a checkout at .../ansible_collections/engineroom/maintenance ----------
mkdir -p "$COLL"
rsync -a --delete --delete-excluded --filter='P /.git/' \
    --exclude=/.venv --exclude=/.cache --exclude=/.git --exclude=/collections \
    --exclude=/.demo --exclude=/tests/output --exclude=/.pytest_cache \
    --exclude=/bench/results --exclude=/maintenance-log \
    --exclude='/engineroom-maintenance-*.tar.gz' \
    --exclude=__pycache__ --exclude='*.pyc' \
    "$ROOT/" "$COLL/"
# ansible-test lists a collection's files with git when it finds a .git in the
# collection root or above it; without one here it would find this repo's .git,
# where .cache/ is ignored, and see no file at all. An empty repository makes
# every copied file an untracked (and so listed) file, .gitignore applied.
if [[ ! -d "$COLL/.git" ]]; then
    git -C "$COLL" init -q
fi

# --- 5. run ------------------------------------------------------------------
cd "$COLL"
log "ansible-test sanity --local --python $PYVER $*"
"$VENV/bin/ansible-test" sanity --local --python "$PYVER" "$@"

#!/usr/bin/env bash
# Install the Debian packages a make target needs, only those missing (idempotent, quick when done).
#
#   scripts/os-packages.sh demo   # what `make demo` needs
#   scripts/os-packages.sh test   # what `make test` needs (a superset)
#   scripts/os-packages.sh PKG... # just these packages (used by the other scripts)
set -euo pipefail

demo_packages=(python3-venv postgresql-15 postgresql-client-15 make git)
test_packages=("${demo_packages[@]}" redis-server redis-tools nginx-light zstd shellcheck rsync docker.io iptables mmdebstrap
               debian-archive-keyring ca-certificates procps chromium logrotate
               dpkg-dev nodejs docker-registry systemd systemd-journal-remote iproute2)

case "${1:-}" in
    demo) wanted=("${demo_packages[@]}") ;;
    test) wanted=("${test_packages[@]}") ;;
    '') echo "usage: $0 demo|test|PACKAGE..." >&2; exit 2 ;;
    *) wanted=("$@") ;;
esac
# npm: shipped inside nodejs by NodeSource's packages, a package of its own in Debian's.
if [ "${1:-}" = test ] && ! command -v npm >/dev/null 2>&1; then wanted+=(npm); fi

missing=()
for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${package}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "[os-packages] installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a system cluster on 5432; the sandbox and the
# tests start their own clusters on free ports, so the system one is not needed.

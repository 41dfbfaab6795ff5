#!/usr/bin/env bash
# Build the "real host" test images, one per Debian release, each like an application
# server of the fleets this collection is for (issue: real hosts over SSH with become):
#
#   engineroom-host:bullseye   Debian 11, Python 3.9,  PostgreSQL 13
#   engineroom-host:bookworm   Debian 12, Python 3.11, PostgreSQL 15
#   engineroom-host:trixie     Debian 13, Python 3.13, PostgreSQL 17
#
# Each has sshd (key-only), sudo, Debian's packaged PostgreSQL cluster (<ver>/main, started by
# the image's entry point with pg_ctlcluster: no systemd), logrotate, zstd, an application
# user `app` owning /srv/app (uploads, logs, .env) and a `deploy` user with passwordless sudo
# and no password at all (SSH keys only; the tests install their public key at start).
#
#   scripts/build-host-images.sh                 # all three (each skipped when up to date)
#   scripts/build-host-images.sh bookworm        # one
#   FORCE=1 scripts/build-host-images.sh         # rebuild
#
# An image is up to date when its label engineroom.recipe equals the sha256 of this script
# (the recipe): Docker's image store is the cache, shared by every clone on the machine.
# Nothing can be pulled from a registry: mmdebstrap builds the root filesystem from Debian's
# mirror and `docker import` loads it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECIPE="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${ENGINEROOM_CACHE:-/var/cache/engineroom}"

log() { printf '[build-host-images] %s\n' "$*" >&2; }

pg_major() {
    case "$1" in
        bullseye) echo 13 ;;
        bookworm) echo 15 ;;
        trixie) echo 17 ;;
        *) log "unknown suite $1 (bullseye, bookworm or trixie)"; exit 2 ;;
    esac
}

build() {
    local suite="$1" pg image built rootfs include
    pg="$(pg_major "${suite}")"
    image="engineroom-host:${suite}"
    built="$(docker image inspect -f '{{ index .Config.Labels "engineroom.recipe" }}' "${image}" 2>/dev/null || true)"
    if [ "${FORCE:-0}" != "1" ] && [ "${built}" = "${RECIPE}" ]; then
        log "${image} up to date"
        return 0
    fi
    local packages=(
        python3 python3-psycopg2
        "postgresql-${pg}" "postgresql-client-${pg}"
        openssh-server sudo logrotate zstd procps iproute2 lsof ca-certificates locales-all
    )
    # Debian 11 has no python3-zstandard: its snapshots fall back to gzip, as on a real host.
    [ "${suite}" = bullseye ] || packages+=(python3-zstandard)
    include="$(IFS=,; echo "${packages[*]}" | sed 's/,,*/,/g; s/,$//')"
    mkdir -p "${CACHE}"
    rootfs="$(mktemp "${CACHE}/host-${suite}-XXXXXX.tar")"
    trap 'rm -f "${rootfs}"' RETURN
    log "mmdebstrap ${suite} (PostgreSQL ${pg}) -> ${image}"
    # mmdebstrap runs the hooks with the chroot path as $1: single quotes on purpose.
    # shellcheck disable=SC2016
    mmdebstrap \
        --variant=apt \
        --include="${include}" \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --customize-hook="test -f \"\$1/etc/postgresql/${pg}/main/postgresql.conf\" || chroot \"\$1\" pg_createcluster ${pg} main" \
        --customize-hook='chroot "$1" useradd --create-home --shell /bin/bash app' \
        --customize-hook='chroot "$1" useradd --create-home --shell /bin/bash deploy' \
        --customize-hook='chroot "$1" passwd --lock deploy' \
        --customize-hook='echo "deploy ALL=(ALL) NOPASSWD: ALL" > "$1/etc/sudoers.d/deploy" && chmod 0440 "$1/etc/sudoers.d/deploy"' \
        --customize-hook='mkdir -p "$1/home/deploy/.ssh" && chmod 0700 "$1/home/deploy/.ssh" && chroot "$1" chown deploy:deploy /home/deploy/.ssh' \
        --customize-hook='printf "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\nUseDNS no\n" > "$1/etc/ssh/sshd_config.d/engineroom.conf"' \
        --customize-hook='chroot "$1" ssh-keygen -A' \
        --customize-hook='mkdir -p "$1/srv/app/uploads/2026" "$1/srv/app/logs" && printf "DATABASE_URL=postgres://app:app@localhost/app\n" > "$1/srv/app/.env" && chmod 0600 "$1/srv/app/.env"' \
        --customize-hook='for i in 1 2 3 4 5; do head -c 20000 /dev/urandom > "$1/srv/app/uploads/2026/doc$i.bin"; done; printf "2026-12-01T00:00:00Z INFO started\n2026-12-01T00:00:01Z ERROR connection refused\n" > "$1/srv/app/logs/app.log"' \
        --customize-hook='chroot "$1" chown -R app:app /srv/app' \
        --customize-hook='mkdir -p "$1/run/sshd"' \
        --customize-hook="printf '#!/bin/sh\n# Boot what systemd would: the PostgreSQL cluster and sshd.\nmkdir -p /run/sshd /run/postgresql && chown postgres:postgres /run/postgresql\npg_ctlcluster ${pg} main start\nexec /usr/sbin/sshd -D -e\n' > \"\$1/usr/local/sbin/engineroom-boot\" && chmod 0755 \"\$1/usr/local/sbin/engineroom-boot\"" \
        --customize-hook='rm -rf "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/*' \
        "${suite}" "${rootfs}" "${MIRROR}"
    docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/usr/local/sbin/engineroom-boot"]' \
        --change "LABEL engineroom.recipe=${RECIPE}" \
        --change "LABEL engineroom.postgresql=${pg}" \
        "${rootfs}" "${image}" >/dev/null
    log "built ${image}"
}

command -v mmdebstrap >/dev/null 2>&1 || "${ROOT}/scripts/os-packages.sh" mmdebstrap debian-archive-keyring
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bullseye bookworm trixie)
for suite in "${suites[@]}"; do
    build "${suite}"
done

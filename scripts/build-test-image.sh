#!/usr/bin/env bash
# Build the local molecule test image (idempotent: does nothing if the tag exists
# and was built from the same package list, recorded in the image's label).
#
#   scripts/build-test-image.sh            # builds engineroom-maintenance-test:bookworm
#   FORCE=1 scripts/build-test-image.sh    # rebuild even if the tag exists
#
# Nothing can be pulled from a registry, so the root filesystem is made with
# mmdebstrap from the host's Debian mirror and loaded with `docker import`.
# The image contains PostgreSQL 15 with the cluster 15/main (not running: no
# systemd in the containers, molecule's prepare.yml runs pg_ctlcluster).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ROOT}/.cache"
IMAGE="${TEST_IMAGE:-engineroom-maintenance-test:bookworm}"
SUITE="bookworm"
PACKAGES=(
    python3 python3-psycopg2 python3-docker python3-requests
    postgresql-15 postgresql-client-15
    procps iproute2 zstd ca-certificates
    python3-zstandard logrotate nginx-light lsof
)
PACKAGES_LABEL="$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"

log() { printf '[build-test-image] %s\n' "$*" >&2; }

built_from="$(docker image inspect -f '{{ index .Config.Labels "engineroom.packages" }}' "${IMAGE}" 2>/dev/null || true)"
if [ "${FORCE:-0}" != "1" ] && [ "${built_from}" = "${PACKAGES_LABEL}" ]; then
    log "${IMAGE} already present"
    exit 0
fi

command -v mmdebstrap >/dev/null 2>&1 || "${ROOT}/scripts/os-packages.sh" mmdebstrap debian-archive-keyring

# Use the mirror this machine is configured with (deb822 or one-line format,
# mmdebstrap reads both as files); fall back to deb.debian.org.
MIRROR="http://deb.debian.org/debian"
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ] && grep -Eq "^[^#]*${SUITE}" "$f"; then
        MIRROR="$f"
        break
    fi
done

mkdir -p "${CACHE}"
ROOTFS="${CACHE}/test-image-rootfs.tar"
trap 'rm -f "${ROOTFS}"' EXIT

include="$(IFS=,; echo "${PACKAGES[*]}")"
log "mmdebstrap ${SUITE} (mirror: ${MIRROR}) -> ${ROOTFS}"
# mmdebstrap runs the hooks with the chroot path as $1: single quotes on purpose.
# shellcheck disable=SC2016
mmdebstrap \
    --variant=apt \
    --include="${include}" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='test -f "$1/etc/postgresql/15/main/postgresql.conf" || chroot "$1" pg_createcluster 15 main' \
    --customize-hook='rm -rf "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/*' \
    "${SUITE}" "${ROOTFS}" "${MIRROR}"

log "docker import -> ${IMAGE}"
docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["sleep","infinity"]' \
    --change "LABEL engineroom.packages=${PACKAGES_LABEL}" \
    "${ROOTFS}" "${IMAGE}" >/dev/null
docker image ls "${IMAGE}"

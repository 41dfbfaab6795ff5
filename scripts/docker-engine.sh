#!/usr/bin/env bash
# Make sure a Docker engine is installed and answering (idempotent).
#
#   scripts/docker-engine.sh
#
# Installs docker.io from apt when dockerd is missing, then starts dockerd in
# the background (log: .cache/dockerd.log) when `docker info` fails, and waits
# until the engine answers. Works without systemd (CI containers, sandboxes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ROOT}/.cache"
WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"

log() { printf '[docker-engine] %s\n' "$*" >&2; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    "${ROOT}/scripts/os-packages.sh" docker.io iptables ca-certificates
fi

if docker info >/dev/null 2>&1; then
    log "engine already answering"
    exit 0
fi

mkdir -p "${CACHE}"
log "starting dockerd in the background (log: ${CACHE}/dockerd.log)"
# setsid + nohup: the daemon survives the end of this script and of make.
setsid nohup dockerd >>"${CACHE}/dockerd.log" 2>&1 </dev/null &

for _ in $(seq 1 "${WAIT_SECONDS}"); do
    if docker info >/dev/null 2>&1; then
        log "engine is up"
        exit 0
    fi
    sleep 1
done

log "dockerd did not answer within ${WAIT_SECONDS}s; last log lines:"
tail -n 30 "${CACHE}/dockerd.log" >&2 || true
exit 1

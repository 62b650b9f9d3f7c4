#!/usr/bin/env bash
# Build and smoke-test the service's image on a machine that reaches Debian's and PyPI's
# mirrors but not Docker Hub: the base image is made here with debootstrap (Debian 12, whose
# Python is 3.11), trusting this machine's own CA certificates (a TLS-inspecting egress proxy),
# then the Containerfile is built on it, run on SQLite, and asked /healthz and its HEALTHCHECK.
# Needs root, debootstrap and a running Docker daemon. Usage: deploy/build-image-offline.sh [TAG]
set -euo pipefail
tag="${1:-consent-service:local}"
base="local/debian-python:3.11"
here="$(cd "$(dirname "$0")/.." && pwd)"
if ! docker image inspect "$base" >/dev/null 2>&1; then
  rootfs="$(mktemp -d)"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$rootfs" update-ca-certificates
  tar -C "$rootfs" -c . | docker import - "$base"
  rm -rf "$rootfs"
fi
docker build -f "$here/Containerfile" --build-arg BASE="$base" -t "$tag" "$here"
name="consent-service-smoke-$$"
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$name" -p 127.0.0.1::8000 "$tag" \
  sh -c "consent-service db upgrade && exec consent-service serve --host 0.0.0.0 --port 8000 --workers 2" >/dev/null
port="$(docker port "$name" 8000/tcp | head -1 | sed 's/.*://')"
for _ in $(seq 60); do
  status="$(docker inspect --format '{{.State.Health.Status}}' "$name")"
  [ "$status" = healthy ] && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/healthz"; echo
echo "user: $(docker inspect --format '{{.Config.User}}' "$name"), health: $status"
[ "$status" = healthy ]

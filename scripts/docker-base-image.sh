#!/usr/bin/env bash
# Build a Debian base image for the Docker sandbox without a registry, and cache it.
#
#   scripts/docker-base-image.sh [TAG]        (default TAG: codedance-base:bookworm)
#
# debootstrap (bookworm, minbase, python3 + pip + CA certificates) from the apt mirror
# this machine uses, the `tools` extra pip-installed inside a chroot (pip there gets
# the host's CA bundle with --cert, for TLS-intercepting networks), then
# `tar | docker import`. The rootfs tarball is cached in $CODEDANCE_CI_CACHE (default
# /var/cache/codedance-ci), keyed by this script's content, so a later run only imports
# it (seconds). Needs root, debootstrap and a running Docker engine.
set -euo pipefail
tag="${1:-codedance-base:bookworm}"
cache="${CODEDANCE_CI_CACHE:-/var/cache/codedance-ci}"
here="$(cd "$(dirname "$0")" && pwd)"
key="$(sha256sum "$here/docker-base-image.sh" | cut -c1-12)"
tarball="$cache/base-$key.tar"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# The `tools` extra of pyproject.toml, as the sandbox image installs it.
packages=(numpy Pillow opencv-python-headless matplotlib sympy shapely)

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag is already on the engine"
  exit 0
fi
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  rootfs="$(mktemp -d /tmp/codedance-rootfs.XXXXXX)"
  trap 'umount "$rootfs/proc" 2>/dev/null || true; rm -rf "$rootfs"' EXIT
  echo "debootstrap bookworm into $rootfs (a few minutes)"
  debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
    bookworm "$rootfs" "$mirror" >/dev/null
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$rootfs/tmp/host-ca.pem"
  mount -t proc proc "$rootfs/proc"
  # env -i: the host's pip settings (find-links, local indexes) name host paths.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot "$rootfs" \
    python3 -m pip install -q --no-cache-dir --break-system-packages \
    --cert /tmp/host-ca.pem "${packages[@]}"
  umount "$rootfs/proc"
  rm -rf "$rootfs/tmp/host-ca.pem" "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  find "$cache" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
fi
echo "importing $tarball as $tag"
docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' "$tarball" "$tag" >/dev/null
docker image ls "$tag"

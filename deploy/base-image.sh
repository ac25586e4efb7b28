#!/usr/bin/env bash
# Build the base image from Debian packages, for machines that reach a Debian archive and a
# Python package index but no image registry (docs/operations.md, "Building without a registry").
#
#   deploy/base-image.sh            # import fedheads-base:bookworm unless it exists
#   deploy/base-image.sh --force    # rebuild it
#
# debootstrap lays out a minimal Debian bookworm root filesystem (python3 3.11, venv,
# ca-certificates) from the archive apt already uses on this host, and `docker import` turns it
# into an image. The Dockerfile takes it as BASE_IMAGE; deploy/postgres and deploy/redis build the
# stand-ins for the database and the broker on it (docker-compose.local.yml).
#
# Settings (environment): FEDHEADS_BASE_IMAGE (the tag, default fedheads-base:bookworm),
# FEDHEADS_DEBIAN_MIRROR (default: the first Debian archive in /etc/apt/sources.list*, else
# http://deb.debian.org/debian), FEDHEADS_DEBIAN_SUITE (default bookworm).
set -euo pipefail

IMAGE=${FEDHEADS_BASE_IMAGE:-fedheads-base:bookworm}
SUITE=${FEDHEADS_DEBIAN_SUITE:-bookworm}

if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE exists (deploy/base-image.sh --force rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

# The archive apt uses here: a "URIs:" (deb822) or "deb URI suite" line naming a .../debian archive.
host_mirror() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | sed -n -E 's#^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)([a-z]+://[^[:space:]]*/debian)/?([[:space:]].*)?$#\3#p' \
    | head -n 1 || true
}
MIRROR=${FEDHEADS_DEBIAN_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

ROOTFS=$(mktemp -d /var/tmp/fedheads-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT

echo "debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || { tail -n 30 "$ROOTFS.log" >&2; exit 1; }
rm -f "$ROOTFS.log"

# apt inside derived images: the same archive with updates and security, no recommends, and no
# service started by a package's install script (there is no init in a build container).
cat >"$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
SOURCES
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$ROOTFS/etc/apt/apt.conf.d/90fedheads"
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*.log

tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'CMD ["/bin/bash"]' \
  -m "debootstrap --variant=minbase $SUITE from $MIRROR" - "$IMAGE" >/dev/null
docker image ls "$IMAGE"

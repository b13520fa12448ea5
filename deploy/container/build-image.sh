#!/usr/bin/env bash
# Builds mmserve's container image (deploy/Dockerfile) with Podman, from
# Debian's own packages: no image registry is needed.
#   deploy/container/build-image.sh [--tag TAG] [--prebuilt BUILD_DIR] [--target STAGE]
# Without --prebuilt, the Dockerfile's build stage runs scripts/install-deps.sh
# and make release inside the image (about as long as a release build here).
# With it, the runtime stage takes this machine's release build, staged by
# deploy/container/stage.sh (what make test does: seconds, not a build).
# The base is a minimal Debian 12 made by mmdebstrap, cached as a tarball in
# ~/.cache/mmserve/container and imported as localhost/mmserve-debian:bookworm.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TAG=mmserve:latest
PREBUILT=""
TARGET=""  # a stage of the Dockerfile to stop at (install-deps builds python-env ahead)
while (($#)); do
  case $1 in
    --tag) TAG=$2; shift 2 ;;
    --prebuilt) PREBUILT=$2; shift 2 ;;
    --target) TARGET=$2; shift 2 ;;
    *) echo "usage: $0 [--tag TAG] [--prebuilt BUILD_DIR] [--target STAGE]" >&2; exit 2 ;;
  esac
done
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || {
    echo "build-image.sh: $tool is not installed (apt-get install podman runc mmdebstrap)" >&2
    exit 1
  }
done
# shellcheck source=deploy/container/podman.sh
. "$ROOT/deploy/container/podman.sh"
log() { printf '[build-image] %s\n' "$*"; }

CACHE=${MMSERVE_CACHE:-$HOME/.cache/mmserve}/container
BASE=localhost/mmserve-debian:bookworm
mkdir -p "$CACHE"
if [ ! -f "$CACHE/debian-bookworm-minbase.tar" ]; then
  log "making a minimal Debian 12 with mmdebstrap (once)"
  mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates bookworm \
    "$CACHE/debian-bookworm-minbase.tar.partial"
  mv "$CACHE/debian-bookworm-minbase.tar.partial" "$CACHE/debian-bookworm-minbase.tar"
fi
if ! "${PODMAN[@]}" image exists "$BASE"; then
  "${PODMAN[@]}" import --quiet "$CACHE/debian-bookworm-minbase.tar" "$BASE" >/dev/null
fi

args=(--build-arg "BASE=$BASE")
if [ -n "$TARGET" ]; then args+=(--target "$TARGET"); fi
# The host's CA bundle for the build's downloads (a TLS-intercepting proxy's
# CA is in it where there is one); MMSERVE_BUILD_CA=none: the image's own.
ca=${MMSERVE_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}
if [ "$ca" != none ] && [ -f "$ca" ]; then
  args+=(--volume "$ca:/run/build-ca.crt:ro" --build-arg BUILD_CA_BUNDLE=/run/build-ca.crt)
fi
if [ -n "$PREBUILT" ]; then
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  "$ROOT/deploy/container/stage.sh" "$PREBUILT" "$stage/opt/mmserve" >/dev/null
  args+=(--build-context "build=$stage")  # replaces the Dockerfile's build stage
fi
log "building $TAG"
# --format docker keeps HEALTHCHECK (the OCI format has no such field);
# --network host reaches Debian's and PyPI's mirrors as this machine does.
"${PODMAN[@]}" build --format docker --network host --pull=never "${ULIMITS[@]}" \
  "${args[@]}" -f "$ROOT/deploy/Dockerfile" -t "$TAG" "$ROOT"
# The Helm chart's default image is mmserve:<its appVersion>: tag that too.
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/deploy/helm/mmserve/Chart.yaml")
if [ "$TAG" = mmserve:latest ] && [ -n "$app_version" ]; then
  "${PODMAN[@]}" tag "$TAG" "mmserve:$app_version"
fi
log "built $TAG ($("${PODMAN[@]}" image inspect --format '{{.Size}}' "$TAG" | numfmt --to=iec))"

#!/usr/bin/env bash
# A real Python base image for the app's container, from packages this machine can reach:
# a Debian bookworm rootfs made by mmdebstrap from Debian's packages (python3, venv,
# useradd), plus the wheels of app/requirements.txt from PyPI under /wheels (pip then installs
# offline: PIP_NO_INDEX=1, PIP_FIND_LINKS=/wheels), then `docker import`.
#
# Cached in the engine: the image carries the sha256 of its inputs (this script,
# app/requirements.txt) as the label k3dtui.inputs, and is rebuilt only when they change.
# Usage: .ci/python-base-image.sh [TAG]   (default k3dtui-test/python-base:bookworm)
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-k3dtui-test/python-base:bookworm}"
suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages=python3,python3-venv,python-is-python3,ca-certificates

inputs="$(cat "$0" app/requirements.txt | sha256sum | cut -c1-32)"
have="$(docker image inspect -f '{{ index .Config.Labels "k3dtui.inputs" }}' "$tag" 2>/dev/null || true)"
if [ "$have" = "$inputs" ]; then
  echo "$tag is up to date (inputs $inputs)"
  exit 0
fi

if ! command -v mmdebstrap >/dev/null; then
  if [ "$(id -u)" != 0 ]; then echo "need mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; fi
  apt-get update -qq && apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi
PY="${PYTHON:-python3}"
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  echo "need pip for $PY to download the app's wheels" >&2; exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

# The wheels for the image's own Python (bookworm: CPython 3.11, glibc 2.36, x86_64/aarch64).
arch="$(uname -m)"
case "$arch" in x86_64|aarch64) ;; *) echo "unsupported machine $arch" >&2; exit 1 ;; esac
platforms=()
for p in manylinux_2_36 manylinux_2_34 manylinux_2_28 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1 linux; do
  platforms+=(--platform "${p}_${arch}")
done
cert=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cert=(--cert /etc/ssl/certs/ca-certificates.crt); fi
mkdir -p "$work/wheels"
# --isolated: PyPI itself, whatever local pip configuration this machine has
"$PY" -m pip download --isolated -q --disable-pip-version-check "${cert[@]}" --only-binary=:all: \
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none "${platforms[@]}" \
  -d "$work/wheels" -r app/requirements.txt

mmdebstrap --quiet --variant=minbase --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook="mkdir -p \"\$1/wheels\" && cp -a '$work/wheels/.' \"\$1/wheels/\"" \
  --customize-hook='rm -rf "$1/var/lib/apt/lists"/* "$1/var/cache/apt"/*' \
  "$suite" "$work/rootfs.tar" "$mirror"

docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8 PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels PIP_DISABLE_PIP_VERSION_CHECK=1' \
  -c 'CMD ["python3"]' \
  -c "LABEL k3dtui.inputs=$inputs" \
  "$work/rootfs.tar" "$tag" >/dev/null
echo "imported $tag in $(( $(date +%s) - start )) s (inputs $inputs)"

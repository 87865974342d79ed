#!/usr/bin/env bash
# Import a tiny local image from Debian's static busybox: there is no registry to pull from.
# Usage: .ci/busybox-image.sh [TAG]   (default k3dtui-test/busybox:latest)
set -euo pipefail
tag="${1:-k3dtui-test/busybox:latest}"
if docker image inspect "$tag" >/dev/null 2>&1; then exit 0; fi
bb="$(command -v busybox || true)"
if [ -z "$bb" ] || ! file "$bb" 2>/dev/null | grep -q static; then
  bb=/bin/busybox
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc"
cp "$bb" "$root/bin/busybox"
for cmd in sh sleep cat echo ls true env wget nc httpd; do ln -s busybox "$root/bin/$cmd"; done
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$tag" >/dev/null
echo "imported $tag"

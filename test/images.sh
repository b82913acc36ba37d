#!/usr/bin/env bash
# Builds the local images the tests and the demo run, without a registry: a root filesystem
# holding the static busybox from Debian's busybox-static package, imported with `docker import`.
# local/busybox:1 and local/busybox:2 differ by one file, so they are two different images.
# Idempotent: an image that exists is kept.
set -euo pipefail
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "test-images: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
for v in 1 2; do
  if docker image inspect "local/busybox:$v" >/dev/null 2>&1; then continue; fi
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/var/www"
  cp "$busybox" "$root/bin/busybox"
  for app in sh ash sleep echo cat ls httpd wget nc true false test env printf mkdir rm date id kill ps grep; do
    ln -s busybox "$root/bin/$app"
  done
  echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
  echo "nobody:x:65534:65534:nobody:/:/bin/sh" >> "$root/etc/passwd"
  echo "$v" > "$root/VERSION"
  echo "steward test image $v" > "$root/var/www/index.html"
  tar -C "$root" -c . | docker import -c 'CMD ["sh"]' - "local/busybox:$v" >/dev/null
  rm -rf "$root"
  echo "test-images: built local/busybox:$v"
done

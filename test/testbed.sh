#!/usr/bin/env bash
# Sets up everything Steward's tests and demo need on a Debian 12 machine, idempotently:
#   - Debian packages: docker.io (the engine), iptables, busybox-static (for local images), git,
#     gnupg, openssh-client and openssh-server (signatures and the SSH transport), age,
#     docker-registry and apache2-utils (secrets and a private registry)
#   - the git-shell account steward-git that the SSH tests' own sshd serves repositories as
#   - a running Docker engine (started in the background when no daemon answers)
#   - local images built without a registry (test/images.sh)
#   - a systemd image (debootstrap), and on amd64 qemu-user with an arm64 C library
#   - the project's npm dependencies and its build in dist/
# Run as root (or with sudo). Safe to run again: what is there is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v iptables >/dev/null || need+=(iptables)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -e /usr/lib/x86_64-linux-gnu/libatomic.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libatomic.so.1 ] || need+=(libatomic1)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v git >/dev/null || need+=(git)
command -v curl >/dev/null || need+=(curl ca-certificates)
command -v ssh-keygen >/dev/null || need+=(openssh-client)   # makes the SSH commit signatures the tests verify
command -v gpg >/dev/null || need+=(gnupg)                      # makes the OpenPGP commit signatures the tests verify
[ -x /usr/sbin/sshd ] || need+=(openssh-server)                 # the Git server over SSH (tests start their own sshd)
command -v age >/dev/null || need+=(age)                        # wraps the SOPS data keys the secrets tests decrypt
command -v docker-registry >/dev/null || need+=(docker-registry) # a registry that needs a login (tests start their own)
command -v htpasswd >/dev/null || need+=(apache2-utils)         # its htpasswd file
command -v openssl >/dev/null || need+=(openssl)                # the certificate of the HTTPS Git server (test/e2e/https.test.ts)
if [ ${#need[@]} -gt 0 ]; then
  echo "testbed: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The account the SSH tests log in as (test/helpers/sshd.ts): git-shell as its login shell, so
# a key can run git-upload-pack/receive-pack and nothing else; unlocked ('*': no password, but
# sshd refuses a locked account even with a key); repos owned by root are safe to serve.
if ! id steward-git >/dev/null 2>&1; then
  useradd --create-home --shell /usr/bin/git-shell steward-git
fi
usermod -p '*' steward-git
git config --file /home/steward-git/.gitconfig safe.directory '*'
mkdir -p /run/sshd

if ! docker version >/dev/null 2>&1; then
  echo "testbed: starting dockerd"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker version >/dev/null 2>&1 || { echo "testbed: dockerd did not start; see /var/log/dockerd.log" >&2; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi
echo "testbed: Docker $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

bash test/images.sh

# A real systemd for the Service tests and the demo: systemd as PID 1 in a container, from a
# minimal Debian root filesystem made by debootstrap from the machine's own Debian mirror.
if ! docker image inspect local/systemd:bookworm >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  mirror=$(grep -hoE '^URIs: *[^ ]+/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//')
  [ -n "$mirror" ] || mirror=$(grep -hoE '^deb +[^ ]+/debian/? ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  root=$(mktemp -d /var/tmp/steward-systemd-XXXX)
  echo "testbed: building local/systemd:bookworm with debootstrap from $mirror (about a minute)"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$root" "$mirror" >/var/log/steward-debootstrap.log 2>&1 \
    || { echo "testbed: debootstrap failed; see /var/log/steward-debootstrap.log" >&2; tail -5 /var/log/steward-debootstrap.log >&2; exit 1; }
  tar -C "$root" -c . | docker import - local/systemd:bookworm >/dev/null
  rm -rf "$root"
fi

# The arm64 package, executed on an amd64 machine (test/packaging/arm64.test.ts): qemu-user and
# an arm64 C library from Debian (libatomic is not included: the package carries its own). dpkg
# learns the arm64 architecture, which also lets packaging/build.sh fetch libatomic1:arm64.
sysroot=/var/cache/steward-arm64-root
if [ "$(dpkg --print-architecture)" = amd64 ] && { ! command -v qemu-aarch64-static >/dev/null || [ ! -e $sysroot/lib/ld-linux-aarch64.so.1 ]; }; then
  echo "testbed: qemu-user and an arm64 C library in $sysroot"
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -qq
  command -v qemu-aarch64-static >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
  debs=$(mktemp -d)
  (cd "$debs" && apt-get download -q libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 >/dev/null 2>&1)
  mkdir -p $sysroot
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" $sysroot; done
  rm -rf "$debs"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "testbed: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
echo "testbed: ready"

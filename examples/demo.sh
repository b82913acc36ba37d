#!/usr/bin/env bash
# Runs Steward against a real example, as on an edge box: a local Git server (git http-backend
# over HTTP) holding examples/fleet, a systemd host (systemd as PID 1 in a container, see
# TESTBED) with the agent inside, and the machine's Docker engine. Run as root from the repo:
#   bash examples/demo.sh          set up, push the example fleet, converge once, show the result
#   bash examples/demo.sh stop     stop the demo host and Git server, remove the demo containers
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
demo=/tmp/steward-demo
port=18418
host=steward-demo
steward() { docker exec "$host" node /opt/steward/dist/agent/main.js "$@"; }

if [ "${1:-}" = stop ]; then
  [ -f $demo/git-server.pid ] && kill "$(cat $demo/git-server.pid)" 2>/dev/null || true
  docker rm -f "$host" demo-web demo-heartbeat >/dev/null 2>&1 || true
  echo "demo stopped (files kept in $demo and /opt/kiosk)"
  exit 0
fi

bash test/testbed.sh
mkdir -p $demo/git $demo/etc /opt/kiosk
if ! curl -fsS "http://127.0.0.1:$port/_stats" >/dev/null 2>&1; then
  nohup node test/helpers/git-server.mjs $demo/git --port $port >$demo/git-server.log 2>&1 &
  echo $! >$demo/git-server.pid
  for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/_stats" >/dev/null 2>&1 && break; sleep 0.1; done
fi
if [ ! -d $demo/git/fleet.git ]; then
  git init -q --bare -b main $demo/git/fleet.git
  work=$(mktemp -d)
  cp -r examples/fleet/. "$work"
  git -C "$work" init -q -b main
  git -C "$work" add -A
  git -C "$work" -c user.name=ops -c user.email=ops@example.com commit -qm "example fleet"
  git -C "$work" push -q "http://127.0.0.1:$port/fleet.git" main
  rm -rf "$work"
fi

cat >$demo/etc/agent.yaml <<YAML
host: demo
labels: { site: lab, role: kiosk }
source:
  url: http://127.0.0.1:$port/fleet.git
  paths: [hosts/\${host}, groups/\${labels.role}]
  interval: 10s
files:
  roots: [/opt/kiosk]
YAML

# The edge host: /opt/kiosk is shared with the machine, so the Docker engine (which resolves
# bind mounts on the machine) sees the same files the agent writes inside the host.
if ! docker inspect "$host" >/dev/null 2>&1; then
  docker run -d --name "$host" --hostname "$host" --network host \
    --cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    -v "$(command -v node)":/usr/bin/node:ro -v "$top":/opt/steward:ro -v /var/run/docker.sock:/var/run/docker.sock \
    -v $demo/etc:/etc/steward -v /opt/kiosk:/opt/kiosk \
    local/systemd:bookworm /lib/systemd/systemd >/dev/null
  for _ in $(seq 1 100); do
    case "$(docker exec "$host" systemctl is-system-running 2>/dev/null)" in running|degraded) break ;; esac
    sleep 0.1
  done
fi

echo; echo "== steward plan (inside the host $host)"; steward plan
echo; echo "== steward once"; steward once | sed -n 's/.*"msg":"\([^"]*\)".*/\1/p'
echo; echo "== what the host runs"
docker exec "$host" systemctl --no-pager status kiosk-beacon.service | head -3
docker ps --filter label=steward.host=demo --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Ports}}'
sleep 1; echo "beacon: $(cat /opt/kiosk/beacon 2>/dev/null)"
echo; echo "== curl http://127.0.0.1:18080/"; curl -fsS http://127.0.0.1:18080/ | head -3 || true
echo; echo "== git log steward-status"; git --git-dir $demo/git/fleet.git log --format='%h %an: %s' -3 steward-status
echo; echo "== steward status"; steward status || true
cat <<TXT

The Git server keeps running at http://127.0.0.1:$port/fleet.git. Try:
  git clone http://127.0.0.1:$port/fleet.git /tmp/fleet && cd /tmp/fleet
  # edit hosts/demo/kiosk.yaml (say message=hi in kiosk.conf), commit, git push, then:
  docker exec $host node /opt/steward/dist/agent/main.js once
  docker exec -it $host node /opt/steward/dist/agent/main.js run     # the daemon; Ctrl-C stops it
  bash $top/examples/demo.sh stop
TXT

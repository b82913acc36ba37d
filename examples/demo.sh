#!/usr/bin/env bash
# Runs Steward against a real example: a local Git server (git http-backend over HTTP) holding
# examples/fleet, and the local Docker engine. Run as root from the repository:
#   bash examples/demo.sh          set up, push the example fleet, converge once, show the result
#   bash examples/demo.sh stop     stop the demo Git server and remove the demo containers
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
demo=/tmp/steward-demo
port=18418
steward() { node "$top/dist/agent/main.js" "$@"; }

if [ "${1:-}" = stop ]; then
  [ -f $demo/git-server.pid ] && kill "$(cat $demo/git-server.pid)" 2>/dev/null || true
  docker rm -f demo-web demo-heartbeat >/dev/null 2>&1 || true
  echo "demo stopped (state kept in $demo)"
  exit 0
fi

bash test/testbed.sh
mkdir -p $demo/git
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

cat >$demo/agent.yaml <<YAML
host: demo
labels: { site: lab, role: kiosk }
source:
  url: http://127.0.0.1:$port/fleet.git
  paths: [hosts/\${host}, groups/\${labels.role}]
  interval: 10s
stateDir: $demo/state
YAML

echo; echo "== steward plan"; steward plan --config $demo/agent.yaml
echo; echo "== steward once"; steward once --config $demo/agent.yaml | tail -n 4
echo; echo "== docker ps (what Steward owns)"
docker ps --filter label=steward.host=demo --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Ports}}'
echo; echo "== curl http://127.0.0.1:18080/"; curl -fsS http://127.0.0.1:18080/ || true
echo; echo "== git log steward-status"; git --git-dir $demo/git/fleet.git log --format='%h %an: %s' -3 steward-status
echo; echo "== steward status"; steward status --config $demo/agent.yaml || true
cat <<TXT

The Git server keeps running at http://127.0.0.1:$port/fleet.git. Try:
  git clone http://127.0.0.1:$port/fleet.git /tmp/fleet && cd /tmp/fleet
  # edit hosts/demo/web.yaml (say image: local/busybox:2), commit, git push
  node $top/dist/agent/main.js run --config $demo/agent.yaml     # the daemon; Ctrl-C stops it
  bash $top/examples/demo.sh stop
TXT

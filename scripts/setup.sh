#!/usr/bin/env bash
# Installs everything devscale and its test bed need on a fresh Debian machine (idempotent):
# Debian's prometheus and redis-server, Go (if missing), the Python package with its test
# extras, and the Go builds of the test cluster: the control plane (apiserver, controller-manager,
# scheduler) and KWOK, cached in ~/.cache/devscale and reused when unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v redis-server >/dev/null || need_apt+=(redis-server)
# kubectl ships with this machine's image; Debian's old client is the fallback elsewhere
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
command -v prometheus-pushgateway >/dev/null || need_apt+=(prometheus-pushgateway)
command -v go >/dev/null || need_apt+=(golang-go)
command -v git >/dev/null || need_apt+=(git)
command -v crontab >/dev/null || need_apt+=(cron)
command -v flock >/dev/null || need_apt+=(util-linux)
command -v tmux >/dev/null || need_apt+=(tmux)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e ".[test]"

echo "building the test cluster: control plane and KWOK (first time: many minutes)..."
python3 -m testbed.controlplane build

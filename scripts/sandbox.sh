#!/usr/bin/env bash
# Installs devscale and its test bed, then runs `devscale check --debug` on a local sandbox
# (real Prometheus + kube-apiserver on loopback, example Deployments, synthetic load).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec python3 -m testbed.sandbox "$@"

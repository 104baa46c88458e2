#!/usr/bin/env bash
# Installs devscale and its test bed, then runs `devscale check --debug` on a local sandbox
# (real Prometheus + kube-apiserver on loopback, example Deployments, synthetic load).
# With --workers: the worker half instead (kube-apiserver, KWOK pods and Redis on loopback;
# `devscale workers serve` with its gRPC API on TLS, the seed's request, a pipeline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "--workers" ]; then
  shift
  exec python3 -m testbed.workers_sandbox "$@"
fi
exec python3 -m testbed.sandbox "$@"

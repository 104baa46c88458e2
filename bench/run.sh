#!/usr/bin/env bash
# Every benchmark, as BENCHMARKS.md reports them (after `bash scripts/setup.sh`). bench_check
# alone takes ~22 minutes on the loaded 2-core machine: 2,000 pods to become Ready, the
# per-Deployment way's 5,000 queries at 1,000 Deployments (~13 min), 10,000 Deployments created.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 bench/bench_check.py --sizes 100,1000,10000 --naive-at 1000 --repeat 3 --json bench/results/check.json
python3 bench/plot_check.py bench/results/check.json bench/check-scaling.png
python3 bench/bench_fleet.py --namespaces 500 --per 20 --repeat 3 --json bench/results/fleet.json
python3 bench/bench_startup.py --repeat 15
python3 bench/bench_policy.py --cpu
python3 bench/bench_simulate.py --repeat 3 --cpu
python3 bench/bench_workers.py --json bench/results/workers.json
python3 bench/bench_api.py --json bench/results/api.json
python3 bench/bench_logrelay.py --pods 10 --readers 10 --json bench/results/logrelay.json
python3 bench/bench_pipeline.py --json bench/results/pipeline.json
python3 bench/bench_otto.py --json bench/results/otto.json
python3 bench/bench_durable.py --json bench/results/durable.json

#!/usr/bin/env bash
# The whole test suite, every tier, as CI runs it: installs what is missing, then lint, types and
# pytest (unit tests and the integration tests against real Prometheus and kube-apiserver).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"; python3 -m ruff check devtrip_scale testbed tests bench examples
echo "== mypy"; python3 -m mypy
echo "== pytest"
set +e
python3 -m pytest --durations=15 "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi
exit "$code"

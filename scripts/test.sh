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
# The tests mostly wait on real servers, so several workers share the 2 cores well: each starts
# its own test bed once (DEVSCALE_TEST_WORKERS=0 runs them in this one process).
python3 -m pytest -n "${DEVSCALE_TEST_WORKERS:-3}" --durations=15 "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi
exit "$code"

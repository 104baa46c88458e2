#!/usr/bin/env bash
# Generates the gRPC API's Python code from proto/ with grpcio-tools (pinned in pyproject's test
# extras, so the output is the same on every machine). The generated files are committed;
# tests/workers/api/test_protos.py regenerates them and fails if they differ.
#   bash scripts/protos.sh [OUTPUT_ROOT]     (default: the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
# The virtual path makes the generated imports the package's own (devtrip_scale.workers.api.v1).
python3 -m grpc_tools.protoc \
  -Idevtrip_scale/workers/api/v1=proto/devscale/v1 \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  devtrip_scale/workers/api/v1/devscale.proto
# Ottoscaler's published interface (ottoscaler.v1), served beside devscale.v1 for its CI server.
python3 -m grpc_tools.protoc \
  -Idevtrip_scale/workers/api/ottoscaler/v1=proto/ottoscaler/v1 \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  devtrip_scale/workers/api/ottoscaler/v1/ottoscaler.proto

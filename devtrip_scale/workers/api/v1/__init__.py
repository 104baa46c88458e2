"""Code generated from proto/devscale/v1/devscale.proto by scripts/protos.sh; do not edit."""

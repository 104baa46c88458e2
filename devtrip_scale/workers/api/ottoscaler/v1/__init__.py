"""Code generated from proto/ottoscaler/v1/ottoscaler.proto by scripts/protos.sh; do not edit."""

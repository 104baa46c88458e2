"""Ottoscaler's published gRPC interface (ottoscaler.v1), served by devscale for its CI server."""

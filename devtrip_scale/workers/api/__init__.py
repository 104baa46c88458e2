"""The gRPC API of `devscale workers serve` (devscale.v1, proto/devscale/v1/devscale.proto)."""

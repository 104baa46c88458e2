"""devscale: size Kubernetes Deployments to their Prometheus load with the HPA's algorithm."""

__version__ = "0.1.0"
IMAGE = f"ghcr.io/devtrip/devscale:{__version__}"   # the container image of this version

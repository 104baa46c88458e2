"""The load-based wing: read each Deployment's load, decide replicas with the HPA's algorithm, act
through the scale subresource, tell people; replay recorded load; print deployable manifests."""

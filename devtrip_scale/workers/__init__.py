"""The event-driven worker wing: scale requests and pipeline builds become worker pods; here,
the labels and annotations every part of it names those pods by.

Pure (no I/O): `requests` (a stream entry → a request, or why it is dead-lettered), `tasks` (a
task's rules: pod names, outcomes, retries, the worker cap), `pods` (the pod manifest),
`pipeline` (the pipeline file and its DAG), `progress` (what a build reports), `journal` (a
numbered record with live readers), `live` (the client's live view), `status` (`workers
status` grouping), `manifests` (the controller's Deployment and RBAC).
I/O: `config` (workers.yaml), `intake` (the Redis Stream consumer group), `watch` (one
list-then-watch of all worker pods), `store` (task state in Redis), `server` (`workers serve`:
intake, watch and tasks together), `finishing` (a worker pod's end), `executor` (pipeline
builds on the server), `logs` (a finished worker's log kept), `logrelay` (live logs),
`results` (a task's outcome told), `telemetry` (its /metrics series), `api/` (the gRPC API),
`client` (the gRPC API's client). The pods go through kube.aio. Never imports the load-based
wing (`scaling`) or the command line (tests/test_imports.py keeps it so).
"""

from __future__ import annotations

DOMAIN = "devscale.devtrip.io"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "devscale"
SELECTOR = f"{MANAGED_BY}={MANAGER}"
TASK_LABEL = f"{DOMAIN}/task"
INDEX_LABEL = f"{DOMAIN}/index"
ATTEMPT_LABEL = f"{DOMAIN}/attempt"
TASK_ID_ANNOTATION = f"{DOMAIN}/task-id"
POD_COUNT_ANNOTATION = f"{DOMAIN}/pod-count"
ENTRY_ANNOTATION = f"{DOMAIN}/request-entry"
META_LABEL_PREFIX = f"meta.{DOMAIN}/"
META_ENV_PREFIX = "DEVSCALE_META_"
BUILD_LABEL = f"{DOMAIN}/build"
STAGE_LABEL = f"{DOMAIN}/stage"
BUILD_ID_ANNOTATION = f"{DOMAIN}/build-id"
STAGE_ANNOTATION = f"{DOMAIN}/stage"
CONTAINER = "worker"

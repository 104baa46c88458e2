"""The event-driven worker system: scale requests on a Redis Stream become worker pods.

Pure parts (no I/O, like policy.py): `requests` (stream entry → request or dead-letter reason),
`tasks` (pod names, labels, outcomes, retry policy, the worker cap), `pods` (the pod manifest).
I/O parts: `intake` (the consumer group), `kube` (an async Kubernetes client), `watch` (one
list-then-watch of all worker pods), `store` (task state in Redis), `logs`, `results`, and
`server`, which ties them together. Never imports reconcile or policy.
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

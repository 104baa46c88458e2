"""The worker pod manifest from the config's template (pure)."""

from __future__ import annotations

from typing import Any

from devtrip_scale.workers import (
    ATTEMPT_LABEL,
    BUILD_ID_ANNOTATION,
    BUILD_LABEL,
    CONTAINER,
    ENTRY_ANNOTATION,
    INDEX_LABEL,
    MANAGED_BY,
    MANAGER,
    META_ENV_PREFIX,
    META_LABEL_PREFIX,
    POD_COUNT_ANNOTATION,
    STAGE_ANNOTATION,
    STAGE_LABEL,
    TASK_ID_ANNOTATION,
    TASK_LABEL,
)
from devtrip_scale.workers.config import WorkerModel
from devtrip_scale.workers.tasks import label_value, pod_name, task_key


def worker_pod(template: WorkerModel, task_id: str, index: int, attempt: int, pod_count: int,
               entry_id: str, metadata: tuple[tuple[str, str], ...] = (), *, build_id: str = "",
               stage: str = "") -> dict[str, Any]:
    """One worker pod: restartPolicy Never, a deadline, requests and limits, and the labels the
    watch selects on. Request metadata becomes env (DEVSCALE_META_<KEY>) and sanitised labels.
    A pipeline stage's pod also carries its build and stage (labels, annotations and env)."""
    labels = {**template.labels,
              **{f"{META_LABEL_PREFIX}{k.lower().replace('_', '-')}": label_value(v)
                 for k, v in metadata},
              MANAGED_BY: MANAGER, TASK_LABEL: task_key(task_id), INDEX_LABEL: str(index),
              ATTEMPT_LABEL: str(attempt)}
    annotations = {**template.annotations, TASK_ID_ANNOTATION: task_id,
                   POD_COUNT_ANNOTATION: str(pod_count), ENTRY_ANNOTATION: entry_id}
    env = [{"name": k, "value": v} for k, v in template.env.items()]
    env += [{"name": "DEVSCALE_TASK_ID", "value": task_id},
            {"name": "DEVSCALE_WORKER_INDEX", "value": str(index)},
            {"name": "DEVSCALE_WORKER_COUNT", "value": str(pod_count)},
            {"name": "DEVSCALE_ATTEMPT", "value": str(attempt)}]
    env += [{"name": f"{META_ENV_PREFIX}{k.upper()}", "value": v} for k, v in metadata]
    if build_id:
        labels.update({BUILD_LABEL: label_value(build_id), STAGE_LABEL: label_value(stage)})
        annotations.update({BUILD_ID_ANNOTATION: build_id, STAGE_ANNOTATION: stage})
        env += [{"name": "DEVSCALE_BUILD_ID", "value": build_id},
                {"name": "DEVSCALE_STAGE", "value": stage}]
    container: dict[str, Any] = {
        "name": CONTAINER, "image": template.image, "env": env,
        "resources": {"requests": dict(template.resources.requests),
                      "limits": dict(template.resources.limits)}}
    if template.command:
        container["command"] = list(template.command)
    if template.args:
        container["args"] = list(template.args)
    spec: dict[str, Any] = {"restartPolicy": "Never",
                            "activeDeadlineSeconds": template.active_deadline_seconds,
                            "containers": [container]}
    if template.service_account:
        spec["serviceAccountName"] = template.service_account
    if template.node_selector:
        spec["nodeSelector"] = dict(template.node_selector)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name(task_id, index, attempt), "labels": labels,
                         "annotations": annotations},
            "spec": spec}

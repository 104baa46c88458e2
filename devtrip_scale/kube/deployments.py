"""DeploymentTarget: list target Deployments and write replicas through the scale subresource."""

from __future__ import annotations

from typing import Any

from devtrip_scale.kube import FIELD_MANAGER, TIMEOUT, request
from devtrip_scale.ports import Workload
from devtrip_scale.trace import Trace


class DeploymentTarget:
    """The Deployments of one namespace, read with one list call and scaled one PATCH each."""

    def __init__(self, api_client: Any, namespace: str, trace: Trace | None = None) -> None:
        from kubernetes import client

        self._apps = client.AppsV1Api(api_client)
        self._ns = namespace
        self._trace = trace or Trace()

    def list(self, selector: str | None) -> list[Workload]:
        detail = f"list deployments -n {self._ns}" + (f" -l {selector}" if selector else "")
        result = request(self._trace, "list", "deployments", self._ns, None,
                         lambda: self._apps.list_namespaced_deployment(
                             self._ns, label_selector=selector or "", _request_timeout=TIMEOUT),
                         detail=detail)
        return [_workload(d) for d in result.items]

    def get(self, name: str) -> Workload:
        return _workload(request(
            self._trace, "get", "deployments", self._ns, name,
            lambda: self._apps.read_namespaced_deployment(name, self._ns,
                                                          _request_timeout=TIMEOUT)))

    def other_scalers(self) -> dict[str, str]:
        """Deployments of the namespace that an HPA (KEDA's included) already targets."""
        from kubernetes import client

        api = client.AutoscalingV2Api(self._apps.api_client)
        hpas = request(self._trace, "list", "horizontalpodautoscalers", self._ns, None,
                       lambda: api.list_namespaced_horizontal_pod_autoscaler(
                           self._ns, _request_timeout=TIMEOUT)).items
        return {
            h.spec.scale_target_ref.name: describe_scaler(h)
            for h in hpas
            if h.spec.scale_target_ref.kind == "Deployment"
            and (h.spec.scale_target_ref.api_version or "apps/v1").startswith("apps/")
        }

    def scale(self, name: str, replicas: int, resource_version: str) -> None:
        """Set spec.replicas, only if the Deployment is still at `resource_version` (else 409)."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}}
        request(self._trace, "patch", "deployments/scale", self._ns, name,
                lambda: self._apps.patch_namespaced_deployment_scale(
                    name, self._ns, body, field_manager=FIELD_MANAGER, _request_timeout=TIMEOUT),
                detail=f"patch deployments/{name}/scale -n {self._ns} replicas={replicas} "
                       f"resourceVersion={resource_version}")


def describe_scaler(hpa: Any) -> str:
    """How to name an HPA to a person: KEDA's are named after their ScaledObject."""
    name = hpa.metadata.name
    keda = (hpa.metadata.labels or {}).get("scaledobject.keda.sh/name")
    if keda is None and name.startswith("keda-hpa-"):
        keda = name.removeprefix("keda-hpa-")
    if keda is not None:
        return f"KEDA ScaledObject {keda} (through HorizontalPodAutoscaler {name})"
    return f"HorizontalPodAutoscaler {name}"


def _workload(d: Any) -> Workload:
    meta, status = d.metadata, d.status
    return Workload(
        name=meta.name,
        replicas=int(d.spec.replicas if d.spec.replicas is not None else 1),
        resource_version=meta.resource_version,
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        uid=meta.uid or "",
        # The API leaves out counts that are 0.
        ready_replicas=int(status.ready_replicas or 0) if status else 0,
        pods=int(status.replicas or 0) if status else 0,
    )

"""The worker server's Prometheus series, in a registry of its own (served on /metrics)."""

from __future__ import annotations


class Telemetry:
    """The server's Prometheus series, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("devscale_workers_requests", "Stream entries consumed, by type "
                                "and what became of them", ["type", "result"], registry=r)
        self.pending = Gauge("devscale_workers_pending_entries", "Entries the consumer group "
                             "delivered and did not ack yet", registry=r)
        self.workers = Gauge("devscale_workers", "Worker pods now, by state (queued: admitted "
                             "requests' pods waiting for the cap)", ["state"], registry=r)
        self.finished = Counter("devscale_workers_finished", "Worker pods that ended, by "
                                "outcome", ["outcome"], registry=r)
        self.retries = Counter("devscale_workers_retries", "Attempts started again", ["cause"],
                               registry=r)
        self.task_seconds = Histogram(
            "devscale_workers_task_duration_seconds", "From a task's first request to its "
            "result", ["outcome"], registry=r,
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf")))
        self.created_seconds = Histogram(
            "devscale_workers_request_to_pods_seconds", "From XADD to all of a request's pods "
            "created", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf")))
        self.connected = Gauge("devscale_workers_connected", "1 while the peer is reachable",
                               ["peer"], registry=r)
        self.api_calls = Gauge("devscale_workers_api_requests", "Kubernetes API requests "
                               "made, by verb and resource", ["verb", "resource"], registry=r)
        self.log_follows = Gauge("devscale_workers_log_follows", "Upstream pods/log follows "
                                 "open now", registry=r)
        self.log_readers = Gauge("devscale_workers_log_readers", "Clients reading relayed "
                                 "worker logs now", registry=r)

"""Run Debian's Prometheus on loopback, scraping the synthetic exporter every second."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from testbed.net import exit_log, free_port, stop_process, wait_until

SCRAPE_INTERVAL = "1s"
RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "devscale-rules.yaml"


@dataclass
class Prometheus:
    workdir: Path
    scrape_port: int
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    scrape_interval: str = SCRAPE_INTERVAL

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed (apt-get install prometheus)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}\n"
            f"  evaluation_interval: {self.scrape_interval}\n"
            f"rule_files: ['{RULES}']\n"
            "scrape_configs:\n"
            "  - job_name: synthetic\n"
            "    honor_labels: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.scrape_port}']}}]\n"
        )
        self.port = free_port()
        with (self.workdir / "prometheus.log").open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
                 "--web.enable-lifecycle"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200,
                   "prometheus", timeout=60, alive=self._died)
        # Discovery hands targets to the scraper every 5 s: wait for the first scrape.
        wait_until(lambda: bool(self.query('up{job="synthetic"} == 1')),
                   "prometheus scraping the exporter", timeout=60, alive=self._died)
        return self

    def _died(self) -> str | None:
        return exit_log(self.process, self.workdir / "prometheus.log")

    def stop(self) -> None:
        stop_process(self.process)

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        r.raise_for_status()
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result

    def instant_queries_served(self) -> int:
        """How many /api/v1/query requests this Prometheus has answered, from its own metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0
        for line in text.splitlines():
            if line.startswith("prometheus_http_requests_total{") and \
                    'handler="/api/v1/query"' in line:
                total += int(float(re.split(r"\s+", line)[-1]))
        return total

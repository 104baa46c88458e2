"""Run Debian's Prometheus Pushgateway (`prometheus-pushgateway`) on loopback."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from testbed.net import exit_log, free_port, stop_process, wait_until


@dataclass
class Pushgateway:
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Pushgateway:
        binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
        if binary is None:
            raise RuntimeError("the Pushgateway is not installed "
                               "(apt-get install prometheus-pushgateway)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        with (self.workdir / "pushgateway.log").open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200,
                   "pushgateway", timeout=30, alive=self._died)
        return self

    def _died(self) -> str | None:
        return exit_log(self.process, self.workdir / "pushgateway.log")

    def stop(self) -> None:
        stop_process(self.process)

    def metrics(self) -> str:
        """What Prometheus scrapes: every pushed group, in the text exposition format."""
        r = httpx.get(f"{self.url}/metrics", timeout=5)
        r.raise_for_status()
        return r.text

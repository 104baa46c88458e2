"""Loopback helpers: free ports and waiting for a server to answer."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0,
               alive: Callable[[], str | None] | None = None,
               ignore: tuple[type[Exception], ...] = (Exception,)) -> float:
    """Poll `check` until true and return the seconds it took; `ignore` are errors to poll
    through. Fail with `what` (and the process's log tail) on timeout."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return time.monotonic() - start
        except ignore:
            pass
        if alive is not None and (died := alive()) is not None:
            raise RuntimeError(f"{what}: the process exited:\n{died}")
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")


def exit_log(process: subprocess.Popen[bytes] | None, log: Path) -> str | None:
    """The tail of a server's log once its process has exited; None while it runs."""
    if process is None or process.poll() is None:
        return None
    return log.read_text(errors="replace")[-3000:]


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""Loopback helpers: free ports and waiting for a server to answer."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0,
               alive: Callable[[], str | None] | None = None) -> None:
    """Poll `check` until true; fail with `what` (and the process's log tail) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        if alive is not None and (died := alive()) is not None:
            raise RuntimeError(f"{what}: the process exited:\n{died}")
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")

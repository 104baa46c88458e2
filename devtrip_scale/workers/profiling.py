"""A replica's CPU profile on request: `$DEVSCALE_PROFILE=FILE` runs `workers serve` under
cProfile and writes its statistics (pstats format) to FILE when it stops."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PROFILE_ENV = "DEVSCALE_PROFILE"


def profiled(run: Callable[[], int], env: dict[str, str] | None = None) -> int:
    """`run()`, under cProfile when $DEVSCALE_PROFILE names a file (written however `run`
    ends; read it with `python -m pstats FILE`). Its clock is the process's CPU time, so a
    replica waiting for work (epoll) counts for little. Profiling costs the process CPU:
    compare shares within one profile, never its times with an unprofiled run's."""
    target = (os.environ if env is None else env).get(PROFILE_ENV)
    if not target:
        return run()
    import cProfile
    import time

    path = Path(target)
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        return run()
    finally:
        profile.disable()
        path.parent.mkdir(parents=True, exist_ok=True)
        profile.dump_stats(str(path))

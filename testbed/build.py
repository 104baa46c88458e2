"""Go builds of the test bed, cached outside the repo under a name keyed by their inputs.

A cached binary is reused as it is: a warm start never runs `go`. Set DEVSCALE_CACHE (or
XDG_CACHE_HOME) to move the cache; GOMODCACHE and GOCACHE are the Go toolchain's own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("DEVSCALE_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "devscale" if base else Path.home() / ".cache" / "devscale"


def cached_path(name: str, *inputs: bytes | str) -> Path:
    """Where the build of `name` from exactly these inputs lives in the cache."""
    digest = hashlib.sha256()
    for item in inputs:
        digest.update(item.encode() if isinstance(item, str) else item)
        digest.update(b"\0")
    return cache_dir() / f"{name}-{digest.hexdigest()[:16]}"


def go_build(target: Path, command: list[str], cwd: Path, env: dict[str, str] | None = None
             ) -> Path:
    """Run a `go` command that writes `target`, unless `target` is already built.

    `command` gets the path to write to as its last argument (a `go build -o` target) or,
    with `{gobin}` in `env`, installs into that directory. The result is renamed into place
    only when complete, so an interrupted build is never taken for a finished one.
    """
    if target.is_file():
        return target
    if shutil.which("go") is None:
        raise RuntimeError(f"Go is needed to build {target.name} (apt-get install golang-go)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    full_env = {**os.environ, **{k: v.format(gobin=partial) for k, v in (env or {}).items()}}
    args = [arg.format(gobin=partial) for arg in command]
    subprocess.run(args, cwd=cwd, env=full_env, check=True)
    built = [p for p in partial.iterdir() if p.is_file()]
    if len(built) != 1:
        raise RuntimeError(f"{' '.join(args)} wrote {len(built)} files into {partial}, not 1")
    built[0].rename(target)
    partial.rmdir()
    return target

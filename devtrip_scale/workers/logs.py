"""A finished worker's log, kept before its pod is deleted: one file per task, a section per
pod, under the configured directory. Writing a section twice (a redo after a crash) is a no-op."""

from __future__ import annotations

from pathlib import Path


def task_log(directory: Path, task_key: str) -> Path:
    return directory / f"{task_key}.log"


def keep(directory: Path, task_key: str, pod: str, header: str, text: str) -> Path:
    """Append the pod's log to its task's file unless it is there already; the file."""
    path = task_log(directory, task_key)
    marker = f"==> {pod} "
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        with path.open(encoding="utf-8", errors="replace") as f:
            if any(line.startswith(marker) for line in f):
                return path
    body = text if not text or text.endswith("\n") else text + "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(f"{marker}{header} <==\n{body}")
    return path

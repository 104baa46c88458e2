"""Logs kept per task (a file per task, a section per pod); keeping a pod's log twice — a
redo after a crash — leaves one section."""

from __future__ import annotations

from pathlib import Path

from devtrip_scale.workers.logs import keep


def test_one_file_per_task_one_section_per_pod(tmp_path: Path) -> None:
    path = keep(tmp_path, "t", "w-t-0-0", "index 0", "line 1\nline 2")
    keep(tmp_path, "t", "w-t-1-0", "index 1", "other\n")
    keep(tmp_path, "t", "w-t-0-0", "index 0", "line 1\nline 2")     # again: no-op
    text = path.read_text()
    assert path == tmp_path / "t.log"
    assert text == ("==> w-t-0-0 index 0 <==\nline 1\nline 2\n"
                    "==> w-t-1-0 index 1 <==\nother\n")

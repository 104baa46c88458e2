"""testbed.build: cached binaries are named by their inputs, and a cached one is reused without
running any command (a warm start never builds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.build import cached_path, go_build


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEVSCALE_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", f"{tmp_path}/no-go")   # no `go` to run
    return tmp_path / "devscale"


@pytest.mark.parametrize(("a", "b", "same"), [
    pytest.param(("x", b"y"), ("x", b"y"), True, id="same-inputs"),
    pytest.param(("x", b"y"), ("x", b"z"), False, id="one-input-changed"),
    pytest.param(("xy",), ("x", "y"), False, id="inputs-split-differently"),
])
def test_cached_path_is_keyed_by_inputs(a: tuple[str | bytes, ...], b: tuple[str | bytes, ...],
                                        same: bool, cache: Path) -> None:
    assert cached_path("bin", *a).parent == cache
    assert (cached_path("bin", *a) == cached_path("bin", *b)) is same


def test_cached_binary_is_reused_without_building(cache: Path) -> None:
    target = cached_path("bin", "inputs")
    target.parent.mkdir(parents=True)
    target.write_text("built earlier")
    assert go_build(target, ["go", "build", "-o", "{gobin}/bin"], cwd=cache) == target


def test_missing_binary_without_go_is_a_clear_error(cache: Path) -> None:
    with pytest.raises(RuntimeError, match="Go is needed to build bin-"):
        go_build(cached_path("bin", "inputs"), ["go", "build"], cwd=cache)

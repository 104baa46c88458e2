"""The committed gRPC code (devscale.v1 and ottoscaler.v1) is what scripts/protos.sh generates
from proto/ now (byte for byte): a proto edited without regenerating, or a different
grpcio-tools, fails here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = {Path("devtrip_scale/workers/api/v1"): "devscale",
            Path("devtrip_scale/workers/api/ottoscaler/v1"): "ottoscaler"}
GENERATED = tuple((where, f"{stem}{tail}") for where, stem in PACKAGES.items()
                  for tail in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))


def test_generation_writes_three_files_per_proto(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "protos.sh"), str(tmp_path)], check=True,
                   cwd=ROOT, capture_output=True, text=True, timeout=120)
    for where in PACKAGES:
        assert sorted(p.name for p in (tmp_path / where).iterdir()) == sorted(
            name for w, name in GENERATED if w == where)


@pytest.mark.parametrize(("where", "name"), GENERATED, ids=[name for _, name in GENERATED])
def test_committed_code_matches_the_proto(tmp_path: Path, where: Path, name: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "protos.sh"), str(tmp_path)], check=True,
                   cwd=ROOT, capture_output=True, text=True, timeout=120)
    fresh = (tmp_path / where / name).read_bytes()
    stem = PACKAGES[where]
    assert fresh == (ROOT / where / name).read_bytes(), (
        f"{where / name} differs from what proto/{stem}/v1/{stem}.proto generates: run "
        "bash scripts/protos.sh and commit the result")

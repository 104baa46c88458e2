"""The committed gRPC code is what scripts/protos.sh generates from proto/ now (byte for byte):
a proto edited without regenerating, or a different grpcio-tools, fails here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

GENERATED = ("devscale_pb2.py", "devscale_pb2.pyi", "devscale_pb2_grpc.py")
V1 = Path("devtrip_scale/workers/api/v1")


def test_generation_writes_the_three_files(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "protos.sh"), str(tmp_path)], check=True,
                   cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert sorted(p.name for p in (tmp_path / V1).iterdir()) == sorted(GENERATED)


@pytest.mark.parametrize("name", GENERATED)
def test_committed_code_matches_the_proto(tmp_path: Path, name: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "protos.sh"), str(tmp_path)], check=True,
                   cwd=ROOT, capture_output=True, text=True, timeout=120)
    fresh = (tmp_path / V1 / name).read_bytes()
    assert fresh == (ROOT / V1 / name).read_bytes(), (
        f"{V1 / name} differs from what proto/devscale/v1/devscale.proto generates: run "
        "bash scripts/protos.sh and commit the result")

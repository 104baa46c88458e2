"""`devscale config validate` of every file devscale reads: a check config, a workers.yaml and
a pipeline file, told apart by their keys (or `--kind`), validated offline with the same
file:line errors as the commands that read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devtrip_scale.cli import app
from tests.conftest import ROOT


def validate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["config", "validate", *args], env={"NAMESPACE": ""})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("path", "says"), [
    ("config/workers.yaml", "valid workers config (namespace devtrip"),
    ("examples/pipeline.yaml", "valid pipeline shop-api-ci (6 stage(s)"),
    ("config/devtrip.yaml", "valid (1 target(s)"),
], ids=["workers", "pipeline", "check"])
def test_the_kind_is_told_by_the_keys(path: str, says: str) -> None:
    code, out, err = validate("-c", str(ROOT / path))
    assert code == 0, err
    assert says in out


def test_a_workers_config_is_told_that_worker_does_not_shape_pipeline_stages() -> None:
    code, _, err = validate("-c", str(ROOT / "config/workers.yaml"))
    assert code == 0
    assert "note: worker: is the pod template of scale requests" in err
    assert "pipeline stages do not use it" in err


def test_workers_yaml_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "workers.yaml"
    bad.write_text("namespace: ci\nworker:\n  image: busybox\n  resources:\n"
                   "    requests: {cpu: 1, memory: 1Gi}\n    limits: {cpu: 1, memory: 1Gi}\n"
                   "limits:\n  max_workers: 0\n", encoding="utf-8")
    code, _, err = validate("-c", str(bad))
    assert code == 2
    assert f"{bad}:8" in err and "limits.max_workers" in err
    assert "targets" not in err                    # not read as a check config


def test_pipeline_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "ci.yaml"
    bad.write_text((ROOT / "examples/pipeline.yaml").read_text(encoding="utf-8")
                   .replace("needs: [checkout]", "needs: [chekout]", 1), encoding="utf-8")
    code, _, err = validate("-c", str(bad))
    assert code == 2
    assert "needs 'chekout', which is not a stage of this pipeline" in err
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "chekout" in text)
    assert f"{bad}:{line}:" in err


def test_kind_overrides_the_guess_and_json_says_the_kind(tmp_path: Path) -> None:
    code, _, err = validate("-c", str(ROOT / "config/workers.yaml"), "--kind", "check")
    # asked for a check config: it is not one (read as one, its worker keys are unknown)
    assert code == 2 and "redis: unknown key" in err and "worker: unknown key" in err
    code, out, _ = validate("-c", str(ROOT / "examples/pipeline.yaml"), "--kind", "pipeline",
                            "-o", "json")
    doc = json.loads(out)
    assert (code, doc["kind"], doc["valid"], doc["stages"]) == (0, "pipeline", True, 6)


def test_online_is_for_check_configs_only() -> None:
    code, _, err = validate("-c", str(ROOT / "examples/pipeline.yaml"), "--online")
    assert code == 2 and "--online runs a check config's queries" in err

"""Config: every shipped file loads; env overrides; camelCase and snake_case; each invalid
config is refused with the file, line and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtrip_scale.config import load_config
from devtrip_scale.errors import ConfigError
from devtrip_scale.models import HPA_DEFAULT_SCALE_DOWN
from tests.conftest import ROOT

CONFIGS = sorted((ROOT / "config").glob("*.yaml"))
SHIPPED = CONFIGS

VALID = """\
namespace: devtrip
targets:
  - deployment: api
metrics:
  - name: cpu
    preset: cpu_utilization
    target: {type: Utilization, value: 70}
"""


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    assert load_config(path, env={}).targets


def test_starter_is_the_devtrip_example_but_names_its_own_file() -> None:
    """The settings are config/devtrip.yaml's; the header tells how to validate the starter
    itself (`config init` puts the path it wrote in), not the repository's example."""
    starter = (ROOT / "devtrip_scale" / "starter.yaml").read_text().splitlines()
    example = (ROOT / "config" / "devtrip.yaml").read_text().splitlines()
    assert starter[3:] == example[3:]
    assert "config validate -c devscale.yaml" in starter[1]
    assert "config/devtrip.yaml" not in "\n".join(starter)


def test_devtrip_seed_values() -> None:
    s = load_config(ROOT / "config" / "devtrip.yaml", env={})
    targets = {m.name: (m.target.type, m.target.value) for m in s.metrics}
    assert targets == {"cpu": ("Utilization", 70), "memory": ("Utilization", 80),
                       "active_users": ("AverageValue", 100), "rps": ("AverageValue", 100),
                       "p95_latency": ("Value", 2)}
    spec = s.policy_for(None)
    assert (spec.min_replicas, spec.max_replicas, s.namespace) == (2, 10, "devtrip")
    assert spec.scale_down == HPA_DEFAULT_SCALE_DOWN


def test_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(VALID)
    s = load_config(path, env={"NAMESPACE": "prod", "METRICS_SERVER": "prometheus:9090"})
    assert (s.namespace, s.prometheus.url) == ("prod", "http://prometheus:9090")


def test_snake_and_camel_case_are_both_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(VALID + "scaling:\n  min_replicas: 2\n  maxReplicas: 4\n"
                    "  behavior:\n    scaleDown:\n      stabilization_window_seconds: 60\n")
    spec = load_config(path, env={}).policy_for(None)
    assert (spec.min_replicas, spec.max_replicas) == (2, 4)
    assert spec.scale_down.stabilization_window_seconds == 60


BROKEN = [
    ("unknown-top-key", VALID + "colour: blue\n", 8, "colour: unknown key"),
    ("min-above-max", VALID + "scaling: {minReplicas: 5, maxReplicas: 3}\n", 8,
     "minReplicas (5) is above maxReplicas (3)"),
    ("negative-target", VALID.replace("value: 70", "value: -1"), 7,
     "metrics[0].target.value: Input should be greater than 0"),
    ("unknown-preset", VALID.replace("cpu_utilization", "cpu"), 6, "unknown preset 'cpu'"),
    ("preset-and-query", VALID.replace("    preset: cpu_utilization\n",
                                       "    preset: cpu_utilization\n    query: up\n"), 5,
     "exactly one of `preset`, `query` or `http`"),
    ("duplicate-target", VALID.replace("  - deployment: api\n",
                                       "  - deployment: api\n  - deployment: api\n"), 2,
     "targets: duplicate deployment target 'api'"),
    ("bad-target-type", VALID.replace("Utilization,", "Percent,"), 7,
     "metrics[0].target.type"),
    ("no-targets",
     VALID.replace("  - deployment: api\n", "").replace("targets:\n", "targets: []\n"),
     2, "targets: Tuple should have at least 1 item"),
    ("bad-window", VALID + "    window: 2 minutes\n", 8,
     "metrics[0].window: '2 minutes' is not a PromQL duration"),
    ("bad-policy-type", VALID + "scaling:\n  behavior:\n    scaleUp:\n      policies:\n"
     "        - {type: Replicas, value: 1, periodSeconds: 15}\n", 12,
     "scaling.behavior.scaleUp.policies[0].type"),
    ("bad-name", VALID.replace("deployment: api", "deployment: API_1"), 3,
     "'API_1' is not a valid Deployment name"),
    ("max-zero", VALID + "scaling: {maxReplicas: 0}\n", 8,
     "scaling.maxReplicas: Input should be greater than or equal to 1"),
    ("negative-min", VALID + "scaling:\n  minReplicas: -1\n", 9,
     "scaling.minReplicas: Input should be greater than or equal to 0"),
    ("tolerance-too-big", VALID + "scaling:\n  tolerance: 1.5\n", 9,
     "scaling.tolerance: Input should be less than 1"),
    ("negative-window", VALID + "scaling:\n  behavior:\n    scaleDown:\n"
     "      stabilizationWindowSeconds: -5\n", 11,
     "scaling.behavior.scaleDown.stabilizationWindowSeconds: Input should be greater"),
    ("window-too-long", VALID + "scaling:\n  behavior:\n    scaleDown:\n"
     "      stabilizationWindowSeconds: 4000\n", 11, "less than or equal to 3600"),
    ("bad-select-policy", VALID + "scaling:\n  behavior:\n    scaleUp: {selectPolicy: Maximum}\n",
     10, "scaling.behavior.scaleUp.selectPolicy: Input should be 'Max', 'Min' or 'Disabled'"),
    ("zero-policy-value", VALID + "scaling:\n  behavior:\n    scaleUp:\n      policies:\n"
     "        - {type: Pods, value: 0, periodSeconds: 15}\n", 12,
     "scaling.behavior.scaleUp.policies[0].value: Input should be greater than 0"),
    ("period-too-long", VALID + "scaling:\n  behavior:\n    scaleUp:\n      policies:\n"
     "        - {type: Pods, value: 4, periodSeconds: 3600}\n", 12,
     "policies[0].periodSeconds: Input should be less than or equal to 1800"),
    ("negative-cooldown", VALID + "scaling:\n  scaleUpCooldownSeconds: -1\n", 9,
     "scaling.scaleUpCooldownSeconds: Input should be greater than or equal to 0"),
    ("string-for-int", VALID + "scaling:\n  maxReplicas: ten\n", 9,
     "scaling.maxReplicas: Input should be a valid integer"),
    ("unknown-behavior-key", VALID + "scaling:\n  behavior:\n    scaleSideways: {}\n", 10,
     "scaling.behavior.scaleSideways: unknown key"),
    ("no-target-value", VALID.replace("    target: {type: Utilization, value: 70}\n", ""), 5,
     "metrics[0].target: Field required"),
    ("bad-metric-name", VALID.replace("name: cpu", "name: cpu usage"), 5,
     "metrics[0].name: String should match pattern"),
    ("duplicate-metric", VALID + "  - name: cpu\n    preset: memory_utilization\n"
     "    target: {type: Utilization, value: 80}\n", 4, "metrics: duplicate metric name 'cpu'"),
    ("empty-query", VALID.replace("    preset: cpu_utilization\n", "    query: ''\n"), 6,
     "metrics[0].query: String should have at least 1 character"),
    ("http-bad-url", VALID.replace("    preset: cpu_utilization\n",
                                   "    http: {url: 'ftp://queue/jobs'}\n"), 6,
     "metrics[0].http.url: 'ftp://queue/jobs' is not an http:// or https:// URL"),
    ("http-and-query", VALID.replace("    preset: cpu_utilization\n",
                                     "    query: up\n    http: {url: 'http://q/jobs'}\n"), 5,
     "metrics[0]: give exactly one of `preset`, `query` or `http`"),
    ("target-both", VALID.replace("  - deployment: api\n",
                                  "  - deployment: api\n    selector: app=api\n"), 3,
     "targets[0]: give exactly one of `deployment` or `selector`"),
    ("target-neither", VALID.replace("  - deployment: api\n", "  - {}\n"), 3,
     "targets[0]: give exactly one of `deployment` or `selector`"),
    ("target-min-above-max", VALID.replace("  - deployment: api\n",
                                           "  - {deployment: api, minReplicas: 12}\n"), 3,
     "targets[0]: minReplicas (12) is above maxReplicas (10)"),
    ("timeout-zero", VALID + "prometheus: {timeout_seconds: 0}\n", 8,
     "prometheus.timeout_seconds: Input should be greater than 0"),
    ("prometheus-unknown-key", VALID + "prometheus:\n  address: http://p:9090\n", 9,
     "prometheus.address: unknown key"),
    ("bad-namespace", VALID.replace("namespace: devtrip", "namespace: Dev_Trip"), 1,
     "namespace: 'Dev_Trip' is not a valid namespace name"),
    ("metrics-not-a-list", VALID.split("metrics:")[0] + "metrics: cpu\n", 4,
     "metrics: Input should be a valid"),
    ("targets-not-a-list", VALID.replace("targets:\n  - deployment: api\n", "targets: api\n"), 2,
     "targets: Input should be a valid"),
    ("not-a-mapping", "- just\n- a list\n", 1, "must be a mapping"),
    ("bad-yaml", "targets: [\n", 2, "not valid YAML"),
]


def test_the_corpus_has_at_least_30_broken_configs() -> None:
    assert len(BROKEN) >= 30


@pytest.mark.parametrize(("text", "line", "message"), [b[1:] for b in BROKEN],
                         ids=[b[0] for b in BROKEN])
def test_broken_configs_name_file_line_and_field(tmp_path: Path, text: str, line: int,
                                                 message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    error = str(caught.value)
    assert f"{path}:{line}" in error, error
    assert message in error, error


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml", env={})

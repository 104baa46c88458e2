"""Config: every shipped file loads; env overrides; camelCase and snake_case; each invalid
config (duplicate keys, label selectors, URLs, PromQL, placeholders, encoding included) is refused
with the file, line and field named, or the environment variable a bad value came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.scaling.config import (
    HttpMetricModel,
    MetricModel,
    PrometheusModel,
    TargetModel,
    load_config,
    promql_problem,
)
from devtrip_scale.scaling.models import HPA_DEFAULT_SCALE_DOWN
from devtrip_scale.scaling.presets import PRESETS, render
from tests.conftest import ROOT

# workers.yaml is the worker system's own config: tests/workers/test_config.py loads it
CONFIGS = sorted(p for p in (ROOT / "config").glob("*.yaml") if p.name != "workers.yaml")
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
    ("duplicate-key", VALID + "scaling:\n  maxReplicas: 10\n  maxReplicas: 100\n", 10,
     "duplicate key 'maxReplicas' (first at line 9)"),
    ("duplicate-top-key", VALID + "namespace: other\n", 8,
     "duplicate key 'namespace' (first at line 1)"),
    ("duplicate-key-in-list-item", VALID.replace("    preset: cpu_utilization\n",
                                                 "    preset: cpu_utilization\n    name: cpu2\n"),
     7, "duplicate key 'name' (first at line 5)"),
    ("selector-unclosed-set", VALID.replace("deployment: api", "selector: 'app in (a, b'"), 3,
     "targets[0].selector: 'app in (a, b' is not a label selector: missing ')'"),
    ("selector-two-words", VALID.replace("deployment: api", "selector: 'app api'"), 3,
     "targets[0].selector: 'app api' is not a label selector: expected an operator"),
    ("selector-bad-key", VALID.replace("deployment: api", "selector: '-app=x'"), 3,
     "'-app' is not a label key"),
    ("selector-bad-value", VALID.replace("deployment: api", "selector: 'app=a b'"), 3,
     "expected ',' before 'b'"),
    ("selector-trailing-comma", VALID.replace("deployment: api", "selector: 'app=a,'"), 3,
     "it ends with ','"),
    ("selector-empty-set", VALID.replace("deployment: api", "selector: 'app in ()'"), 3,
     "needs at least one value"),
    ("prometheus-url-no-scheme", VALID + "prometheus: {url: 'prometheus:9090'}\n", 8,
     "prometheus.url: 'prometheus:9090' is not an http:// or https:// URL"),
    ("prometheus-url-typo", VALID + "prometheus: {url: 'http//prometheus:9090'}\n", 8,
     "prometheus.url: 'http//prometheus:9090' is not an http:// or https:// URL"),
    ("prometheus-url-bad-port", VALID + "prometheus: {url: 'http://prometheus:90a90'}\n", 8,
     "prometheus.url: 'http://prometheus:90a90' has an invalid port"),
    ("prometheus-url-no-host", VALID + "prometheus: {url: 'http://:9090'}\n", 8,
     "has no valid host name"),
    ("promql-unclosed", VALID.replace("    preset: cpu_utilization\n",
                                      "    query: 'sum(rate(x[5m])'\n"), 6,
     "metrics[0].query: not valid PromQL: unclosed left parenthesis"),
    ("promql-unknown-function", VALID.replace("    preset: cpu_utilization\n",
                                              "    query: 'rat(x[5m])'\n"), 6,
     "metrics[0].query: not valid PromQL: unknown function with name 'rat'"),
    ("unknown-placeholder", VALID.replace(
        "    preset: cpu_utilization\n", "    query: 'sum(x{namespace=\"{ns}\"})'\n"), 6,
     "metrics[0].query: unknown placeholder {ns}; known: {namespace}, {window}"),
    ("placeholder-in-url", VALID.replace("    preset: cpu_utilization\n",
                                         "    http: {url: 'http://q/{namespace}/jobs'}\n"), 6,
     "metrics[0].http.url: {namespace} in a URL is not filled"),
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


def test_a_file_that_is_not_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VALID.replace("namespace: devtrip", "namespace: devtrip # café")
                     .encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"{path}:1: the file is not UTF-8 text \(byte 0xe9"):
        load_config(path, env={})


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_config(path, env={}).namespace == "devtrip"


@pytest.mark.parametrize("selector", [
    "app=api", "app==api", "app!=api", "app", "!app", "app in (a, b)", "app notin (a)",
    "app.kubernetes.io/part-of=devtrip", "tier=,app", "a=b, c!=d ,e in (f,g), !h", "x>5",
])
def test_valid_label_selectors_pass(tmp_path: Path, selector: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(VALID.replace("deployment: api", f"selector: '{selector}'"))
    assert load_config(path, env={}).targets[0].selector == selector


@pytest.mark.parametrize(("env", "blamed"), [
    ({"NAMESPACE": "Bad_NS"}, "$NAMESPACE: namespace: 'Bad_NS' is not a valid namespace name"),
    ({"METRICS_SERVER": "prom etheus:9090"}, "$METRICS_SERVER: prometheus.url:"),
], ids=["namespace", "metrics-server"])
def test_a_bad_value_from_the_environment_names_the_variable(
        tmp_path: Path, env: dict[str, str], blamed: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(VALID)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    assert blamed in str(caught.value)
    assert f"{path}:" not in str(caught.value)   # no line of the file is blamed


def test_every_preset_is_valid_promql() -> None:
    for name, query in PRESETS.items():
        assert promql_problem(render(query, namespace="devtrip", window="2m")) is None, name


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


@pytest.mark.parametrize("model", [PrometheusModel, TargetModel, MetricModel, HttpMetricModel],
                         ids=lambda m: m.__name__)
def test_the_readme_configuration_table_names_every_key(model: type[BaseModel]) -> None:
    section = _readme_section("## Configuration")
    prefix = {PrometheusModel: "prometheus.", HttpMetricModel: "metrics[].http"}.get(model, "")
    for name in model.model_fields:
        camel = to_camel(name)
        assert f"`{name}" in section or f"`.{name}`" in section or f"`{camel}`" in section \
            or f"{prefix}{name}" in section or f"`{camel}:" in section, f"{name} undocumented"
    if prefix:
        assert f"`{prefix}" in section


def test_the_readme_says_simulate_and_run_share_the_policy_today() -> None:
    assert "will share" not in (ROOT / "README.md").read_text()

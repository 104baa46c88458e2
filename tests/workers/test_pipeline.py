"""workers/pipeline.py: loading pipeline files (every bad file named by file:line and field),
defaults, ready sets and skip sets of the DAG state machine, and the retry decision with its
capped exponential backoff. Pure: no cluster, no Redis."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.workers.pipeline import (
    Pipeline,
    Plan,
    RetryOn,
    StageRetryModel,
    load_pipeline,
    load_pipeline_text,
    retry_delay,
)
from devtrip_scale.workers.progress import BuildState, StageState
from tests.conftest import ROOT

HEAD = """\
name: ci
defaults:
  image: registry.example/ci:1
  resources:
    requests: {cpu: 100m, memory: 64Mi}
    limits: {cpu: 500m, memory: 256Mi}
"""


def pipeline(stages: str, fail_fast: bool = True) -> Pipeline:
    text = HEAD + f"fail_fast: {str(fail_fast).lower()}\nstages:\n" + textwrap.dedent(stages)
    return load_pipeline_text(text, "ci.yaml")


def dag(edges: dict[str, list[str]], fail_fast: bool = True) -> Plan:
    body = "".join(f"- name: {n}\n  needs: [{', '.join(needs)}]\n" for n, needs in edges.items())
    return Plan(pipeline(body, fail_fast))


# ---------------------------------------------------------------- loading


def test_a_valid_file_gets_its_defaults_and_its_own_values() -> None:
    p = pipeline("""\
        - name: build
          env: {GOFLAGS: -mod=mod}
          workers: 3
          timeout_seconds: 600
          retry: {limit: 2, backoff_seconds: 5, on: [failed, timeout], exit_codes: [1, 137]}
        - name: test
          needs: [build]
          image: registry.example/test:2
        """)
    build, test = p.stages
    assert (build.image, build.workers, build.timeout_seconds) == ("registry.example/ci:1", 3, 600)
    assert build.retry.on == (RetryOn.FAILED, RetryOn.TIMEOUT)
    assert build.retry.exit_codes == (1, 137)
    assert build.template().active_deadline_seconds == 660
    assert (test.image, test.needs, test.workers) == ("registry.example/test:2", ("build",), 1)
    assert test.retry == StageRetryModel()       # limit 0: no retries unless asked
    assert p.fail_fast is True
    assert p.where("test") == "ci.yaml:14"


def test_defaults_maps_merge_key_by_key() -> None:
    text = HEAD.replace("name: ci\n", "name: ci\n") + textwrap.dedent("""\
          env: {A: "1", B: "1"}
        stages:
        - name: one
          env: {B: "2"}
        """)
    [one] = load_pipeline_text(text, "ci.yaml").stages
    assert one.env == {"A": "1", "B": "2"}


def test_the_example_pipeline_loads() -> None:
    p = load_pipeline(ROOT / "examples" / "pipeline.yaml")
    names = [s.name for s in p.stages]
    assert names[0] == "checkout" and names[-1] == "deploy"
    plan = Plan(p)
    assert plan.ready() == ["checkout"]


BAD = [
    pytest.param("- name: a\n- name: a\n", "ci.yaml:10: stages[1].name: duplicate stage name "
                 "'a' (first at line 9)", id="duplicate-name"),
    pytest.param("- name: a\n  needs: [nope]\n", "ci.yaml:10: stages[0].needs[0]: stage 'a' "
                 "needs 'nope', which is not a stage", id="unknown-need"),
    pytest.param("- name: a\n  needs: [a]\n", "ci.yaml:10: stages[0].needs[0]: stage 'a' "
                 "needs itself", id="self-need"),
    pytest.param("- name: a\n  needs: [b]\n- name: b\n  needs: [a]\n",
                 "the needs form a cycle: a → b → a", id="cycle-of-two"),
    pytest.param("- name: a\n  needs: [c]\n- name: b\n  needs: [a]\n- name: c\n  needs: [b]\n",
                 "the needs form a cycle: ", id="cycle-of-three"),
    pytest.param("- name: Build_1\n", "ci.yaml:9: stages[0].name: 'Build_1' is not a stage "
                 "name", id="bad-name"),
    pytest.param("- name: a\n  workers: 0\n", "ci.yaml:10: stages[0].workers:",
                 id="no-workers"),
    pytest.param("- name: a\n  retries: 3\n", "ci.yaml:10: stages[0].retries: unknown key",
                 id="unknown-key"),
    pytest.param("- name: a\n  retry: {on: [crashed]}\n", "ci.yaml:10: stages[0].retry.on[0]",
                 id="unknown-retry-reason"),
    pytest.param("- name: a\n  retry: {exit_codes: [0]}\n", "ci.yaml:10: "
                 "stages[0].retry.exit_codes: exit codes are 1 to 255", id="exit-code-zero"),
    pytest.param("- name: a\n  resources: {requests: {cpu: 1m}, limits: {cpu: 1m}}\n",
                 "ci.yaml:10: stages[0].resources: requests must give memory",
                 id="resources-incomplete"),
    pytest.param("- name: a\n  resources: {requests: {cpu: 2, memory: 64Mi},\n"
                 "              limits: {cpu: 1, memory: 64Mi}}\n",
                 "ci.yaml:10: stages[0].resources: requests.cpu (2) is above limits.cpu (1)",
                 id="request-above-limit"),
    pytest.param("- name: a\n  resources:\n    requests: {cpu: 1m, memory: -1}\n"
                 "    limits: {cpu: 1m, memory: 1Mi}\n",
                 "ci.yaml:11: stages[0].resources.requests.memory: -1 is negative",
                 id="negative-request"),
]


@pytest.mark.parametrize(("stages", "message"), BAD)
def test_a_bad_pipeline_is_named_by_file_line_and_field(stages: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        pipeline(stages)
    assert message in str(e.value)


def test_a_stage_request_above_its_limit_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        load_pipeline_text(HEAD + "stages:\n- name: a\n  resources:\n    requests: {cpu: "
                           "600m, memory: 64Mi}\n    limits: {cpu: 150e-3, memory: 256Mi}\n",
                           "ci.yaml")
    assert "ci.yaml:9: stages[0].resources: requests.cpu (600m) is above limits.cpu " \
        "(150e-3)" in str(e.value)


def test_a_cycle_is_named_at_the_line_of_one_of_its_edges() -> None:
    with pytest.raises(ConfigError) as e:
        pipeline("- name: a\n  needs: [b]\n- name: b\n  needs: [a]\n")
    text = str(e.value)
    assert "ci.yaml:10: stages[0].needs[0]" in text or "ci.yaml:12: stages[1].needs[0]" in text


FILES = [
    pytest.param("name: x\nstages: []\n", "ci.yaml:2: stages: a pipeline needs at least one "
                 "stage", id="no-stages"),
    pytest.param(HEAD + "  colour: red\nstages:\n- name: a\n", "ci.yaml:2: defaults: "
                 "'colour' is not a stage field", id="defaults-unknown"),
    pytest.param("name: x\n", "ci.yaml:1: stages: a pipeline needs at least one stage",
                 id="stages-missing"),
    pytest.param("name: x\nname: y\nstages: []\n", "ci.yaml:2: duplicate key 'name'",
                 id="duplicate-key"),
    pytest.param("name: [x\n", "ci.yaml:2: not valid YAML", id="bad-yaml"),
    pytest.param("- a\n", "ci.yaml:1: the config must be a mapping", id="not-a-mapping"),
    pytest.param(HEAD.replace("image:", "name: x\n  image:") + "stages:\n- name: a\n",
                 "ci.yaml:3: defaults.name: each stage gives its own name",
                 id="defaults-name"),
]


@pytest.mark.parametrize(("text", "message"), FILES)
def test_a_bad_file_is_named_by_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_pipeline_text(text, "ci.yaml")
    assert message in str(e.value)


def test_load_pipeline_names_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the pipeline file"):
        load_pipeline(tmp_path / "missing.yaml")


# ---------------------------------------------------------------- ready sets

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
PARALLEL = {"x": [], "y": [], "z": []}
CHAIN = {"one": [], "two": ["one"], "three": ["two"]}
# a finishing releases only what needs it: c starts before slow b ends
UNEVEN = {"a": [], "b": [], "c": ["a"]}

READY = [
    pytest.param(DIAMOND, [(None, ["a"]), ("a", ["b", "c"]), ("b", []), ("c", ["d"]),
                           ("d", [])], id="diamond"),
    pytest.param(PARALLEL, [(None, ["x", "y", "z"]), ("y", []), ("x", []), ("z", [])],
                 id="parallel"),
    pytest.param(CHAIN, [(None, ["one"]), ("one", ["two"]), ("two", ["three"]),
                         ("three", [])], id="chain"),
    pytest.param(UNEVEN, [(None, ["a", "b"]), ("a", ["c"]), ("c", []), ("b", [])],
                 id="own-needs-only"),
]


@pytest.mark.parametrize(("edges", "steps"), READY)
def test_ready_sets(edges: dict[str, list[str]], steps: list[tuple[str | None, list[str]]]
                    ) -> None:
    plan = dag(edges)
    for finished, ready in steps:
        if finished is not None:
            assert plan.finished(finished, True) == []
        assert plan.ready() == ready
        assert all(plan.states[n] is StageState.RUNNING for n in ready)
    assert plan.done and plan.outcome() is BuildState.SUCCEEDED


# ---------------------------------------------------------------- skip sets

WIDE = {"a": [], "b": ["a"], "c": ["b"], "d": [], "e": ["d"], "f": ["c", "e"]}

SKIPS = [
    pytest.param(WIDE, False, ["a", "d"], "a", ["b", "c", "f"], ["d"], id="dependants-only"),
    pytest.param(WIDE, True, ["a", "d"], "a", ["b", "c", "e", "f"], ["d"],
                 id="fail-fast-skips-all-not-started"),
    pytest.param(DIAMOND, False, ["a"], "a", ["b", "c", "d"], [], id="diamond-root"),
    pytest.param(PARALLEL, False, ["x", "y", "z"], "y", [], ["x", "z"],
                 id="independent-keep-running"),
]


@pytest.mark.parametrize(("edges", "fail_fast", "started", "failed", "skipped", "running"),
                         SKIPS)
def test_skip_sets(edges: dict[str, list[str]], fail_fast: bool, started: list[str],
                   failed: str, skipped: list[str], running: list[str]) -> None:
    plan = dag(edges, fail_fast)
    assert plan.ready() == started
    assert plan.finished(failed, False) == skipped
    assert plan.running() == running
    assert all(plan.causes[n] == failed for n in skipped)
    assert plan.states[failed] is StageState.FAILED


def test_without_fail_fast_the_rest_runs_on_and_the_build_fails() -> None:
    plan = dag(WIDE, fail_fast=False)
    plan.ready()
    plan.finished("a", False)
    plan.finished("d", True)
    assert plan.ready() == ["e"]
    plan.finished("e", True)
    assert plan.ready() == []           # f needs c, skipped
    assert plan.done and plan.outcome() is BuildState.FAILED


def test_fail_fast_running_stages_are_cancelled_by_the_executor() -> None:
    plan = dag(PARALLEL, fail_fast=True)
    plan.ready()
    plan.finished("x", False)
    assert plan.running() == ["y", "z"]
    for n in plan.running():
        plan.cancel(n)
    assert plan.done and plan.outcome() is BuildState.FAILED
    assert plan.finished("y", True) == []          # a late end changes nothing
    assert plan.states["y"] is StageState.CANCELLED


def test_cancelling_the_build_skips_what_has_not_started() -> None:
    plan = dag(CHAIN)
    plan.ready()
    assert plan.cancel_all() == ["two", "three"]
    plan.cancel("one")
    assert plan.done and plan.outcome() is BuildState.CANCELLED
    assert plan.ready() == []


# ---------------------------------------------------------------- retries

DEFAULT = StageRetryModel(limit=3, backoff_seconds=2)

RETRIES = [
    pytest.param(DEFAULT, RetryOn.FAILED, 1, 0, 2.0, id="first-retry-base-delay"),
    pytest.param(DEFAULT, RetryOn.FAILED, 1, 1, 4.0, id="second-doubles"),
    pytest.param(DEFAULT, RetryOn.FAILED, 1, 2, 8.0, id="third-doubles-again"),
    pytest.param(DEFAULT, RetryOn.FAILED, 1, 3, None, id="limit-used-up"),
    pytest.param(StageRetryModel(limit=10, backoff_seconds=10, max_backoff_seconds=30),
                 RetryOn.FAILED, 1, 5, 30.0, id="capped"),
    pytest.param(StageRetryModel(limit=3, backoff_seconds=1, backoff_factor=3),
                 RetryOn.LOST, None, 2, 9.0, id="factor-three"),
    pytest.param(DEFAULT, RetryOn.TIMEOUT, None, 0, None, id="timeout-not-retried-by-default"),
    pytest.param(StageRetryModel(limit=1, on=(RetryOn.TIMEOUT,)), RetryOn.TIMEOUT, None, 0,
                 0.0, id="timeout-when-asked"),
    pytest.param(StageRetryModel(limit=1, on=(RetryOn.TIMEOUT,)), RetryOn.FAILED, 1, 0,
                 None, id="failed-not-in-on"),
    pytest.param(StageRetryModel(limit=2, exit_codes=(75,)), RetryOn.FAILED, 75, 0, 0.0,
                 id="listed-exit-code"),
    pytest.param(StageRetryModel(limit=2, exit_codes=(75,)), RetryOn.FAILED, 1, 0, None,
                 id="unlisted-exit-code"),
    pytest.param(StageRetryModel(limit=2, exit_codes=(75,)), RetryOn.EVICTED, None, 0, 0.0,
                 id="exit-codes-only-restrict-failed"),
    pytest.param(StageRetryModel(), RetryOn.FAILED, 1, 0, None, id="no-limit-no-retry"),
]


@pytest.mark.parametrize(("policy", "failure", "code", "failures", "delay"), RETRIES)
def test_retry_delay(policy: StageRetryModel, failure: RetryOn, code: int | None,
                     failures: int, delay: float | None) -> None:
    assert retry_delay(policy, failure, code, failures) == delay

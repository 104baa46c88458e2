"""Pipelines (pure): the YAML model, its checks with file:line, the DAG state machine, retries.

No I/O, no clock, no asyncio: the executor (executor.py) drives a `Plan` with what it sees, and
asks `retry_delay` whether and when a failed worker or stage runs again. The DAG is stdlib
graphlib's TopologicalSorter: a stage is ready the moment its own needs are done.
"""

from __future__ import annotations

import graphlib
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.core.yamlfile import (
    Model,
    line_index,
    parse_document,
    read_text,
    validation_error,
)
from devtrip_scale.workers.config import WorkerModel
from devtrip_scale.workers.progress import BuildState, StageState

STAGE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
STAGE_NAME_MAX = 24          # the stage name goes into task keys and pod names
MAX_STAGE_WORKERS = 100      # a stage's workers are also held to the server's limits
# Fields of a stage that `defaults:` may give; maps among them are merged key by key.
_MERGED_MAPS = ("env", "labels", "annotations", "node_selector", "nodeSelector")


class RetryOn(StrEnum):
    """Which failures a stage retries."""

    FAILED = "failed"        # the container exited non-zero
    TIMEOUT = "timeout"      # the stage ran past timeout_seconds
    EVICTED = "evicted"      # the node pressed the pod out
    LOST = "lost"            # the pod vanished (deleted, node gone) before it ended


class StageRetryModel(Model):
    limit: int = Field(default=0, ge=0, le=20, description="retries per worker (and of a "
                       "timed-out stage)")
    backoff_seconds: float = Field(default=0, ge=0, le=3600)
    backoff_factor: float = Field(default=2, ge=1, le=10)
    max_backoff_seconds: float = Field(default=300, ge=0, le=86400)
    on: tuple[RetryOn, ...] = (RetryOn.FAILED, RetryOn.EVICTED, RetryOn.LOST)
    exit_codes: tuple[int, ...] | None = Field(default=None, description="only these non-zero "
                                               "exit codes are retried (default: any)")

    @field_validator("exit_codes")
    @classmethod
    def _codes(cls, codes: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if codes is not None:
            bad = [c for c in codes if not 1 <= c <= 255]
            if bad:
                raise ValueError(f"exit codes are 1 to 255 (0 is success), not {bad[0]}")
        return codes


class StageModel(WorkerModel):
    """A stage: the worker pod template (WorkerModel's fields) plus its place in the DAG."""

    name: str
    needs: tuple[str, ...] = ()
    workers: int = Field(default=1, ge=1, le=MAX_STAGE_WORKERS)
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 86400)
    retry: StageRetryModel = StageRetryModel()

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if len(name) > STAGE_NAME_MAX or not STAGE_NAME.match(name):
            raise ValueError(f"{name!r} is not a stage name: lower-case letters, digits and "
                             f"'-', at most {STAGE_NAME_MAX} characters (it goes into pod "
                             "names)")
        return name

    def template(self) -> WorkerModel:
        """The stage's worker pod template (a pod deadline past the stage's timeout, so that
        the executor's own timeout acts first)."""
        fields = {k: getattr(self, k) for k in WorkerModel.model_fields}
        if self.timeout_seconds is not None:
            fields["active_deadline_seconds"] = self.timeout_seconds + 60
        return WorkerModel(**fields)


class Pipeline(Model):
    name: str = Field(min_length=1, max_length=253)
    fail_fast: bool = True
    defaults: dict[str, Any] = Field(default_factory=dict, description="any stage field but "
                                     "name and needs; a stage's own value wins")
    stages: tuple[StageModel, ...]

    _source: str = PrivateAttr(default="")
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @field_validator("defaults")
    @classmethod
    def _defaults(cls, defaults: dict[str, Any]) -> dict[str, Any]:
        allowed = {*StageModel.model_fields, *(f.alias for f in StageModel.model_fields.values()
                                               if f.alias)} - {"name", "needs"}
        unknown = sorted(k for k in defaults if k not in allowed)
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a stage field that defaults may give")
        return defaults

    @model_validator(mode="after")
    def _some(self) -> Pipeline:
        if not self.stages:
            raise ValueError("stages: a pipeline needs at least one stage")
        return self

    def stage(self, name: str) -> StageModel:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def source(self) -> str:
        """The file the pipeline was read from (for messages)."""
        return self._source

    def where(self, stage: str) -> str:
        """`file:line` of a stage, for messages about it."""
        return f"{self._source}:{self._lines.get(stage, 1)}"


# ---------------------------------------------------------------- loading


def load_pipeline(path: Path) -> Pipeline:
    """Read and check a pipeline file (ConfigError naming file:line and field)."""
    return load_pipeline_text(read_text(path, "pipeline file"), str(path))


def load_pipeline_text(text: str, file_name: str) -> Pipeline:
    """A pipeline from YAML text: parsed with the config loader (duplicate keys refused),
    validated, defaults applied, and the DAG checked (duplicate and unknown names, self-needs,
    cycles) — every problem a ConfigError naming `file_name`:line."""
    path = Path(file_name)
    data, node = parse_document(text, path)
    lines = line_index(node) if node is not None else {}
    stages = data.get("stages")
    if stages is None or stages == []:
        line = lines.get(("stages",), 1)
        raise ConfigError(f"{file_name}:{line}: stages: a pipeline needs at least one stage")
    merged = dict(data)
    defaults = _yaml_on(data.get("defaults"))
    if isinstance(defaults, dict):
        for key in defaults:
            if key in ("name", "needs"):
                raise ConfigError(f"{file_name}:{lines.get(('defaults', str(key)), 1)}: "
                                  f"defaults.{key}: each stage gives its own {key}, not defaults")
    if isinstance(stages, list):
        stages = [_yaml_on(s) for s in stages]
        merged["stages"] = [_with_defaults(defaults, s) if isinstance(defaults, dict) else s
                            for s in stages]
    try:
        pipeline = Pipeline.model_validate(merged)
    except ValidationError as e:
        raise validation_error(path, e, node) from None
    stage_lines = {s.name: lines.get(("stages", i), 1) for i, s in enumerate(pipeline.stages)}
    _check_graph(pipeline, file_name, lines)
    pipeline._source = file_name
    pipeline._lines = stage_lines
    return pipeline


def _yaml_on(stage: Any) -> Any:
    """YAML 1.1 reads the key `on` (of `retry:`) as the boolean true: give it its name back."""
    if isinstance(stage, dict) and isinstance(stage.get("retry"), dict) and \
            True in stage["retry"]:
        retry = {("on" if k is True else k): v for k, v in stage["retry"].items()}
        return {**stage, "retry": retry}
    return stage


def _with_defaults(defaults: dict[str, Any], stage: Any) -> Any:
    if not isinstance(stage, dict):
        return stage
    out = {**defaults, **stage}
    for key in _MERGED_MAPS:
        if isinstance(defaults.get(key), dict) and isinstance(stage.get(key), dict):
            out[key] = {**defaults[key], **stage[key]}
    return out


def _check_graph(pipeline: Pipeline, file_name: str,
                 lines: dict[tuple[str | int, ...], int]) -> None:
    problems: list[tuple[int, str]] = []
    first: dict[str, int] = {}
    for i, s in enumerate(pipeline.stages):
        line = lines.get(("stages", i, "name"), lines.get(("stages", i), 1))
        if s.name in first:
            problems.append((line, f"stages[{i}].name: duplicate stage name {s.name!r} (first "
                                   f"at line {first[s.name]}); give each stage its own name"))
        else:
            first[s.name] = line
    for i, s in enumerate(pipeline.stages):
        for j, need in enumerate(s.needs):
            line = lines.get(("stages", i, "needs", j), lines.get(("stages", i), 1))
            where = f"stages[{i}].needs[{j}]"
            if need == s.name:
                problems.append((line, f"{where}: stage {s.name!r} needs itself"))
            elif need not in first:
                known = ", ".join(sorted(first))
                problems.append((line, f"{where}: stage {s.name!r} needs {need!r}, which is "
                                       f"not a stage of this pipeline (stages: {known})"))
    if problems:
        raise _problems(file_name, problems)
    sorter = graphlib.TopologicalSorter({s.name: s.needs for s in pipeline.stages})
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        cycle: list[str] = list(e.args[1])       # [a, b, ..., a]: each needs the one before
        # the edge "cycle[1] needs cycle[0]" is where the cycle is named
        index = next(i for i, s in enumerate(pipeline.stages) if s.name == cycle[1])
        j = pipeline.stages[index].needs.index(cycle[0])
        line = lines.get(("stages", index, "needs", j), lines.get(("stages", index), 1))
        path = " → ".join(reversed(cycle))
        raise _problems(file_name, [(line, f"stages[{index}].needs[{j}]: the needs form a "
                                           f"cycle: {path} (each stage needs the next)")]
                        ) from None


def _problems(file_name: str, problems: list[tuple[int, str]]) -> ConfigError:
    rows = [f"  {file_name}:{line}: {text}" for line, text in sorted(problems)]
    return ConfigError(f"{file_name}: {len(rows)} error(s) in the pipeline\n" + "\n".join(rows))


# ---------------------------------------------------------------- the DAG


class Plan:
    """Which stages run when, driven by the executor: `ready()` gives the stages to start now,
    `finished()` what a stage's end means for the rest. Stage states are kept in `states`."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.order = tuple(s.name for s in pipeline.stages)
        self.needs = {s.name: s.needs for s in pipeline.stages}
        self.states: dict[str, StageState] = dict.fromkeys(self.order, StageState.WAITING)
        self.causes: dict[str, str] = {}           # skipped stage → the failed stage
        self.cancelled = False
        self._sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(self.needs)
        self._sorter.prepare()

    def ready(self) -> list[str]:
        """Stages whose needs all succeeded, not started yet (now RUNNING), in file order."""
        got = set(self._sorter.get_ready()) if self._sorter.is_active() else set()
        start = [n for n in self.order if n in got and self.states[n] is StageState.WAITING]
        for n in start:
            self.states[n] = StageState.RUNNING
        return start

    def running(self) -> list[str]:
        return [n for n in self.order if self.states[n] in (StageState.RUNNING,
                                                            StageState.RETRYING)]

    def finished(self, stage: str, ok: bool) -> list[str]:
        """A started stage ended; the stages now skipped. A failure skips all its transitive
        dependants; with fail_fast every stage not yet started (the executor cancels the
        running ones and reports them with `cancel`)."""
        if self.states[stage].done:
            return []
        if ok:
            self.states[stage] = StageState.SUCCEEDED
            self._sorter.done(stage)
            return []
        self.states[stage] = StageState.FAILED
        doomed = self.dependants(stage)
        if self.pipeline.fail_fast:
            doomed |= {n for n in self.order if self.states[n] is StageState.WAITING}
        return self._skip(doomed, stage)

    def cancel(self, stage: str) -> None:
        """A running stage was cancelled (fail-fast or the build cancelled)."""
        if not self.states[stage].done:
            self.states[stage] = StageState.CANCELLED

    def cancel_all(self) -> list[str]:
        """The build is cancelled: the stages not started are skipped (returned); the running
        ones are for the executor to cancel."""
        self.cancelled = True
        return self._skip({n for n in self.order if self.states[n] is StageState.WAITING}, "")

    def _skip(self, names: set[str], cause: str) -> list[str]:
        skipped = [n for n in self.order if n in names and self.states[n] is StageState.WAITING]
        for n in skipped:
            self.states[n] = StageState.SKIPPED
            self.causes[n] = cause
        return skipped

    def dependants(self, stage: str) -> set[str]:
        """Every stage that needs `stage`, directly or through others."""
        out: set[str] = set()
        frontier = [stage]
        while frontier:
            current = frontier.pop()
            for n in self.order:
                if current in self.needs[n] and n not in out:
                    out.add(n)
                    frontier.append(n)
        return out

    @property
    def done(self) -> bool:
        return all(s.done for s in self.states.values())

    def outcome(self) -> BuildState:
        """The build's state now: RUNNING until every stage is done."""
        if not self.done:
            return BuildState.RUNNING
        if self.cancelled:
            return BuildState.CANCELLED
        if all(s is StageState.SUCCEEDED for s in self.states.values()):
            return BuildState.SUCCEEDED
        return BuildState.FAILED


# ---------------------------------------------------------------- retries


def retry_delay(policy: StageRetryModel, failure: RetryOn, exit_code: int | None,
                failures: int) -> float | None:
    """Seconds to wait before the next attempt, or None when `failure` is not retried: not in
    `on`, an exit code outside `exit_codes`, or `limit` retries used (`failures` so far).
    Exponential backoff: backoff_seconds × backoff_factor^failures, capped."""
    if failures >= policy.limit or failure not in policy.on:
        return None
    if failure is RetryOn.FAILED and policy.exit_codes is not None and \
            exit_code not in policy.exit_codes:
        return None
    delay: float = policy.backoff_seconds * policy.backoff_factor ** failures
    return min(delay, policy.max_backoff_seconds)

"""`devscale config validate|show|init`: check, print or start a configuration file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from devtrip_scale.cli import _wiring as wiring
from devtrip_scale.cli._common import (
    ConfigOption,
    DebugOption,
    Output,
    OutputOption,
    err,
    example,
    guard,
    json_failure,
    load,
    print_json,
)
from devtrip_scale.core.errors import ConfigError, MetricsError

if TYPE_CHECKING:
    from devtrip_scale.scaling.config import Settings

app = typer.Typer(help="Check, show or start a configuration file.", no_args_is_help=True)

# workers.yaml's `worker:` and the pipeline file: said by `config validate` of a workers
# config (and in the README), so that nobody expects the one to shape the other.
WORKER_TEMPLATE_NOTE = (
    "worker: is the pod template of scale requests (the stream and ScaleUp) only; pipeline "
    "stages do not use it: their pods take image, command, args, env, resources, labels, "
    "annotations, service_account and node_selector from the pipeline file (defaults: and "
    "each stage)")


class FileKind(StrEnum):
    """The kinds of file devscale reads."""

    check = "check"          # devscale.yaml: check, run, status, simulate
    workers = "workers"      # workers.yaml: devscale workers serve|submit|status
    pipeline = "pipeline"    # a pipeline file: devscale pipeline run


def detect_kind(data: Any) -> FileKind:
    """The kind of a parsed file, by its keys: `stages` is a pipeline, `worker` (the pod
    template every workers.yaml needs) a workers config, anything else a check config."""
    if isinstance(data, dict):
        if "stages" in data:
            return FileKind.pipeline
        if "worker" in data:
            return FileKind.workers
    return FileKind.check


@app.command("validate", epilog=example("devscale config validate -c devscale.yaml "
                    "--online"))
def config_validate(
    config: ConfigOption = Path("devscale.yaml"),
    online: Annotated[bool, typer.Option(
        "--online", help="Also run every metric's query on Prometheus to check it is accepted "
        "and returns data.")] = False,
    output: OutputOption = Output.table,
    kind: Annotated[FileKind | None, typer.Option(
        "--kind", help="What the file is: check (devscale.yaml), workers (workers.yaml) or "
        "pipeline (a pipeline file). Default: told by its keys (stages: a pipeline, worker: a "
        "workers config, else a check config).")] = None,
    debug: DebugOption = False,
) -> None:
    """Check a config, workers or pipeline file; errors name the file, line and field.

    Offline: a workers config's TLS files must exist, its tokens are not read; a pipeline is
    checked as the server will check it, but for the server's own limits.

    Exit codes: 0 valid, 2 config error, 3 Prometheus unreachable (with --online).
    """
    found: FileKind | None = kind

    def body() -> int:
        nonlocal found
        if found is None:
            from devtrip_scale.core.yamlfile import read_document

            found = detect_kind(read_document(config)[0])
        if found is not FileKind.check:
            if online:
                raise ConfigError(f"--online runs a check config's queries; {config} is a "
                                  f"{found.value} file")
            return _validate_worker_file(config, found, output)
        settings = load(config)
        warnings = _validate_online(config, settings) if online else []
        if settings.is_fleet:
            return _fleet_valid(config, settings, online, warnings, output)
        if output is Output.json:
            print_json({"config": str(config), "kind": "check", "valid": True,
                         "online": online,
                         "namespace": settings.namespace, "targets": len(settings.targets),
                         "metrics": len(settings.metrics), "warnings": warnings,
                         "exitCode": 0, "error": None})
        else:
            print(f"{config}: valid ({len(settings.targets)} target(s), "
                  f"{len(settings.metrics)} metric(s), namespace {settings.namespace})"
                  + (", every query accepted by Prometheus" if online else ""))
        return 0

    guard(debug, body, json_failure(lambda: {
        "config": str(config), "kind": found.value if found else None, "valid": False,
        "online": online}) if output is Output.json else None)


def _validate_worker_file(path: Path, kind: FileKind, output: Output) -> int:
    """A workers config or a pipeline file, loaded as `workers serve` and the server load
    them (ConfigError with file:line); one line (or document) saying what it holds."""
    document: dict[str, Any]
    if kind is FileKind.workers:
        from devtrip_scale.workers.config import load_workers_config

        w = load_workers_config(path)
        api = w.api.listen if w.api.enabled else "off"
        document = {"namespace": w.namespace, "maxWorkers": w.limits.max_workers,
                    "api": api, "notes": [WORKER_TEMPLATE_NOTE]}
        text = (f"{path}: valid workers config (namespace {w.namespace}, max "
                f"{w.limits.max_workers} workers, gRPC API {api})")
    else:
        from devtrip_scale.workers.pipeline import load_pipeline

        p = load_pipeline(path)
        workers = sum(s.workers for s in p.stages)
        document = {"pipeline": p.name, "stages": len(p.stages), "workers": workers,
                    "notes": []}
        text = (f"{path}: valid pipeline {p.name} ({len(p.stages)} stage(s), {workers} "
                "worker pod(s) a run; the server also holds them to its limits)")
    if output is Output.json:
        print_json({"config": str(path), "kind": kind.value, "valid": True, "online": False,
                    **document, "exitCode": 0, "error": None})
    else:
        print(text)
        for note in document["notes"]:
            err.print(f"note: {note}", style="yellow", markup=False)
    return 0


def _fleet_valid(config: Path, settings: Settings, online: bool, warnings: list[str],
                 output: Output) -> int:
    """`config validate`'s answer for a fleet config."""
    policies, metrics = settings.policies or {}, settings.fleet_metrics()
    covers = (f"namespaces {', '.join(settings.namespaces)}" if settings.namespaces
              else f"namespaces labelled {settings.namespace_selector}"
              if settings.namespace_selector else "all namespaces")
    if output is Output.json:
        print_json({"config": str(config), "valid": True, "online": online,
                    "namespace": settings.namespace, "fleet": True,
                    "namespaces": list(settings.namespaces or ()),
                    "namespaceSelector": settings.namespace_selector,
                    "allNamespaces": settings.all_namespaces, "policies": sorted(policies),
                    "metrics": len(metrics), "warnings": warnings, "exitCode": 0,
                    "error": None})
    else:
        print(f"{config}: valid fleet config ({len(policies)} polic"
              f"{'y' if len(policies) == 1 else 'ies'}: {', '.join(sorted(policies))}; "
              f"{len(metrics)} metric(s), one query each; {covers}; Lease in namespace "
              f"{settings.namespace})" + (", every query accepted by Prometheus" if online
                                          else ""))
    return 0


def _metric_fields(settings: Settings) -> list[tuple[Any, tuple[str | int, ...]]]:
    """Each metric to query and the path of its first definition in the file."""
    if not settings.is_fleet:
        return [(m, ("metrics", i)) for i, m in enumerate(settings.metrics)]
    first: dict[str, tuple[Any, tuple[str | int, ...]]] = {}
    for name, policy in (settings.policies or {}).items():
        for i, m in enumerate(policy.metrics):
            first.setdefault(m.name, (m, ("policies", name, "metrics", i)))
    return list(first.values())


def _validate_online(path: Path, settings: Settings) -> list[str]:
    """Run each metric's query; raise ConfigError for refused ones, MetricsError when
    Prometheus (or an http endpoint) cannot be reached. Returns the warnings it printed."""
    from devtrip_scale.core.yamlfile import field_line
    from devtrip_scale.scaling.fleet import fleet_queries
    from devtrip_scale.scaling.reconcile import metric_queries

    source = wiring.metrics_source(settings)
    queries = fleet_queries(settings, settings.namespaces or ()) if settings.is_fleet \
        else metric_queries(settings)
    try:
        results = source.fetch(queries)
    finally:
        source.close()
    problems, unreachable, warnings = [], [], []
    for (metric, loc), result in zip(_metric_fields(settings), results, strict=True):
        if result.error is None:
            continue
        key = "http" if metric.http else ("preset" if metric.preset else "query")
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)[1:]
        where = f"{path}:{field_line(path, (*loc, key))}: {field}.{key}"
        if result.error.startswith("the query returned no series"):
            warnings.append(f"{where}: accepted, but no data yet ({result.error})")
            err.print(f"warning: {warnings[-1]}", style="yellow", markup=False)
        elif _unreachable(result.error):
            unreachable.append(f"  {field} {metric.name}: {result.error}")
        else:
            problems.append(f"  {where}: {result.error}")
    if problems:
        raise ConfigError(f"{path}: {len(problems)} metric(s) failed on "
                          f"{settings.prometheus.url}\n" + "\n".join(problems))
    if unreachable:
        raise MetricsError(f"{path}: {len(unreachable)} metric(s) could not be checked: their "
                           "source did not answer (the config itself may be fine)\n"
                           + "\n".join(unreachable))
    return warnings


def _unreachable(error: str) -> bool:
    """A metric error that says the source could not be reached, not that it refused the query
    (the wording of sources/prometheus.py and sources/http_json.py)."""
    return (error.startswith(("cannot connect to", "cannot reach"))
            or " did not answer within " in error)


@app.command("show", epilog=example("NAMESPACE=staging devscale config show -c "
                    "devscale.yaml"))
def config_show(
    config: ConfigOption = Path("devscale.yaml"),
    output: Annotated[Output, typer.Option(
        "--output", "-o", help="table: YAML for people; json: one document for machines, "
        "also on errors.")] = Output.table,
    debug: DebugOption = False,
) -> None:
    """Print the effective config (file + environment, every default filled in) as YAML."""

    def body() -> int:
        import yaml

        from devtrip_scale.scaling.config import effective

        data = effective(load(config))
        if output is Output.json:
            print_json({"config": str(config), "settings": data, "exitCode": 0, "error": None})
        else:
            print(yaml.safe_dump(data, sort_keys=False), end="")
        return 0

    guard(debug, body, json_failure(lambda: {"config": str(config), "settings": None})
           if output is Output.json else None)


@app.command("init", epilog=example("devscale config init devscale.yaml"))
def config_init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter config.",
                                         metavar="[<file>]")] = Path("devscale.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    debug: DebugOption = False,
) -> None:
    """Write a commented starter config (the load-based example)."""

    def body() -> int:
        import shlex
        from importlib.resources import files

        if path.exists() and not force:
            raise ConfigError(f"{path} exists; pass --force to overwrite it")
        starter = files("devtrip_scale").joinpath("starter.yaml").read_text("utf-8")
        # The starter's first lines tell how to validate it: name the file it was written to.
        starter = starter.replace("-c devscale.yaml", f"-c {shlex.quote(str(path))}", 1)
        try:
            path.write_text(starter, encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: cannot write the starter config: "
                              f"{e.strerror or e}") from None
        print(f"wrote {path}; edit it, then run: devscale config validate -c {path}")
        return 0

    guard(debug, body)

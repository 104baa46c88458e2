"""A check's report as a rich table, a JSON document and `--debug` detail (pure, no I/O)."""

from __future__ import annotations

import io
import json
import os
import re
from typing import Any, TextIO, cast

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from devtrip_scale.scaling.models import Decision, Proposal
from devtrip_scale.scaling.report import CheckReport, TargetResult

_UNITS = {"Utilization": "%", "Value": "", "AverageValue": ""}
WIDE = 200   # columns when stdout is not a terminal: rows fold only past this
_PADDING = re.compile(r"[ \t]+(?=\n)")


class _Trimmed(io.TextIOBase):
    """A text stream that drops the spaces rich pads each line with, before the newline."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        self._out.write(_PADDING.sub("", text))
        return len(text)

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return False


def console(out: TextIO) -> Console:
    """A console on `out`: a terminal as it is; anything else (a cron log, CI, a pipe) gets
    lines as long as their content (no padding), folded past $COLUMNS or WIDE columns."""
    if out.isatty():
        return Console(file=out, highlight=False)
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else WIDE
    return Console(file=cast(TextIO, _Trimmed(out)), width=width, highlight=False,
                   color_system=None, soft_wrap=False)


def fmt_number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) and abs(value) < 1e15 else f"{value:.3g}"


def proposal_text(p: Proposal, failed_query: bool = False) -> str:
    """One metric of a Deployment; `failed_query`: the metric's whole query failed, and that
    error is printed once below the table rather than in every row."""
    unit = _UNITS[p.type]
    target = f"{fmt_number(p.target)}{unit}"
    if p.type == "AverageValue":
        target += "/replica"
    if p.reading is None:
        why = "query failed, see below" if failed_query else (p.error or "missing")
        return f"{p.name}: no reading ({why}) / {target}"
    asks = f"→ {p.replicas}" + (" (within tolerance)" if p.within_tolerance else "")
    return f"{p.name}: {fmt_number(p.reading)}{unit} / {target} {asks}"


def action_text(result: TargetResult, dry_run: bool) -> str:
    if result.error is not None:
        return "failed"
    if result.skipped is not None:
        return "skipped"
    d = result.decision
    if d is None or d.desired_replicas == d.current_replicas:
        return "hold" if d is not None and d.action == "hold" else "none"
    verb = "scaled" if result.applied else ("would scale" if dry_run else "not scaled")
    return f"{verb} {'up' if d.action == 'scale_up' else 'down'}"


def explanation(d: Decision) -> str:
    text = f"{d.reason}: {d.message}"
    if d.held_until is not None:
        text += f" (until {d.held_until.isoformat(timespec='seconds')})"
    return text


def table(report: CheckReport) -> RenderableType:
    title = f"devscale check — namespace {report.namespace}"
    if report.dry_run:
        title += " (dry run)"
    t = Table(title=title, title_justify="left", show_lines=True)
    for column in ("Deployment", "Replicas", "Metrics (reading / target → replicas)", "Action",
                   "Reason"):
        t.add_column(column, overflow="fold")
    for r in report.results:
        d = r.decision
        if d is None:
            why = r.error or r.skipped or ""
            t.add_row(r.deployment, "", "", action_text(r, report.dry_run),
                      Text(why, style="red" if r.error else "yellow"))
            continue
        replicas = f"{d.current_replicas} → {d.desired_replicas}"
        if d.ready_pods is not None and d.ready_pods != d.current_replicas:
            replicas += f"\n({d.ready_pods} ready)"
        metrics = "\n".join(proposal_text(p, p.error is not None and p.error == report
                                          .metric_errors.get(p.name)) for p in d.proposals)
        reason = explanation(d) + (f"\nerror: {r.error}" if r.error else "")
        t.add_row(d.deployment, replicas, metrics, action_text(r, report.dry_run), reason)
    parts: list[RenderableType] = [t]
    for r in report.results:
        parts += [Text(f"warning: {r.deployment}: {w}", style="yellow") for w in r.warnings]
        if r.capacity is not None:
            parts.append(Text(f"{r.deployment}: {r.capacity}", style="red"))
    for name, error in report.metric_errors.items():
        hit = [r.deployment for r in report.results if r.decision is not None and any(
            p.name == name and p.reading is None for p in r.decision.proposals)]
        parts.append(Text(f"metric {name}: {error}"
                          + (f" (no reading for {', '.join(hit)})" if hit else ""),
                          style="yellow"))
    for warning in report.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    for problem in (report.lock_lost, report.history_error):
        if problem is not None:
            parts.append(Text(f"error: {problem}", style="red"))
    if report.notified:
        parts.append(Text(f"notified: {len(report.notified)} notice(s): "
                          + "; ".join(n.title for n in report.notified)))
    for failure in report.notify_failures:
        parts.append(Text(f"notification failed: {failure} (the scaling stands)", style="red"))
    if not report.results:
        parts.append(Text("no target Deployment found", style="yellow"))
    return Group(*parts)


def debug(report: CheckReport) -> str:
    """One line per request, in order: copyable PromQL and API calls with their timings."""
    lines = ["debug: requests in order"]
    for e in report.trace.entries:
        lines.append(f"  [{e.kind} {e.millis:7.1f} ms {e.outcome}] {e.detail}")
    return "\n".join(lines)


def to_dict(report: CheckReport) -> dict[str, Any]:
    """The JSON document of `check --output json` (stable keys, camelCase like the API)."""
    return {
        "namespace": report.namespace,
        "dryRun": report.dry_run,
        "time": report.started_at.isoformat(),
        "exitCode": int(report.exit_code),
        "deployments": [_result_dict(r, report.dry_run, report.namespace_of(r))
                        for r in report.results],
        "metricErrors": report.metric_errors,
        "warnings": report.warnings,
        "queries": [{"metric": q.name, "promql": q.promql} if q.url is None
                    else {"metric": q.name, "url": q.url} for q in report.queries],
        "notified": [{"kind": n.kind, "severity": n.severity, "title": n.title,
                      "deployment": n.deployment} for n in report.notified],
        "notifyFailures": report.notify_failures,
        "historyError": report.history_error,
        "lockLost": report.lock_lost,
    }


def to_json(report: CheckReport, *, debug: bool = False) -> str:
    data = to_dict(report)
    if debug:
        data["trace"] = [
            {"kind": e.kind, "request": e.detail, "ms": round(e.millis, 2), "outcome": e.outcome}
            for e in report.trace.entries
        ]
    return json.dumps(data, indent=2)


def _result_dict(r: TargetResult, dry_run: bool, namespace: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.deployment, "namespace": namespace,
                           "action": action_text(r, dry_run),
                           "applied": r.applied, "error": r.error, "skipped": r.skipped,
                           "warnings": r.warnings, "capacity": r.capacity}
    if r.policy is not None or r.deferred is not None:
        out.update(policy=r.policy, deferred=r.deferred)
    d = r.decision
    if d is not None:
        out.update(
            currentReplicas=d.current_replicas,
            readyReplicas=d.ready_pods,
            desiredReplicas=d.desired_replicas,
            recommendation=d.recommendation,
            reason=d.reason,
            message=d.message,
            decidingMetric=d.deciding_metric,
            heldUntil=d.held_until.isoformat() if d.held_until else None,
            limits=list(d.limits),
            metrics=[
                {"name": p.name, "type": p.type, "target": p.target, "reading": p.reading,
                 "replicas": p.replicas, "withinTolerance": p.within_tolerance, "error": p.error}
                for p in d.proposals
            ],
        )
    return out

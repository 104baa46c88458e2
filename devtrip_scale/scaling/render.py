"""A check's report as kubectl-shaped lines, a JSON document and `--debug` detail (pure, no I/O)."""

from __future__ import annotations

import io
import json
import os
import re
from datetime import datetime
from typing import Any, TextIO, cast

from rich.console import Console, Group, RenderableType
from rich.text import Text

from devtrip_scale.core import columns
from devtrip_scale.core.columns import KEEP, Cell, Column, age, fit
from devtrip_scale.scaling.models import Decision
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


FOLD = 50   # more rows than this: the rows that did nothing fold into a count per namespace
_ACTION_STYLES = {"scaled up": "green", "scaled down": "cyan", "would scale up": "green",
                  "would scale down": "cyan", "not scaled up": "red", "not scaled down": "red",
                  "failed": "bold red", "skipped": "yellow", "held": "yellow", "hold": "yellow",
                  "none": "dim"}


def shown_action(result: TargetResult, dry_run: bool) -> str:
    """The ACTION column: `action_text`, except that replicas a rule kept where they were
    (a stabilisation window, a cooldown, a rate limit) read `held`."""
    text = action_text(result, dry_run)
    d = result.decision
    if text == "none" and d is not None and d.limits:
        return "held"
    return text


def short_metric(d: Decision) -> str:
    """The deciding metric as `kubectl get hpa` shows a target: `cpu 140%/70%`, an AverageValue
    as the average per ready pod (`rps 60/100 (avg)`), no reading as `<unknown>`."""
    p = next((p for p in d.proposals if p.name == d.deciding_metric), None)
    if p is None:
        p = next(iter(d.proposals), None)
    if p is None:
        return "-"
    unit = _UNITS[p.type]
    if p.reading is None:
        return f"{p.name} <unknown>/{fmt_number(p.target)}{unit}"
    if p.type == "AverageValue":
        pods = d.ready_pods if d.ready_pods else d.current_replicas
        average = p.reading / pods if pods else p.reading
        return f"{p.name} {fmt_number(float(f'{average:.3g}'))}/{fmt_number(p.target)} (avg)"
    return f"{p.name} {fmt_number(p.reading)}{unit}/{fmt_number(p.target)}{unit}"


def short_reason(d: Decision, now: datetime) -> str:
    """`DesiredWithinRange: cpu asks for 4`; a window's hold as its remaining time (`for 4m`)."""
    text = f"{d.reason}: {d.message}" if d.message else d.reason
    if d.held_until is not None:
        text += f" (for {age(d.held_until - now)})"
    return text


def summary(report: CheckReport) -> str:
    """The first line: how many Deployments (in how many namespaces) and what happened to them,
    e.g. `3 Deployments in namespace devtrip: 1 scaled up, 2 unchanged, 0 errors`."""
    counts: dict[str, int] = {}
    for r in report.results:
        action = shown_action(r, report.dry_run)
        key = {"failed": "errors", "none": "unchanged", "hold": "held"}.get(action, action)
        counts[key] = counts.get(key, 0) + 1
    order = ["scaled up", "scaled down", "would scale up", "would scale down", "not scaled up",
             "not scaled down", "held", "skipped"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    errors = counts.get("errors", 0)
    parts += [f"{counts.get('unchanged', 0)} unchanged",
              f"{errors} error{'' if errors == 1 else 's'}"]
    n = len(report.results)
    namespaces = sorted({report.namespace_of(r) for r in report.results})
    where = f"{len(namespaces)} namespaces" if len(namespaces) > 1 else \
        f"namespace {namespaces[0] if namespaces else report.namespace}"
    dry = " (dry run)" if report.dry_run else ""
    return f"{n} Deployment{'' if n == 1 else 's'} in {where}{dry}: {', '.join(parts)}"


def _row(report: CheckReport, r: TargetResult, fleet: bool, wide: bool) -> list[Cell]:
    action = shown_action(r, report.dry_run)
    cells = [Cell(report.namespace_of(r))] if fleet else []
    cells.append(Cell(r.deployment))
    d = r.decision
    if d is None:
        why = r.error or r.skipped or ""
        cells += [Cell("-")] + ([Cell("-")] if wide else []) + [
            Cell("-"), Cell(action, _ACTION_STYLES.get(action, "")),
            Cell(why, "red" if r.error else "yellow")]
        return cells
    cells.append(Cell(f"{d.current_replicas} → {d.desired_replicas}"))
    if wide:
        cells.append(Cell(f"{d.current_replicas if d.ready_pods is None else d.ready_pods}"
                          f"/{d.current_replicas}"))
    reason = f"error: {r.error}" if r.error else short_reason(d, report.started_at)
    cells += [Cell(short_metric(d), "bold"), Cell(action, _ACTION_STYLES.get(action, "")),
              Cell(reason, "red" if r.error else "")]
    return cells


def _columns(fleet: bool, wide: bool) -> list[Column]:
    """REASON gives way first, then the names, then the metric: the action and the deciding
    metric stay readable at 80 columns."""
    cols = [Column("NAMESPACE", (16, 12, 8))] if fleet else []
    cols += [Column("NAME", (24, 14, 10, 8)), Column("REPLICAS")]
    if wide:
        cols.append(Column("READY"))
    return [*cols, Column("METRIC", (KEEP, KEEP, KEEP, 12)), Column("ACTION"),
            Column("REASON", (24, 20, 10, 8))]


def _details(report: CheckReport, r: TargetResult, width: int) -> list[Text]:
    """The per-metric breakdown of one Deployment (the deciding metric marked `*`, bold on a
    terminal), then its full reason, limits and problems, each wrapped between words."""
    indent = "    "
    lines: list[Text] = []
    d = r.decision
    if d is not None and d.proposals:
        rows = []
        for p in d.proposals:
            mark = "*" if p.name == d.deciding_metric else " "
            unit = _UNITS[p.type]
            target = f"{fmt_number(p.target)}{unit}" + (
                " per replica" if p.type == "AverageValue" else "")
            if p.reading is None:
                failed = p.error is not None and p.error == report.metric_errors.get(p.name)
                reading = "no reading"
                asks = "query failed, see below" if failed else (p.error or "missing")
            else:
                reading = f"{fmt_number(p.reading)}{unit}"
                asks = f"→ {p.replicas}" + (" (within tolerance)" if p.within_tolerance
                                             else "")
            style = "bold" if mark == "*" else ""
            rows.append([Cell(f"{mark} {p.name}", style), Cell(f"{reading} / {target}"),
                         Cell(asks)])
        metric_cols = [Column("METRIC", (16, 8)), Column("READING / TARGET", (16, 8)),
                       Column("ASKS", (8,))]
        for text in columns.table(metric_cols, rows, width - len(indent)):
            lines.append(Text(indent) + text)
    notes: list[tuple[str, str]] = []
    if d is not None:
        held = f" (until {d.held_until.isoformat(timespec='seconds')}, " \
               f"{age(d.held_until - report.started_at)} from now)" if d.held_until else ""
        notes.append((f"reason: {d.reason}: {d.message}{held}", ""))
        if d.recommendation is not None and d.recommendation != d.desired_replicas:
            notes.append((f"recommended {d.recommendation}, limited by "
                          f"{', '.join(d.limits) or d.reason}", ""))
    if r.error:
        notes.append((f"error: {r.error}", "red"))
    if r.skipped:
        notes.append((f"skipped: {r.skipped}", "yellow"))
    notes += [(f"warning: {w}", "yellow") for w in r.warnings]
    if r.capacity is not None:
        notes.append((r.capacity, "red"))
    for note, style in notes:
        for i, part in enumerate(columns.wrap(note, width - len(indent) - 2)):
            lines.append(Text(indent + ("" if i == 0 else "  ") + part, style=style or ""))
    return lines


def table(report: CheckReport, *, width: int = 80, wide: bool = False,
          details: bool = False) -> RenderableType:
    """The check's report as `kubectl get hpa` prints HPAs: a summary line, then one line per
    Deployment (NAMESPACE first and rows grouped by it when the report spans several) at most
    `width` columns, the rest of each cell cut at a word with `…`. More than FOLD rows: those
    that did nothing fold into one count line per namespace. `wide` (-o wide): every row, a
    READY column and each Deployment's per-metric breakdown; `details` (-d): the breakdown."""
    fleet = len({report.namespace_of(r) for r in report.results}) > 1
    ordered = sorted(report.results, key=report.namespace_of) if fleet else report.results
    fold = not wide and len(ordered) > FOLD
    listed: list[TargetResult] = []
    folded: dict[str, int] = {}
    for r in ordered:
        quiet = shown_action(r, report.dry_run) == "none" and not r.warnings \
            and r.capacity is None
        if fold and quiet:
            ns = report.namespace_of(r)
            folded[ns] = folded.get(ns, 0) + 1
        else:
            listed.append(r)
    cols = _columns(fleet, wide)
    rows = [_row(report, r, fleet, wide) for r in listed]
    sizes = columns.widths(cols, rows, width)
    parts: list[RenderableType] = [Text(summary(report), style="bold")]
    if report.results:
        parts.append(columns.line([Cell(c.header) for c in cols], sizes))

    groups: dict[str, list[tuple[TargetResult, list[Cell]]]] = {}
    for r, row in zip(listed, rows, strict=True):
        groups.setdefault(report.namespace_of(r), []).append((r, row))
    for ns in sorted({*groups, *folded}) if fleet else [*groups, *folded][:1]:
        for r, row in groups.get(ns, []):
            parts.append(columns.line(row, sizes))
            if wide or details:
                parts += _details(report, r, width)
        if folded.get(ns):
            lead = fit(ns, sizes[0]).ljust(sizes[0] + columns.GAP) if fleet else ""
            parts.append(Text(f"{lead}{folded[ns]} more unchanged (-o wide lists them)",
                              style="dim"))
    for r in listed:
        if wide or details:
            continue
        name = f"{report.namespace_of(r)}/{r.deployment}" if fleet else r.deployment
        if r.error is not None:
            parts.append(Text(f"error: {name}: {r.error}", style="red"))
        parts += [Text(f"warning: {name}: {w}", style="yellow") for w in r.warnings]
        if r.capacity is not None:
            parts.append(Text(f"{name}: {r.capacity}", style="red"))
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

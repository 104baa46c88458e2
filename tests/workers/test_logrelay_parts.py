"""The pure parts of workers/logrelay.py: timestamped pods/log lines (RFC 3339 with 0 to 9
fractional digits), the sinceTime second, the TimeMerge's release rules (watermark, window,
closed sources, late lines), the tags a line gets from its pod, and a pod journal's
deduplication of lines relayed twice (a re-opened follow, the last read) and its limit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from devtrip_scale.kube.aio import AsyncKube
from devtrip_scale.workers.journal import Journal, Missed
from devtrip_scale.workers.logrelay import (
    LogRelay,
    TimeMerge,
    parse_line,
    parse_time,
    since_stamp,
    tag,
)

BASE = datetime(2026, 12, 2, 13, 4, 5, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("raw", "time", "text"), [
    ("2026-12-02T13:04:05Z hello", BASE, "hello"),
    ("2026-12-02T13:04:05.5Z a b  c", BASE + 0.5, "a b  c"),
    ("2026-12-02T13:04:05.123456Z x", BASE + 0.123456, "x"),
    ("2026-12-02T13:04:05.123456789Z x", BASE + 0.123456789, "x"),
    ("2026-12-02T15:04:05.25+02:00 zone", BASE + 0.25, "zone"),
    ("2026-12-02T13:04:05Z ", BASE, ""),
    ("2026-12-02T13:04:05Z", BASE, ""),
    ("2026-12-02t13:04:05z lower", BASE, "lower"),
], ids=["whole-seconds", "one-digit", "micro", "nano", "offset", "empty-text", "no-text",
        "lower-case"])
def test_parse_line(raw: str, time: float, text: str) -> None:
    t, got = parse_line(raw)
    assert got == text
    assert t == pytest.approx(time, abs=1e-6)


@pytest.mark.parametrize("raw", [
    "", "hello world", "2026-12-02 13:04:05Z x", "2026-12-02T13:04:05 x",
    "2026-12-02T13:04:05.Z x", "2026-12-02T13:04:05.1234567891Z x", "2026-13-02T13:04:05Z x",
], ids=["empty", "no-stamp", "space-not-T", "no-zone", "dot-no-digits", "ten-digits",
        "month-13"])
def test_parse_line_refuses(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_line(raw)


def test_nanoseconds_keep_their_order() -> None:
    a = parse_time("2026-12-02T13:04:05.000000100Z")
    b = parse_time("2026-12-02T13:04:05.000000900Z")
    assert a < b


@pytest.mark.parametrize(("t", "stamp"), [
    (BASE, "2026-12-02T13:04:05Z"), (BASE + 0.999, "2026-12-02T13:04:05Z"),
    (BASE + 1, "2026-12-02T13:04:06Z"),
], ids=["whole", "fraction-floors", "next"])
def test_since_stamp(t: float, stamp: str) -> None:
    assert since_stamp(t) == stamp


# TimeMerge scenarios: steps of ("open", src) | ("close", src) | ("push", src, time, now)
# | ("release", now, expected items)
Step = tuple[object, ...]


@pytest.mark.parametrize("steps", [
    pytest.param([("push", "a", 1.0, 0.0), ("push", "b", 2.0, 0.0), ("release", 0.0, [1.0]),
                  ("push", "a", 3.0, 0.1), ("release", 0.1, [2.0]),
                  ("release", 0.35, [3.0])], id="watermark-then-window"),
    pytest.param([("open", "a"), ("push", "b", 5.0, 0.0), ("release", 0.1, []),
                  ("release", 0.25, [5.0])], id="silent-source-holds-for-window"),
    pytest.param([("open", "a"), ("push", "b", 5.0, 0.0), ("close", "a"),
                  ("release", 0.0, [5.0])], id="closed-source-holds-nothing"),
    pytest.param([("push", "a", 2.0, 0.0), ("push", "b", 1.0, 0.2), ("release", 0.25, [1.0, 2.0])],
                 id="expired-releases-earlier-ones-first"),
    pytest.param([("open", "c"), ("push", "a", 5.0, 0.0), ("release", 0.3, [5.0]),
                  ("push", "b", 4.0, 1.0), ("release", 1.0, []), ("release", 1.3, [4.0])],
                 id="late-line-not-dropped"),
    pytest.param([("push", "a", 5.0, 0.0), ("release", 0.3, [5.0]), ("push", "b", 4.0, 1.0),
                  ("release", 1.0, [4.0])], id="late-line-passed-by-all-goes-at-once"),
    pytest.param([("push", "a", 1.0, 0.0), ("push", "a", 1.0, 0.0), ("push", "b", 1.0, 0.0),
                  ("release", 0.0, [1.0, 1.0, 1.0])], id="ties"),
])
def test_time_merge(steps: list[Step]) -> None:
    merge: TimeMerge[float] = TimeMerge(window=0.25)
    for step in steps:
        match step:
            case ("open", str(src)):
                merge.open(src)
            case ("close", str(src)):
                merge.close(src)
            case ("push", str(src), float(t), float(now)):
                merge.push(src, t, t, now)
            case ("release", float(now), list(expected)):
                assert merge.release(now) == expected, step
            case _:
                raise AssertionError(step)


def test_time_merge_due_and_flush() -> None:
    merge: TimeMerge[str] = TimeMerge(window=0.25)
    assert merge.due(0.0) is None
    merge.open("quiet")
    merge.push("a", 2.0, "second", 0.0)
    merge.push("b", 1.0, "first", 0.1)
    assert merge.due(0.1) == pytest.approx(0.15)
    assert len(merge) == 2
    assert merge.flush() == ["first", "second"]
    assert merge.due(0.1) is None and len(merge) == 0 and merge.last == 2.0


def test_time_merge_refuses_negative_window() -> None:
    with pytest.raises(ValueError, match="window"):
        TimeMerge(window=-1)


@pytest.mark.parametrize(("meta", "expected"), [
    ({"name": "w-t-1-2", "labels": {"devscale.devtrip.io/task": "t",
                                    "devscale.devtrip.io/index": "1",
                                    "devscale.devtrip.io/attempt": "2",
                                    "devscale.devtrip.io/build": "b7",
                                    "devscale.devtrip.io/stage": "lint"},
      "annotations": {"devscale.devtrip.io/task-id": "T-1"}},
     {"pod": "w-t-1-2", "task_id": "T-1", "build_id": "b7", "stage": "lint", "index": 1,
      "attempt": 2}),
    ({"name": "p", "labels": {"devscale.devtrip.io/stage": "label-form"},
      "annotations": {"devscale.devtrip.io/stage": "Exact Name"}},
     {"pod": "p", "task_id": "", "build_id": "", "stage": "Exact Name", "index": 0,
      "attempt": 0}),
    ({"name": "bare"}, {"pod": "bare", "task_id": "", "build_id": "", "stage": "", "index": 0,
                        "attempt": 0}),
    ({"name": "odd", "labels": {"devscale.devtrip.io/index": "x"}},
     {"pod": "odd", "task_id": "", "build_id": "", "stage": "", "index": 0, "attempt": 0}),
], ids=["worker-of-a-build", "annotation-wins", "bare-pod", "bad-number"])
def test_tag(meta: dict[str, object], expected: dict[str, object]) -> None:
    line = tag({"metadata": meta}, 1.5, "text")
    got = {k: getattr(line, k) for k in expected}
    assert got == expected
    assert (line.time, line.text, line.container, line.stream) == (1.5, "text", "worker",
                                                                   "combined")



def _relay() -> LogRelay:
    from kubernetes.client import Configuration

    cfg = Configuration(host="https://127.0.0.1:9")   # never called: _take does no I/O
    cfg.verify_ssl = False
    return LogRelay(AsyncKube(cfg, "ns"))


@pytest.mark.parametrize(("rounds", "expected"), [
    pytest.param([["13:04:05.1Z a", "13:04:05.2Z b"], ["13:04:05.1Z a", "13:04:05.2Z b",
                                                         "13:04:06.0Z c"]],
                 ["a", "b", "c"], id="refollow-from-the-second-repeats-nothing"),
    pytest.param([["13:04:05.1Z a", "13:04:06.5Z b"], ["13:04:06.5Z b", "13:04:06.7Z b"]],
                 ["a", "b", "b"], id="same-text-other-time-is-new"),
    pytest.param([["13:04:05.1Z a", "13:04:07.0Z b"], ["13:04:05.1Z a"]],
                 ["a", "b"], id="older-than-the-last-second-is-dropped"),
    pytest.param([["13:04:05.1Z a", "no stamp here"]], ["a", "no stamp here"],
                 id="unstamped-line-kept-at-the-last-time"),
])
def test_relayed_lines_are_not_repeated(rounds: list[list[str]], expected: list[str]) -> None:
    from devtrip_scale.workers.logrelay import _PodLog

    relay = _relay()
    pod = {"metadata": {"name": "w-t-0-0", "labels": {}}, "status": {"phase": "Running"}}
    pl = _PodLog("w-t-0-0", pod, Journal(100))
    for raws in rounds:
        for raw in raws:
            relay._take(pl, raw if raw.startswith("no ") else "2026-12-02T" + raw)
    assert [line.text for _, line in pl.journal.items()] == expected


def test_a_pod_journal_keeps_its_limit_and_tells_what_was_missed() -> None:
    from devtrip_scale.workers.logrelay import _PodLog

    relay = _relay()
    pod = {"metadata": {"name": "w-t-0-0"}}
    pl = _PodLog("w-t-0-0", pod, Journal(3))
    for i in range(5):
        relay._take(pl, f"2026-12-02T13:04:0{i}Z line {i}")
    assert [line.text for _, line in pl.journal.items()] == ["line 2", "line 3", "line 4"]

    async def first() -> object:
        async for item in pl.journal.read(0, follow=False):
            return item
        return None

    assert asyncio.run(first()) == Missed(1, 2)

"""What a person sees in a real terminal (tmux at 80×24 and 120×40) on the test bed, ten target
Deployments (nine and one that does not exist): `check` prints a summary and one line per
Deployment that never wraps at 80 columns, the header stays on screen, each row's action and
deciding metric are visible without scrolling, colour marks actions on a terminal and none with
NO_COLOR; `check --debug` puts its trace after the table (or in a file with --debug-file);
`status` prints one line per Deployment with ages, at 80 and 120 columns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.exporter import SyntheticExporter
from testbed.prometheus import Prometheus
from tests.conftest import TEST_WINDOW, Cluster, settle, write_config
from tests.terminal import Shown, Terminal

pytestmark = pytest.mark.integration

# name: (replicas, CPU %, memory %)
SHOP = {
    "api": (2, 125, 50),                        # cpu asks for 4 (3.6)
    "search": (2, 60, 70),
    "web": (4, 50, 75),                         # memory within tolerance
    "checkout": (3, 65, 60),
    "payments-gateway-internal": (2, 66, 60),   # a name longer than its column at 80
    "recommendation-engine": (3, 68, 62),
    "notifications": (2, 64, 58),
    "inventory-sync": (2, 67, 61),
    "image-resizer": (2, 69, 63),
}
NAMES = [*SHOP, "ghost"]                        # ghost: a target that does not exist
CPU = {"name": "cpu", "preset": "cpu_utilization", "window": TEST_WINDOW,
       "target": {"type": "Utilization", "value": 70}}
CPU_125 = re.compile(r"1[0-4]\d%/70%")   # 125 % read over a short rate window: ± a scrape
MEMORY = {"name": "memory", "preset": "memory_utilization",
          "target": {"type": "Utilization", "value": 80}}


@dataclass
class Shop:
    cluster: Cluster
    workdir: Path
    env: dict[str, str]

    def terminal(self, columns: int, lines: int, **env: str) -> Terminal:
        return Terminal(self.workdir, columns, lines, {**self.env, **env})


@pytest.fixture
def shop(cluster: Cluster, exporter: SyntheticExporter, prometheus: Prometheus,
         admin_kubeconfig: Path, tmp_path: Path) -> Iterator[Shop]:
    ns = cluster.namespace
    for name, (replicas, cpu, memory) in SHOP.items():
        cluster.deployment(name, replicas, labels={"app.kubernetes.io/part-of": "shop"},
                           ready=False)
        exporter.set_load(ns, name, pods=replicas, cpu_percent=cpu, memory_percent=memory)
    for name, (replicas, _, _) in SHOP.items():
        cluster.wait_ready(name, replicas)
    write_config(tmp_path / "devscale.yaml", ns, prometheus.url, [CPU, MEMORY],
                 [{"selector": "app.kubernetes.io/part-of=shop"}, {"deployment": "ghost"}],
                 minReplicas=2, maxReplicas=10)
    settle()
    yield Shop(cluster, tmp_path, {"KUBECONFIG": str(admin_kubeconfig)})
    for name in SHOP:
        exporter.set_load(ns, name, pods=0)


def row(lines: list[str], name: str) -> str:
    """The line of Deployment `name` (its name may be cut with `…` to fit)."""
    for line in lines:
        first = line.split(" ", 1)[0]
        if first == name or (first.endswith("…") and name.startswith(first[:-1])):
            return line
    raise AssertionError(f"no line for {name}:\n" + "\n".join(lines))


def never_wraps(shown: Shown, columns: int) -> None:
    """No line of the whole output was wrapped by the terminal (so none mid-word)."""
    long = [line for line in shown.joined if len(line.rstrip()) > columns]
    assert not long, "\n".join(long)


def header_and_rows_on_screen(shown: Shown, header: list[str]) -> list[str]:
    """The header and every Deployment's row are on the final screen; the rows below it."""
    [at] = [i for i, line in enumerate(shown.screen) if line.split() == header]
    rows = shown.screen[at + 1:]
    for name in NAMES:
        row(rows, name)
    return rows


CHECK_HEADER = ["NAME", "REPLICAS", "METRIC", "ACTION", "REASON"]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_check_fits_the_terminal_and_shows_action_and_deciding_metric(
        shop: Shop, size: tuple[int, int]) -> None:
    columns, lines = size
    shown = shop.terminal(columns, lines).run("devscale check -c devscale.yaml --dry-run")
    assert shown.code == 5, "\n".join(shown.joined)          # ghost fails, the rest stands
    never_wraps(shown, columns)
    assert shown.screen[0] == "$ devscale check -c devscale.yaml --dry-run"
    rows = header_and_rows_on_screen(shown, CHECK_HEADER)
    # the summary first, wrapped (if at all) between words by devscale itself
    summary = " ".join(shown.screen[1:shown.screen.index(rows[0]) - 1])
    assert summary == (f"10 Deployments in namespace {shop.cluster.namespace} (dry run): "
                       "1 would scale up, 8 unchanged, 1 error")
    api = row(rows, "api").split()
    assert api[:5] == ["api", "2", "→", "4", "cpu"] and CPU_125.fullmatch(api[5]), api
    assert api[6:9] == ["would", "scale", "up"]
    assert row(rows, "web").split()[4:7] == ["memory", "75%/80%", "none"]
    assert row(rows, "ghost").split()[1:4] == ["-", "-", "failed"]
    ns = shop.cluster.namespace
    assert f"error: ghost: deployment ghost not found in namespace {ns}" in \
        " ".join(" ".join(shown.screen).split())          # whole, below the table
    if columns >= 120:
        assert row(rows, "api").endswith("DesiredWithinRange: cpu asks for 4")
        assert "deployment ghost not found" in row(rows, "ghost")
        return
    assert all(len(line) <= 80 for line in shown.screen)
    # -d: one Deployment's breakdown, the deciding metric marked; -o wide: every one's
    one = shop.terminal(columns, lines).run("devscale check -c devscale.yaml --dry-run -d api")
    assert one.code == 0
    never_wraps(one, columns)
    assert one.screen[1].startswith("1 Deployment in namespace ")
    metrics = [line.split()[:2] for line in one.screen if line.startswith("    ")]
    assert metrics[:3] == [["METRIC", "READING"], ["*", "cpu"], ["memory", "50%"]], one.screen
    wide = shop.terminal(columns, 60).run("devscale check -c devscale.yaml --dry-run -o wide")
    never_wraps(wide, columns)
    assert len([line for line in wide.joined if line.startswith("    * ")]) == 9
    assert ["NAME", "REPLICAS", "READY", "METRIC", "ACTION", "REASON"] in \
        [line.split() for line in wide.joined]      # a deciding metric for each found one


def test_colour_marks_actions_on_a_terminal_and_never_with_no_color(shop: Shop) -> None:
    command = "devscale check -c devscale.yaml --dry-run"
    coloured = shop.terminal(80, 24).run(command).coloured
    assert re.search(r"\x1b\[[0-9;]*32m(\x1b\[[0-9;]*m)*would scale up", coloured), coloured
    assert re.search(r"\x1b\[[0-9;]*1m(\x1b\[[0-9;]*m)*cpu 1\d\d%/70%", coloured)   # bold
    plain = shop.terminal(80, 24, NO_COLOR="1").run(command).coloured
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", plain), plain


def test_check_debug_prints_its_trace_after_the_table_or_into_a_file(shop: Shop) -> None:
    shown = shop.terminal(80, 24).run("devscale check -c devscale.yaml --dry-run --debug")
    assert shown.code == 5
    header = next(i for i, line in enumerate(shown.joined) if line.split() == CHECK_HEADER)
    trace = shown.joined.index("debug: requests in order")
    table = shown.joined[header:trace]
    assert header < trace and all(any(line.startswith(n[:8]) for line in table) for n in NAMES)
    assert all(len(line.rstrip()) <= 80 for line in shown.joined[:trace])
    assert any("promql" in line and "cpu: 100 * sum by (deployment)" in line
               for line in shown.joined[trace:])
    # the last line says where the table went and how to keep the trace off the screen
    assert re.fullmatch(r"debug: \d+ requests above, the table before them; --debug-file "
                        r"<file> moves them", shown.screen[-1]), shown.screen[-1]

    to_file = shop.terminal(80, 24).run(
        "devscale check -c devscale.yaml --dry-run --debug-file trace.txt")
    assert to_file.code == 5
    header_and_rows_on_screen(to_file, CHECK_HEADER)
    never_wraps(to_file, 80)
    written = (shop.workdir / "trace.txt").read_text()
    assert written.startswith("debug: requests in order\n") and "[promql" in written
    assert to_file.screen[-1] == "debug: trace written to trace.txt"


STATUS_HEADER = ["NAME", "READY", "MIN/MAX", "LAST", "RUN", "DECISION", "LAST", "SCALE"]


def test_status_prints_one_line_per_deployment_with_ages(shop: Shop) -> None:
    checked = shop.terminal(80, 24).run("devscale check -c devscale.yaml")
    assert checked.code == 5
    api = row(checked.screen, "api").split()
    assert api[4] == "cpu" and CPU_125.fullmatch(api[5]) and api[6:8] == ["scaled", "up"], api
    shop.cluster.wait_ready("api", 4)
    ns = shop.cluster.namespace
    for columns, lines in ((80, 24), (120, 40)):
        shown = shop.terminal(columns, lines).run("devscale status -c devscale.yaml")
        assert shown.code == 5, "\n".join(shown.joined)
        never_wraps(shown, columns)
        assert shown.screen[1] == f"10 Deployments in namespace {shop.cluster.namespace}"
        rows = header_and_rows_on_screen(shown, STATUS_HEADER)
        api = row(rows, "api").split()
        assert api[1:3] == ["4/4", "2/10"] and re.fullmatch(r"\d+s", api[3]), shown.screen
        assert api[-4:-1] == ["2", "→", "4"] and re.fullmatch(r"\(\d+s\)", api[-1]), \
            shown.screen
        assert row(rows, "web").split()[1:6] == ["4/4", "2/10", api[3], "WithinTolerance",
                                                 "-"]
        assert row(rows, "ghost").split() == ["ghost", "-", "-", "-", "error", "-"]
        assert f"error: ghost: deployment ghost not found in namespace {ns}" in \
            " ".join(" ".join(shown.screen).split())

"""The package's import graph, read from the source with `ast` (every import: at the top, inside
functions, under TYPE_CHECKING): no import circle anywhere, and the layers point down — `core`
imports nothing else of devtrip_scale; `kube` and `notify` import only `core` and themselves;
`scaling` never imports `workers` or `cli`; `workers` never imports `scaling` or `cli`; nothing
imports `cli` but `cli` and `__main__`."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "devtrip_scale"

# Circles allowed to stand: none. (The last one, workers.executor <-> workers.server, was cut
# under issue 21: the executor depends on the TaskEngine protocol of workers/engine.py.)
KNOWN_CIRCLES: list[frozenset[str]] = []


def module_names() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The package's modules that module `name` imports, with the line of each import."""

    def known(target: str) -> str | None:
        """The module itself, or the nearest package of it that is one of ours."""
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                      # relative: from the module's own package
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:            # `from pkg import submodule` imports it
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in modules else base)
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                found = known(target)
                if found is not None and found != name:
                    yield found, node.lineno


@functools.cache
def graph() -> dict[str, dict[str, int]]:
    """module → {imported module: line of its first import}."""
    modules = module_names()
    edges: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges[name] = {}
        for target, line in imported(name, path, modules):
            edges[name].setdefault(target, line)
    return edges


def circles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def path_around(component: list[str], edges: dict[str, dict[str, int]]) -> str:
    """One circle through the component's first module, as `a:line → b:line → … → a`."""
    start = component[0]
    members = set(component)
    trail = [start]
    seen = {start}

    def walk(v: str) -> bool:
        for w in sorted(edges[v]):
            if w == start:
                return True
            if w in members and w not in seen:
                seen.add(w)
                trail.append(w)
                if walk(w):
                    return True
                trail.pop()
        return False

    walk(start)
    steps = [f"{a} (line {edges[a][b]})" for a, b in zip(trail, [*trail[1:], start], strict=True)]
    return " → ".join([*steps, start])


def layer(module: str) -> str:
    """`core`, `kube`, `notify`, `scaling`, `workers`, `cli`, or "" (the package itself and
    `__main__`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__main__" else ""


# layer → the layers it may import besides itself (None: any but those it must not)
ONLY = {"core": set(), "kube": {"core"}, "notify": {"core"}}
NEVER = {"scaling": {"workers", "cli"}, "workers": {"scaling", "cli"}}


def violations(edges: dict[str, dict[str, int]]) -> list[str]:
    found = []
    for module, targets in sorted(edges.items()):
        mine = layer(module)
        for target, line in sorted(targets.items()):
            theirs = layer(target)
            if theirs == mine:
                continue
            if mine in ONLY and theirs not in ONLY[mine]:
                rule = f"{mine} may import only {', '.join(sorted(ONLY[mine])) or 'itself'}"
            elif theirs in NEVER.get(mine, set()):
                rule = f"{mine} never imports {theirs}"
            elif theirs == "cli" and module != f"{PACKAGE}.__main__":
                rule = "only cli and __main__ import cli"
            else:
                continue
            found.append(f"{module} (line {line}) imports {target}: {rule}")
    return found


def test_the_graph_sees_every_kind_of_import() -> None:
    """A check of the reader itself: an import inside a function, one under TYPE_CHECKING, a
    `from package import submodule` and a plain `import a.b` are all edges."""
    edges = graph()
    assert "devtrip_scale.kube" in edges["devtrip_scale.cli.check"]               # in a function
    assert "devtrip_scale.workers.server" in edges["devtrip_scale.workers.api.services"]  # TYPE_CH.
    assert "devtrip_scale.workers.logs" in edges["devtrip_scale.workers.finishing"]  # submodule
    assert "devtrip_scale.cli" in edges["devtrip_scale.__main__"]
    assert len(edges) == len(module_names()) > 80


def test_relative_imports_resolve(tmp_path: Path) -> None:
    pkg = tmp_path / "devtrip_scale" / "workers"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import tasks\n")
    (pkg / "tasks.py").write_text("from .. import IMAGE\nfrom .pods import x\n"
                                  "from ..core.errors import E\n")
    modules = dict.fromkeys((
        "devtrip_scale", "devtrip_scale.workers", "devtrip_scale.workers.tasks",
        "devtrip_scale.workers.pods", "devtrip_scale.core", "devtrip_scale.core.errors"),
        tmp_path / "x.py")
    assert list(imported("devtrip_scale.workers", pkg / "__init__.py", modules)) == [
        ("devtrip_scale.workers.tasks", 1)]
    assert sorted(imported("devtrip_scale.workers.tasks", pkg / "tasks.py", modules)) == [
        ("devtrip_scale", 1), ("devtrip_scale.core.errors", 3), ("devtrip_scale.workers.pods", 2)]


def test_no_import_circle() -> None:
    edges = graph()
    unknown = [c for c in circles(edges) if frozenset(c) not in KNOWN_CIRCLES]
    assert not unknown, "import circles:\n" + "\n".join(path_around(c, edges) for c in unknown)


def test_the_circle_finder_finds_one() -> None:
    edges = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert circles(edges) == [["a", "b", "c"]]
    assert path_around(["a", "b", "c"], edges) == "a (line 1) → b (line 2) → c (line 3) → a"
    assert circles({"a": {"b": 1}, "b": {}}) == []


def test_the_layers_point_down() -> None:
    wrong = violations(graph())
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


@pytest.mark.parametrize(("module", "target", "expected"), [
    ("devtrip_scale.core.trace", "devtrip_scale.kube", "core may import only itself"),
    ("devtrip_scale.kube.aio", "devtrip_scale.scaling.config", "kube may import only core"),
    ("devtrip_scale.notify.slack", "devtrip_scale.workers", "notify may import only core"),
    ("devtrip_scale.scaling.loop", "devtrip_scale.workers.server", "scaling never imports "
                                                                   "workers"),
    ("devtrip_scale.workers.pods", "devtrip_scale.scaling.policy", "workers never imports "
                                                                   "scaling"),
    ("devtrip_scale.kube.lease", "devtrip_scale.cli", "kube may import only core"),
    ("devtrip_scale.scaling.tell", "devtrip_scale.cli._common", "scaling never imports cli"),
    ("devtrip_scale", "devtrip_scale.cli", "only cli and __main__ import cli"),
    ("devtrip_scale.__main__", "devtrip_scale.cli", None),
    ("devtrip_scale.kube.aio", "devtrip_scale.core.errors", None),
    ("devtrip_scale.workers.server", "devtrip_scale.notify", None),
    ("devtrip_scale.cli.run", "devtrip_scale.scaling.loop", None),
])
def test_the_layer_rules(module: str, target: str, expected: str | None) -> None:
    found = violations({module: {target: 7}})
    assert found == ([f"{module} (line 7) imports {target}: {expected}"] if expected else [])

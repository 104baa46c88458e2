"""Config files: the frozen base model, the YAML loader, and errors that name file, line and field.

Every file devscale reads (the check config, workers.yaml, pipeline files) goes through
`read_document`/`parse_document` and `validation_error`, so each refuses non-UTF-8 text, bad YAML
and duplicate keys the same way and points at the line of every bad field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from devtrip_scale.core.errors import ConfigError

Path_ = tuple[str | int, ...]


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_namespace(namespace: str) -> str:
    """A namespace name as Kubernetes takes it (a DNS-1123 label), else ValueError."""
    if not DNS_LABEL.match(namespace):
        raise ValueError(f"{namespace!r} is not a valid namespace name")
    return namespace


class Model(BaseModel):
    """Frozen, unknown keys refused, snake_case or the HPA's camelCase accepted."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


def config_id(path: Path) -> str:
    """A short id of a config file, stable across runs: the crontab tag, the run memory's name."""
    import hashlib  # here: OpenSSL's load is a share of `config validate`, which needs no id

    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]


def field_line(path: Path, loc: tuple[str | int, ...]) -> int:
    """The line of a field in a config file that has already loaded (for later checks)."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    return _nearest_line(loc, line_index(node)) if node is not None else 1


def read_document(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """A YAML config file's top-level mapping and its node tree (for line numbers).

    Unreadable files, non-UTF-8 bytes, bad YAML, duplicate keys and a document that is not a
    mapping are ConfigErrors naming the file and line. Shared by every config devscale reads.
    """
    return parse_document(read_text(path), path)


def read_text(path: Path, what: str = "config file") -> str:
    """A file's text; unreadable or not UTF-8 is a ConfigError naming the file (and the line
    and byte that is not UTF-8)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: the file is not UTF-8 text (byte 0x{raw[e.start]:02x} "
                          f"at offset {e.start}); save it as UTF-8") from None


def parse_document(text: str, path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """read_document's parse of text already read (`path` names it in messages)."""
    loader = yaml.SafeLoader(text)
    try:  # one parse: the node tree for line numbers, the data built from it
        node = loader.get_single_node()
        if node is not None:
            _refuse_duplicate_keys(path, node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of settings")
    return data, node


def validation_error(path: Path, e: ValidationError, node: yaml.Node | None,
                     origins: Mapping[Path_, str] | None = None) -> ConfigError:
    """A pydantic validation failure as a ConfigError, each problem with file:line and field."""
    lines = line_index(node) if node is not None else {}
    return ConfigError(_format_errors(path, e, lines, origins or {}))


def _refuse_duplicate_keys(path: Path, node: yaml.Node) -> None:
    """A key given twice in one mapping is refused (PyYAML would keep the last silently)."""
    problems: list[str] = []

    def walk(n: yaml.Node) -> None:
        if isinstance(n, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    line = key.start_mark.line + 1
                    if key.value in first:
                        problems.append(f"  {path}:{line}: duplicate key {key.value!r} (first at "
                                        f"line {first[key.value]}); give each key once")
                    else:
                        first[key.value] = line
                walk(value)
        elif isinstance(n, yaml.SequenceNode):
            for item in n.value:
                walk(item)

    walk(node)
    if problems:
        raise ConfigError(f"{path}: {len(problems)} duplicate key(s)\n" + "\n".join(problems))


def line_index(node: yaml.Node, path: Path_ = ()) -> dict[Path_, int]:
    """Map each key path of the YAML document to its 1-based line."""
    index = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            index.update(line_index(value, sub))
            index[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(line_index(item, (*path, i)))
    return index


def _format_errors(path: Path, err: ValidationError, lines: dict[Path_, int],
                   origins: Mapping[Path_, str] | None = None) -> str:
    errors = err.errors()
    # pydantic adds "too short" for a list whose items failed; the item errors say more.
    failed_parents = {tuple(e["loc"][:-1]) for e in errors if len(e["loc"]) > 1}
    rows = []
    for e in errors:
        loc = tuple(e["loc"])
        if e["type"] == "too_short" and any(p[: len(loc)] == loc for p in failed_parents):
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if not loc and (lead := _LEADING_PATH.match(msg)):
            loc = _parse_path(lead.group(1))
            msg = msg[lead.end():]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; `devscale config init` writes every key)"
        origin = _origin(loc, origins or {})
        rows.append((0 if origin else _nearest_line(loc, lines), origin or "", _field(loc), msg))
    in_file = sum(not origin for _, origin, _, _ in rows)
    out = [f"{path}: {len(rows)} error(s) in the config" if in_file else
           f"{len(rows)} error(s) in values given on the command line or in the environment"]
    out += [f"  {origin or f'{path}:{line}'}: {field}: {msg}"
            for line, origin, field, msg in sorted(rows)]
    return "\n".join(out)


def _origin(loc: tuple[Any, ...], origins: Mapping[Path_, str]) -> str | None:
    """The flag or environment variable a failing field's value came from, if not the file."""
    snake = tuple(to_snake(p) if isinstance(p, str) else p for p in loc)
    for key, origin in origins.items():
        if snake[: len(key)] == key:
            return origin
    return None


_LEADING_PATH = re.compile(r"^([A-Za-z_]+(?:\[\d+\]|\.[A-Za-z_][-A-Za-z0-9_]*)*): ")


def _parse_path(text: str) -> tuple[str | int, ...]:
    """`targets[0].min` → ("targets", 0, "min")."""
    parts = re.findall(r"[A-Za-z_][-A-Za-z0-9_]*|\d+", text)
    return tuple(int(p) if p.isdigit() else p for p in parts)


def _field(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _nearest_line(loc: tuple[Any, ...], lines: dict[tuple[str | int, ...], int]) -> int:
    for n in range(len(loc), -1, -1):
        key = loc[:n]
        if key in lines:
            return lines[key]
        for convert in (to_camel, to_snake):
            other = tuple(convert(p) if isinstance(p, str) else p for p in key)
            if other in lines:
                return lines[other]
    return 1

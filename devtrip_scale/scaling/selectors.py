"""Kubernetes label selectors: checked and parsed as the API server parses them, matched as it
matches them (k8s.io/apimachinery/pkg/labels: `Parse` and `Requirement.Matches`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_SELECTOR_TOKEN = re.compile(r"\s*(?:(==|!=|=|<|>|!|\(|\)|,)|([^\s!=<>(),]+))")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")
_INT64 = range(-2**63, 2**63)   # Go's strconv.ParseInt(…, 10, 64)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One comma-separated part: `key` with an operator (`=` and `==` are `=`; `exists` and
    `!` stand for `key` and `!key`) and its values."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """As `Requirement.Matches`: `!=` and `notin` hold for a missing label, `<` and `>`
        need the label to be a whole number."""
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if self.op in ("!=", "notin"):
            return value is None or value not in self.values
        if value is None:
            return False
        if self.op in ("=", "in"):
            return value in self.values
        if not _WHOLE_NUMBER.fullmatch(value) or int(value) not in _INT64:
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.op == ">" else int(value) < bound


def matches(requirements: Sequence[Requirement], labels: Mapping[str, str]) -> bool:
    """Whether labels satisfy every requirement of a parsed selector."""
    return all(r.matches(labels) for r in requirements)


def check_selector(text: str) -> str:
    """A Kubernetes label selector (`a=b,c!=d,e in (f,g),!h`), checked as the API server would.

    Raises ValueError naming the first problem.
    """
    parse_selector(text)
    return text


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """The requirements of a label selector; ValueError names the first problem."""
    tokens: list[tuple[str, str]] = []  # (kind, text): kind "op" or "word"
    pos, text_ = 0, text.rstrip()
    while pos < len(text_):
        m = _SELECTOR_TOKEN.match(text_, pos)
        if m is None:  # pragma: no cover - the two alternatives match any non-space
            break
        tokens.append(("op", m.group(1)) if m.group(1) else ("word", m.group(2)))
        pos = m.end()

    def fail(why: str) -> ValueError:
        return ValueError(f"{text!r} is not a label selector: {why}")

    def word(i: int, what: str) -> str:
        if i >= len(tokens) or tokens[i][0] != "word":
            found = f"{tokens[i][1]!r}" if i < len(tokens) else "the end"
            raise fail(f"expected {what}, found {found}")
        return tokens[i][1]

    def key(name: str) -> None:
        prefix, _, label = name.rpartition("/")
        if "/" in name and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
            raise fail(f"{name!r}: the prefix before '/' must be a DNS subdomain")
        if len(label) > 63 or not _LABEL_NAME.match(label):
            raise fail(f"{name!r} is not a label key (letters, digits, '-', '_', '.'; "
                       "at most 63 characters, starting and ending alphanumeric)")

    def value(v: str) -> None:
        if v and (len(v) > 63 or not _LABEL_NAME.match(v)):
            raise fail(f"{v!r} is not a label value")

    if not tokens:
        raise fail("it is empty")
    requirements: list[Requirement] = []
    i = 0
    while True:
        negated = tokens[i] == ("op", "!")
        i += negated
        name = word(i, "a label key")
        key(name)
        i += 1
        nxt = tokens[i] if i < len(tokens) else None
        if negated or nxt is None or nxt == ("op", ","):
            requirements.append(Requirement(name, "!" if negated else "exists"))
        elif nxt[1] in ("=", "==", "!=", "<", ">"):
            i += 1
            v = tokens[i][1] if i < len(tokens) and tokens[i][0] == "word" else ""
            i += bool(v)
            if nxt[1] in ("<", ">") and not (_WHOLE_NUMBER.fullmatch(v) and int(v) in _INT64):
                raise fail(f"{name}{nxt[1]} needs a whole number")
            value(v)
            requirements.append(Requirement(name, "=" if nxt[1] == "==" else nxt[1], (v,)))
        elif nxt in (("word", "in"), ("word", "notin")):
            i += 1
            if i >= len(tokens) or tokens[i] != ("op", "("):
                raise fail(f"expected '(' after {name} {nxt[1]}")
            values: list[str] = []
            i += 1
            while True:
                if i < len(tokens) and tokens[i][0] == "word":
                    value(tokens[i][1])
                    values.append(tokens[i][1])
                    i += 1
                if i < len(tokens) and tokens[i] == ("op", ","):
                    i += 1
                    continue
                if i < len(tokens) and tokens[i] == ("op", ")"):
                    i += 1
                    break
                raise fail(f"missing ')' after the values of {name} {nxt[1]}")
            if not values:
                raise fail(f"{name} {nxt[1]} () needs at least one value")
            requirements.append(Requirement(name, nxt[1], tuple(values)))
        else:
            raise fail(f"expected an operator (=, ==, !=, in, notin) after {name!r}, "
                       f"found {nxt[1]!r}")
        if i >= len(tokens):
            return tuple(requirements)
        if tokens[i] != ("op", ","):
            raise fail(f"expected ',' before {tokens[i][1]!r}")
        i += 1
        if i >= len(tokens):
            raise fail("it ends with ','")

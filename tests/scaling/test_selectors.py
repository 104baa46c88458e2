"""Label selectors matched here as the API server matches them (apimachinery's
`Requirement.Matches`): pure cases, and the same selectors put to a real kube-apiserver."""

from __future__ import annotations

import pytest

from devtrip_scale.scaling.deployments import DeploymentTarget
from devtrip_scale.scaling.selectors import Requirement, check_selector, matches, parse_selector
from tests.conftest import Cluster

LABELS = {
    "web": {"app": "web", "tier": "front", "shard": "3"},
    "api": {"app": "api", "tier": "back", "shard": "12"},
    "db": {"app": "db", "tier": "back"},
    "job": {"app": "job", "shard": "x1", "example.com/team": "infra"},
    "plain": {"app": "plain"},   # the bed gives every Deployment its app label
}

# (selector, the Deployments it selects)
CASES = [
    ("app=web", {"web"}),
    ("app==web", {"web"}),
    ("app!=web", {"api", "db", "job", "plain"}),          # a missing label is "not web"
    ("tier", {"web", "api", "db"}),
    ("!tier", {"job", "plain"}),
    ("tier in (back,front)", {"web", "api", "db"}),
    ("tier notin (back)", {"web", "job", "plain"}),       # so is a missing label "not in"
    ("shard>5", {"api"}),                                 # a whole number, compared as one
    ("shard<5", {"web"}),                                 # "x1" is no number: no match
    ("tier=back,shard", {"api"}),
    ("tier=back,!shard", {"db"}),
    ("example.com/team=infra", {"job"}),
    ("app in (web, api), tier!=back", {"web"}),
    ("tier=", set()),                                     # an empty value: none has tier ""
    ("shard>003", {"api"}),
]


def select(selector: str) -> set[str]:
    wanted = parse_selector(selector)
    return {name for name, labels in LABELS.items() if matches(wanted, labels)}


@pytest.mark.parametrize(("selector", "selected"), CASES, ids=[c[0] for c in CASES])
def test_matches_as_the_api_server_does(selector: str, selected: set[str]) -> None:
    assert select(selector) == selected


def test_parsed_requirements() -> None:
    assert parse_selector("a==b, !c, d notin (e,f), g>2") == (
        Requirement("a", "=", ("b",)), Requirement("c", "!"),
        Requirement("d", "notin", ("e", "f")), Requirement("g", ">", ("2",)))
    assert check_selector("app=web") == "app=web"


def test_a_number_beyond_int64_is_no_whole_number() -> None:
    with pytest.raises(ValueError, match="needs a whole number"):
        parse_selector("shard>9223372036854775808")
    assert not matches(parse_selector("shard>1"), {"shard": "9223372036854775808"})
    assert matches(parse_selector("shard>1"), {"shard": "9223372036854775807"})


@pytest.mark.integration
def test_the_api_server_selects_the_same(cluster: Cluster) -> None:
    for name, labels in LABELS.items():
        cluster.deployment(name, 1, labels=labels, ready=False)
    target = DeploymentTarget(cluster.api, cluster.namespace)
    everything = target.list(None)
    for selector, selected in CASES:
        by_server = {w.name for w in target.list(selector)}
        wanted = parse_selector(selector)
        assert {w.name for w in everything if matches(wanted, w.labels)} == by_server \
            == selected, selector

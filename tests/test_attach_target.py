"""core.target and core.identity's label selectors, without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from k3dtui.core.errors import UsageError
from k3dtui.core.identity import (
    APP,
    AppIdentity,
    parse_selector,
    selector_from_label_selector,
    selector_matches,
)
from k3dtui.core.target import Target, check_target_options, default_kubeconfig, refused_namespace


def test_selectors_parse_and_match_as_the_api_does() -> None:
    assert parse_selector("app=web, tier in (a, b),!canary,env!=prod,zone") == [
        ("app", "=", ("web",)), ("tier", "in", ("a", "b")), ("canary", "!", ()), ("env", "!=", ("prod",)),
        ("zone", "exists", ()),
    ]
    labels = {"app": "web", "tier": "b", "zone": "x"}
    assert selector_matches("app=web,tier in (a,b),!canary,env!=prod,zone", labels)
    assert not selector_matches("app=web,tier notin (b)", labels)
    assert not selector_matches("app==shop", labels)
    assert not selector_matches("app=web,!zone", labels)
    with pytest.raises(ValueError):
        parse_selector("app in (")


def test_a_label_selector_object_becomes_the_string_the_api_takes() -> None:
    spec = {"matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]}
    assert selector_from_label_selector(spec) == "app=web,tier=front,env in (a,b),!canary"


def test_an_identity_with_a_selector_uses_it_and_k3dtuis_own_is_unchanged() -> None:
    assert APP.label_selector == "app=fastapi" and APP.matches({"app": "fastapi"}) and not APP.attached
    web = AppIdentity(namespace="shop", app="web", deployment="web", selector="app=web,tier=front", attached=True)
    assert web.label_selector == "app=web,tier=front"
    assert web.matches({"app": "web", "tier": "front"}) and not web.matches({"app": "web"})


def test_the_default_kubeconfig_is_kubectls(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    second.write_text("{}")
    sep = ":"
    assert default_kubeconfig({"KUBECONFIG": f"{first}{sep}{second}"}) == second  # the missing one skipped
    assert default_kubeconfig({"KUBECONFIG": f"{first}"}) == first
    third = tmp_path / "c"
    third.write_text("{}")
    # several that exist: all of them, in order, for the client to merge as kubectl does
    assert default_kubeconfig({"KUBECONFIG": f"{third}{sep}{first}{sep}{second}"}) == Path(f"{third}{sep}{second}")
    assert default_kubeconfig({}) == Path("~/.kube/config").expanduser()


@pytest.mark.parametrize("namespace", ["kube-system", "metallb-system", "cert-manager-system"])
def test_system_namespaces_are_refused(namespace: str) -> None:
    assert namespace in refused_namespace(namespace)
    with pytest.raises(UsageError) as caught:
        check_target_options(Target(namespace=namespace, deployment="x", allow_changes=True))
    assert caught.value.exit_code == 2


def test_other_namespaces_are_not() -> None:
    assert refused_namespace("shop") == "" and refused_namespace("system") == ""

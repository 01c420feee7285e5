"""The tag grammar: GTO's names, semver order, specs, and message bodies."""

from __future__ import annotations

import pytest

from gitmlm.core import refs, tags
from gitmlm.core.tags import TagName
from gitmlm.errors import MlmError


@pytest.mark.parametrize(
    ("tag", "parsed"),
    [
        ("churn@v1.2.0", TagName(tags.REGISTER, "churn", "v1.2.0")),
        ("churn@v1.0.0-rc.1", TagName(tags.REGISTER, "churn", "v1.0.0-rc.1")),
        ("churn@v1.0.0+build.5", TagName(tags.REGISTER, "churn", "v1.0.0+build.5")),
        ("churn@v1.2.0!", TagName(tags.DEREGISTER, "churn", "v1.2.0")),
        ("churn#prod#7", TagName(tags.ASSIGN, "churn", None, "prod", 7)),
        ("churn#prod!#8", TagName(tags.UNASSIGN, "churn", None, "prod", 8)),
        ("churn#prod", TagName(tags.ASSIGN, "churn", None, "prod")),
        ("churn@deprecated", TagName(tags.DEPRECATE, "churn")),
        ("churn@deprecated#9", TagName(tags.DEPRECATE, "churn", counter=9)),
        ("team/churn-v2@v0.0.1", TagName(tags.REGISTER, "team/churn-v2", "v0.0.1")),
        ("models/x=churn@v0.0.1", TagName(tags.REGISTER, "models/x:churn", "v0.0.1")),
        ("refs/tags/churn@v0.0.1", TagName(tags.REGISTER, "churn", "v0.0.1")),
        # GTO's alphabet: capitals, `_` and `/` inside names; `@created`.
        ("my_model@v1.0.0", TagName(tags.REGISTER, "my_model", "v1.0.0")),
        ("DVCLive/Model@v0.0.1", TagName(tags.REGISTER, "DVCLive/Model", "v0.0.1")),
        ("model_A#Prod_EU#1", TagName(tags.ASSIGN, "model_A", None, "Prod_EU", 1)),
        ("churn@created", TagName(tags.CREATE, "churn")),
    ],
)
def test_parse_reads_gto_names(tag: str, parsed: TagName) -> None:
    assert tags.parse(tag) == parsed


@pytest.mark.parametrize(
    "tag",
    [
        "v1.0.0",
        "churn@1.0.0",
        "churn@v1.0",
        "churn@v01.0.0",
        "churn#prod#x",
        "_churn@v1.0.0",
        "churn_@v1.0.0",
        "-churn@v1.0.0",
        "churn-@v1.0.0",
        "churn@latest",
        "churn@v1.0.0!!",
    ],
)
def test_parse_refuses_other_tags(tag: str) -> None:
    assert tags.parse(tag) is None
    assert not refs.is_registry_tag(tag)


def test_format_is_the_inverse_of_parse() -> None:
    for action, kw in [
        (tags.REGISTER, {"version": "v1.0.0-rc.1"}),
        (tags.DEREGISTER, {"version": "v2.0.0"}),
        (tags.ASSIGN, {"stage": "production", "counter": 12}),
        (tags.UNASSIGN, {"stage": "production", "counter": 13}),
        (tags.DEPRECATE, {}),
    ]:
        name = tags.format_tag(action, "dir:churn", **kw)  # type: ignore[arg-type]
        parsed = tags.parse(name)
        assert parsed is not None and parsed.action == action and parsed.model == "dir:churn"
    assert tags.format_tag(tags.ASSIGN, "churn", stage="prod", counter=3) == "churn#prod#3"
    assert tags.format_tag(tags.UNASSIGN, "churn", stage="prod", counter=4) == "churn#prod!#4"
    assert refs.is_registry_tag("refs/tags/churn#prod!#4")


def test_semver_precedence_and_bump() -> None:
    ordered = [
        "v0.0.1",
        "v0.9.0",
        "v1.0.0-alpha",
        "v1.0.0-alpha.1",
        "v1.0.0-beta.2",
        "v1.0.0-beta.11",
        "v1.0.0-rc.1",
        "v1.0.0",
        "v1.0.1",
        "v1.10.0",
        "v10.0.0",
    ]
    assert sorted(reversed(ordered), key=tags.version_key) == ordered
    assert tags.bump(None, "patch") == "v0.0.1"
    assert tags.bump("v1.2.3", "patch") == "v1.2.4"
    assert tags.bump("v1.2.3", "minor") == "v1.3.0"
    assert tags.bump("v1.2.3", "major") == "v2.0.0"
    assert tags.bump("v1.3.0-rc.1", "patch") == "v1.3.0"
    with pytest.raises(MlmError, match="not semver"):
        tags.check_version("1.2.3")


def test_specs() -> None:
    assert tags.parse_spec("churn") == tags.Spec("churn")
    assert tags.parse_spec("churn@latest") == tags.Spec("churn")
    assert tags.parse_spec("churn@v1.2.0") == tags.Spec("churn", "v1.2.0")
    assert tags.parse_spec("churn#production") == tags.Spec("churn", None, "production")
    with pytest.raises(MlmError, match="NAME#STAGE"):
        tags.parse_spec("churn@1.2")


def test_model_names() -> None:
    for good in ("churn", "team/churn-v2", "a", "x9", "Churn", "churn_v2", "DVCLive/Model"):
        assert tags.check_model_name(good) == good
    for bad in ("churn.v2", "_churn", "-churn", "churn/", "chürn", ""):
        with pytest.raises(MlmError, match="letters, digits"):
            tags.check_model_name(bad)


def test_message_round_trip_and_foreign_messages() -> None:
    body = {"event": "assign", "sequence": 4, "metrics": {"auc": 0.9}, "why": None}
    text = tags.encode_message("Promote churn v1 to prod", body)
    msg = tags.decode_message(text)
    assert msg.subject == "Promote churn v1 to prod"
    assert msg.body == {"schema": 1, "event": "assign", "sequence": 4, "metrics": {"auc": 0.9}}
    assert not msg.signed
    signed = tags.decode_message(
        text + "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"
    )
    assert signed.signed and signed.body == msg.body
    gto = tags.decode_message("Assigning stage prod to artifact churn version v0.0.1\n")
    assert gto.body == {} and gto.problem is None
    assert gto.text == "Assigning stage prod to artifact churn version v0.0.1"
    newer = tags.decode_message("x\n\nschema = 2\n")
    assert newer.body == {} and newer.problem is not None and "schema 2" in newer.problem
    broken = tags.decode_message("x\n\nschema = = 1\n")
    assert broken.body == {} and broken.problem is not None

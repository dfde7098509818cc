"""Sensitive-field paths, redaction, and the scrubber for exception text."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reversa import Registry, Saga, Step
from reversa.core.plan import validate
from reversa.core.redact import scrub
from reversa.core.sensitive import MARK, compile_paths, parse_path, redact, redaction_marker


def test_paths_name_input_and_result_fields() -> None:
    assert parse_path("payer.iban", owner="saga") == ("input", None, ("payer", "iban"))
    assert parse_path("iban", owner="step") == ("results", None, ("iban",))
    assert parse_path("$input.card", owner="step") == ("input", None, ("card",))
    assert parse_path("$results.pay.cards.*.pan", owner="saga") == (
        "results", "pay", ("cards", "*", "pan"))
    inputs, results = compile_paths(["card", "$results.pay.iban"],
                                    [("pay", ["token", "$input.pin"])])
    assert inputs == (("card",), ("pin",))
    assert results == {"pay": (("iban",), ("token",))}


@pytest.mark.parametrize("bad", ["", "a..b", "a.", "$foo.x", "$results.", "a b", "$result.x"])
def test_malformed_paths_are_refused_naming_the_syntax(bad: str) -> None:
    with pytest.raises(ValueError, match="sensitive path"):
        parse_path(bad, owner="saga")
    with pytest.raises(ValidationError, match="sensitive path"):
        Saga.chain("w", [Step(name="a", action="a", compensation="b")], sensitive=(bad,))


def test_redact_replaces_only_matched_fields_and_never_mutates() -> None:
    value = {"card": "4111", "cards": [{"pan": "1"}, {"pan": "2", "x": 1}], "n": 5,
             "nested": {"iban": "GB", "keep": True}, "list": ["a", "b"]}
    paths = (("card",), ("cards", "*", "pan"), ("nested", "iban"), ("missing", "x"),
             ("list", "1"), ("n", "deeper"))
    out = redact(value, paths, lambda path, v: f"<{path}>")
    assert out == {"card": "<card>", "cards": [{"pan": "<cards.0.pan>"},
                                               {"pan": "<cards.1.pan>", "x": 1}],
                   "n": 5, "nested": {"iban": "<nested.iban>", "keep": True},
                   "list": ["a", "<list.1>"]}
    assert value["card"] == "4111" and value["cards"][0]["pan"] == "1"
    marked = redact(value, paths, redaction_marker(b"k" * 32, "s"))
    assert redact(marked, paths, lambda p, v: "twice") == marked  # markers stay as they are


def test_markers_are_keyed_digests_or_bare() -> None:
    assert redaction_marker(None, "s")("card", "4111") == MARK
    keyed = redaction_marker(b"k" * 32, "s")
    assert keyed("card", "4111").startswith("[redacted:") and keyed("card", "4111") != keyed(
        "card", "4112")


def test_plans_without_sensitive_fields_keep_their_hash() -> None:
    reg = Registry()
    reg.add("action", "a", lambda ctx: None)
    reg.add("compensation", "b", lambda ctx: None)
    reg.add("predicate", "p", lambda ctx: True)
    plain = validate(Saga.chain("w", [Step(name="a", action="a", compensation="b")],
                                predicate="p"), reg)
    assert "sensitive" not in plain.canonical
    marked = validate(Saga.chain("w", [Step(name="a", action="a", compensation="b",
                                            sensitive=("iban",))], predicate="p",
                                 sensitive=("card",)), reg)
    assert marked.hash != plain.hash and marked.redact_input == (("card",),)
    assert marked.redact_results == {"a": (("iban",),)}
    with pytest.raises(Exception, match="unknown step 'nope'"):
        validate(Saga.chain("w", [Step(name="a", action="a", compensation="b")],
                            predicate="p", sensitive=("$results.nope.x",)), reg)


@pytest.mark.parametrize(("text", "secret", "kept"), [
    ("card 4111 1111 1111 1111 declined", "4111 1111 1111 1111", "[card ****1111]"),
    ("pan=4111-1111-1111-1111;", "4111-1111-1111-1111", "****1111"),
    ("to GB82 WEST 1234 5698 7654 32 now", "GB82 WEST 1234 5698 7654 32", "[IBAN GB**"),
    ("iban DE89370400440532013000", "DE89370400440532013000", "[IBAN DE**"),
    ("key 0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318 bad",
     "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318", "[hex secret]"),
    ("private_key: abcdefgh12345678 leaked", "abcdefgh12345678", "private_key: ***"),
    ("Authorization: Bearer eyJhbGciOi.J9.sig", "eyJhbGciOi.J9.sig", "Bearer ***"),
    ("dsn postgresql://app:hunter2@db/x", "hunter2", "app:***@db"),
    ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----", "MHcCAQEE",
     "[private key]"),
    ("password=hunter2&x=1", "hunter2", "password=***"),
])
def test_scrub_removes_secrets(text: str, secret: str, kept: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned and kept in cleaned


@pytest.mark.parametrize("text", [
    "order 1234567890123 shipped",  # 13 digits failing the Luhn check
    "tx 0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318 reverted",
    "plan hash 4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
    "GB00WEST12345698765432 is no IBAN (bad check digits)",
    "amount 1700000000.5 at 2024-05-01",
])
def test_scrub_keeps_what_is_not_secret(text: str) -> None:
    assert scrub(text) == text

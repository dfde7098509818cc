"""Canonical JSON: the bytes every hash in the audit chain and the plan is taken over."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reversa.core import canonical
from reversa.core.canonical import canonical_json

VALUES: list[Any] = [
    "plain", 'quote " backslash \\ newline \n é 漢 \u2028', 0, -7, 10**30, 1.5, -0.0,
    1764500000.123456, 1e300, True, False, None, [], {}, [None, [1, [2, [3]]]],
    {"b": [1, {"z": 1, "a": "é"}], "a": None, "": 0}, ("tuple", 1),
    ["completed", 3, 1, 0, None, None, None, None, "ok", 1.25, 2.5, None, None],
]


def _reference(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


@pytest.mark.parametrize("value", VALUES)
def test_the_fast_encoder_writes_exactly_what_json_dumps_writes(value: Any) -> None:
    assert canonical._C_ENCODE is not None  # CPython: the fast path is the one tested
    assert canonical_json(value) == _reference(value)


@pytest.mark.parametrize("value", [float("nan"), {"a": float("inf")}, {1: 2, "a": 3},
                                   object(), {"x": {1, 2}}])
def test_it_refuses_what_json_dumps_refuses_with_the_same_error(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as ours:
        canonical_json(value)
    with pytest.raises((TypeError, ValueError)) as theirs:
        _reference(value)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


def test_a_failed_call_leaves_nothing_behind_for_the_next() -> None:
    shared = {"a": 1}
    with pytest.raises(TypeError):
        canonical_json([shared, object()])
    # The same container again: no stale cycle marker makes it look circular.
    assert canonical_json([shared, shared]) == '[{"a":1},{"a":1}]'


def test_without_the_c_accelerator_the_stdlib_encoder_is_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canonical, "_C_ENCODE", None)
    for value in VALUES:
        assert canonical_json(value) == _reference(value)

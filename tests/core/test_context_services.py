"""Snapshots and predicates look services up the way operations do: typed, with a fix."""

from __future__ import annotations

import pytest

from reversa import ConfigError, FakeClock, PredicateContext, SnapshotContext


class Ledger:
    pass


def _snapshot(services: dict[str, object]) -> SnapshotContext:
    return SnapshotContext(saga_id="s1", workflow="transfer", input={}, results={},
                           services=services, clock=FakeClock())


def _predicate(services: dict[str, object]) -> PredicateContext:
    return PredicateContext(saga_id="s1", workflow="transfer", input={}, pre_state=None,
                            post_state=None, checkpoint=None, results={}, services=services,
                            clock=FakeClock())


@pytest.mark.parametrize("make", [_snapshot, _predicate], ids=["snapshot", "predicate"])
def test_service_is_typed_and_names_the_fix(make: object) -> None:
    ledger = Ledger()
    ctx = make({"ledger": ledger, "other": object()})  # type: ignore[operator]
    assert ctx.service("ledger", Ledger) is ledger
    with pytest.raises(ConfigError, match=r"'missing' is missing .*Engine\(services="):
        ctx.service("missing", Ledger)
    with pytest.raises(ConfigError, match="is a object, not a Ledger"):
        ctx.service("other", Ledger)

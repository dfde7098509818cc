"""The plan exists, validated and hashed, before step 1 (AG-166 4.1/4.2, AG-384 4.1/4.11)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reversa import (
    Engine,
    Escalation,
    FakeClock,
    Plan,
    PlanError,
    Registry,
    Reversibility,
    Saga,
    Step,
    Store,
    validate,
)
from reversa.demos import onboarding
from tests.core.kit import World, chain_saga, transfer_registry


@pytest.fixture
def reg() -> Registry:
    return transfer_registry(World())


def _problem(saga: Saga, reg: Registry) -> str:
    with pytest.raises(PlanError) as info:
        validate(saga, reg)
    return info.value.message


def test_cycle_is_rejected_naming_the_steps(reg: Registry) -> None:
    saga = Saga(workflow="w", snapshot="world.snapshot", steps=[
        Step(name="a", action="debit", compensation="debit.undo", depends_on=("b",)),
        Step(name="b", action="convert", compensation="convert.undo", depends_on=("a",)),
    ])
    msg = _problem(saga, reg)
    assert "dependency cycle" in msg and "'a'" in msg and "'b'" in msg
    assert "remove one depends_on edge" in msg


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("action", "nope", "step 'debit' action 'nope' is not a registered action"),
    ("compensation", "nope", "step 'debit' compensation 'nope' is not a registered"),
    ("probe", "nope", "step 'debit' probe 'nope' is not a registered probe"),
    ("preconditions", ("nope",), "step 'debit' precondition 'nope' is not a registered"),
    ("cost", "nope", "step 'debit' cost estimator 'nope' is not a registered cost"),
])
def test_unregistered_handlers_are_rejected(
    reg: Registry, field: str, value: Any, expected: str
) -> None:
    saga = chain_saga()
    steps = list(saga.steps)
    steps[0] = steps[0].model_copy(update={field: value})
    msg = _problem(saga.model_copy(update={"steps": tuple(steps)}), reg)
    assert expected in msg
    assert "register it with @registry." in msg


def test_unregistered_predicate_and_snapshot_are_rejected(reg: Registry) -> None:
    assert "predicate 'gone'" in _problem(chain_saga(predicate="gone"), reg)
    assert "snapshot 'gone'" in _problem(chain_saga(snapshot="gone"), reg)


def test_reversible_step_without_compensation(reg: Registry) -> None:
    saga = Saga(workflow="w", snapshot="world.snapshot",
                steps=[Step(name="debit", action="debit")])
    msg = _problem(saga, reg)
    assert "step 'debit' is reversible but has no compensation" in msg
    assert "compensation='<name>'" in msg


def test_irreversible_step_needs_recovery_or_escalation(reg: Registry) -> None:
    bare = Step(name="send", action="notify", reversibility=Reversibility.IRREVERSIBLE)
    msg = _problem(Saga(workflow="w", snapshot="world.snapshot", steps=[bare]), reg)
    assert "irreversible but declares neither forward_recovery nor escalation" in msg
    ok = bare.model_copy(update={"escalation": Escalation(reason="cannot unsend")})
    assert validate(Saga(workflow="w", snapshot="world.snapshot", steps=[ok]), reg)


def test_a_consistency_predicate_is_required(reg: Registry) -> None:
    msg = _problem(chain_saga(snapshot=None), reg)
    assert "declares no consistency predicate" in msg


def test_unknown_dependency_and_duplicate_names(reg: Registry) -> None:
    saga = Saga(workflow="w", snapshot="world.snapshot", steps=[
        Step(name="a", action="debit", compensation="debit.undo", depends_on=("zz",)),
        Step(name="a", action="debit", compensation="debit.undo"),
    ])
    with pytest.raises(PlanError) as info:
        validate(saga, reg)
    problems = info.value.details["problems"]
    assert any("defined twice" in p for p in problems)
    assert any("unknown step 'zz'" in p for p in problems)


def test_invalid_plan_records_and_runs_nothing(store: Store, reg: Registry) -> None:
    engine = Engine(reg, store, clock=FakeClock(), heartbeat=False)
    with pytest.raises(PlanError):
        engine.run(chain_saga(snapshot=None))
    assert store.count() == 0


def test_reverse_dependency_order_scenario_b() -> None:
    plan = validate(onboarding.saga(), onboarding.registry())
    assert plan.order == ("create_client", "open_account", "configure_screening",
                          "send_welcome", "activate_market_data")
    assert plan.descendants("create_client") == {"open_account", "configure_screening",
                                                 "send_welcome", "activate_market_data"}


def test_canonical_plan_and_hash_are_stable(reg: Registry) -> None:
    a, b = validate(chain_saga(), reg), validate(chain_saga(), reg)
    assert a.canonical == b.canonical and a.hash == b.hash
    assert json.loads(a.canonical)["saga"]["steps"][0]["name"] == "debit"
    rebuilt = Plan.from_json(a.canonical, reg)
    assert rebuilt.hash == a.hash and rebuilt.order == a.order
    changed = validate(chain_saga(rollback_window_s=61), reg)
    assert changed.hash != a.hash


def test_plan_is_durable_before_step_one_runs(store: Store) -> None:
    world = World()
    reg = transfer_registry(world)
    seen: dict[str, Any] = {}

    def debit(ctx: Any) -> Any:
        # Another connection sees the plan and step 1's intent already committed.
        other = Store.open(store.url if "sqlite" not in store.url else
                           str(store.engine.url.database))
        row, steps = other.load(ctx.saga_id)
        seen.update(plan_hash=row["plan_hash"], status=steps[0]["status"])
        other.close()
        return world.effect(ctx, "do:debit", {"a": -10})

    reg.add("action", "debit.checked", debit)
    saga = chain_saga()
    steps = list(saga.steps)
    steps[0] = steps[0].model_copy(update={"action": "debit.checked"})
    saga = saga.model_copy(update={"steps": tuple(steps)})
    engine = Engine(reg, store, clock=FakeClock(), heartbeat=False)
    engine.run(saga)
    engine.close()
    assert seen == {"plan_hash": validate(saga, reg).hash, "status": "running"}


def test_async_and_plain_handlers_mix(store: Store) -> None:
    world = World()
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False)
    saga = chain_saga()
    steps = [saga.steps[0].model_copy(update={"action": "debit.async"}), *saga.steps[1:]]
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status == "completed"
    assert world.order == ["do:debit", "do:convert", "do:credit"]


def test_run_async_inside_an_event_loop(store: Store) -> None:
    import asyncio

    world = World()
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False)

    async def agent() -> str:
        result = await engine.run_async(chain_saga())
        with pytest.raises(Exception, match="inside a running event loop"):
            engine.run(chain_saga())
        return result.status.value

    assert asyncio.run(agent()) == "completed"


def test_key_prefix_selects_exactly_one_sagas_and_steps_keys() -> None:
    from reversa.core.context import idempotency_key, key_prefix

    ab_c = idempotency_key("a:b", "c", "action")
    a_bc = idempotency_key("a", "b:c", "action")
    assert ab_c != a_bc
    assert ab_c.startswith(key_prefix("a:b")) and not ab_c.startswith(key_prefix("a"))
    assert a_bc.startswith(key_prefix("a", "b:c")) and not a_bc.startswith(key_prefix("a", "b"))
    assert idempotency_key("s", "x", "compensation").startswith(key_prefix("s", "x"))

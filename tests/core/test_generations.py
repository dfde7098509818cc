"""Checkpoint resumes and keys: every call names the effect it is about (issue 10).

Found by the simulator (``reversa chaos --seed 16``): a saga that resumed from its
checkpoint and then failed again left effects standing although every step was
recorded compensated. The re-run step's second compensation reused the first one's
key, so the service (rightly) answered it as a replay and undid nothing; and the
steps before the checkpoint, never re-run, were compensated, probed and blocked
under a key of the new generation that no effect ever carried.
"""

from __future__ import annotations

from typing import Any

from reversa import Engine, FakeClock, OnFailure, SagaStatus, StepContext, Store
from tests.core.kit import World, chain_saga, reject, transfer_registry


def _resumed_then_failed(store: Store, clock: FakeClock) -> tuple[World, Any, list[Any]]:
    world = World()
    world.fail["do:notify"] = reject("declined, every time")
    reg = transfer_registry(world)
    undone_about: list[tuple[str, str]] = []
    for name in ("debit", "convert", "credit"):
        original = reg.get("compensation", f"{name}.undo")

        def undo(ctx: StepContext, original: Any = original) -> Any:
            undone_about.append((ctx.step, ctx.action_key))
            return original(ctx)

        reg.add("compensation", f"{name}.undo.seen", undo)
    saga = chain_saga(["debit", "convert", "credit", "notify"],
                      on_failure=OnFailure.RETRY_FROM_CHECKPOINT, checkpoint_retries=1)
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"checkpoint": s.name == "convert",
                             "compensation": f"{s.name}.undo.seen" if s.name != "notify"
                             else s.compensation}) for s in saga.steps)})
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga)
    engine.close()
    return world, result, undone_about


def test_a_re_run_step_is_compensated_under_a_key_of_its_generation(
    store: Store, clock: FakeClock
) -> None:
    world, result, _ = _resumed_then_failed(store, clock)
    assert result.status is SagaStatus.COMPENSATED
    # credit ran twice (generations 0 and 1) and was undone twice, at the service.
    assert world.landed.count("do:credit") == 2 and world.landed.count("undo:credit") == 2
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    comp_keys = world.keys["credit:compensation"]
    assert len(set(comp_keys)) == 2  # two effects, two distinct undo keys


def test_every_compensation_names_the_effect_its_step_made(
    store: Store, clock: FakeClock
) -> None:
    world, _, undone_about = _resumed_then_failed(store, clock)
    made = {step: set(world.keys[f"{step}:action"]) for step in ("debit", "convert", "credit")}
    assert undone_about, "nothing was compensated"
    for step, action_key in undone_about:
        assert action_key in made[step], f"{step} undone under {action_key}, made {made[step]}"

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

import pytest

from reversa import (
    Engine,
    FakeClock,
    OnCrash,
    OnFailure,
    SagaStatus,
    StepContext,
    Store,
    Worker,
)
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


class _Crash(BaseException):
    """The owner dies at a commit boundary."""


class _DiesBeforeResume(Store):
    def write_batch(self, items: Any, **kwargs: Any) -> Any:
        if any(e.event == "saga_resumed" for live, *_ in items for e in live.events):
            raise _Crash()
        return super().write_batch(items, **kwargs)


def test_a_crash_between_the_rollback_and_the_resume_is_recovered(
    store: Store, clock: FakeClock
) -> None:
    """Found by the simulator (reversa chaos --seed 247): the rollback to the checkpoint
    and the re-opening of its steps were two commits; a crash between them left a running
    saga with compensated steps, which no worker could move (illegal transition, forever)."""
    world = World()
    world.fail["do:credit"] = [reject("declined once")]
    saga = chain_saga(["debit", "convert", "credit"], on_failure=OnFailure.RETRY_FROM_CHECKPOINT,
                      checkpoint_retries=1, on_crash=OnCrash.RESUME)
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"checkpoint": s.name == "debit"}) for s in saga.steps)})
    agent = Engine(transfer_registry(world), _DiesBeforeResume(store.engine, clock=clock),
                   clock=clock, lease_s=5, heartbeat=False)
    with pytest.raises(_Crash):
        agent.run(saga, saga_id="resuming")
    clock.advance(10)
    worker = Worker(transfer_registry(world), store, clock=clock, lease_s=5)
    (result,) = worker.run_once()
    worker.engine.close()
    # The rollback to the checkpoint never concluded durably: the worker finishes the
    # rollback (all of it: the checkpoint is recorded with the conclusion).
    assert result.status is SagaStatus.COMPENSATED
    assert world.landed == ["do:debit", "do:convert", "undo:convert", "undo:debit"]
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    assert store.verify_audit().ok

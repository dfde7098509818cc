"""Plain helpers for the payments tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reversa import Engine, Phase, Registry, StepContext, Store
from reversa.core.context import idempotency_key
from reversa.demos.payments import PaymentsWorld


def make_engine(reg: Registry, store: Store, world: PaymentsWorld) -> Engine:
    """An engine on the world's fake clock (backoff advances time, never sleeps)."""
    return Engine(reg, store, clock=world.clock, services=world.services(), heartbeat=False)


def ctx(
    world: PaymentsWorld,
    step: str,
    params: Mapping[str, Any],
    *,
    phase: Phase = Phase.ACTION,
    saga_id: str = "s1",
    result: Any = None,
    results: Mapping[str, Any] | None = None,
    saga_input: Mapping[str, Any] | None = None,
    services: Mapping[str, Any] | None = None,
    epoch: int = 1,
) -> StepContext:
    """A hand-made context, as the engine would build it (lease epoch ``epoch``)."""
    return StepContext(
        saga_id=saga_id, workflow="test", step=step, phase=phase, attempt=1,
        idempotency_key=idempotency_key(saga_id, step, phase.value), input=saga_input or {},
        params=params, results=results or {}, result=result, pre_state=None, deadline=None,
        clock=world.clock, services=services or world.services(),
        action_key=idempotency_key(saga_id, step, Phase.ACTION.value), fencing_token=epoch,
    )


def restored(world: PaymentsWorld, before: Mapping[str, Mapping[str, int]],
             absorbing: tuple[str, ...] = ("fx:GBP", "fx:EUR", "fx_pnl:GBP")) -> dict[str, Any]:
    """Accounts whose balance differs from ``before`` (absorbing accounts excluded)."""
    after = world.balances()
    return {a: (before.get(a), v) for a, v in after.items()
            if a not in absorbing and v != before.get(a, {"posted": 0, "pending": 0})}

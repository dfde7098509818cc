"""A small refund desk for console tests: a saga that escalates until the desk is up.

``charge`` takes money, ``reserve`` books stock, ``ship`` fails when the input
says so; the rollback then needs ``refund``, which fails while the refund desk is
down: the saga is escalated for a human. Every effect is kept per saga, so sagas
of many tests share one desk without disturbing each other's snapshots.

A console running in another process (the browser tests) compensates what the
test process did: with ``REVERSA_TEST_DESK`` naming a directory, the books live
there, one JSON file per saga, so both processes see the same desk.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reversa import (
    CostEstimate,
    Engine,
    PermanentError,
    Registry,
    Retry,
    Saga,
    SagaResult,
    SnapshotContext,
    Step,
    StepContext,
    Store,
)

FAST = Retry(max_attempts=2, initial_s=0.001, max_s=0.002)


@dataclass
class Desk:
    """Money and stock per saga; a saga started with ``refunds_down`` cannot be
    refunded until ``refunds_up`` is set."""

    refunds_up: bool = False
    books: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: threading.Event = field(default_factory=threading.Event)  # a step is waiting
    gate: threading.Event = field(default_factory=threading.Event)  # let it go on

    def book(self, saga_id: str) -> dict[str, Any]:
        """A copy of the saga's book."""
        with self.lock:
            return dict(self._read(saga_id))

    def add(self, saga_id: str, item: str, delta: int) -> None:
        """Move one item of the saga's book by ``delta``."""
        with self.lock:
            book = self._read(saga_id)
            book[item] += delta
            self._write(saga_id, book)

    def _file(self, saga_id: str) -> Path | None:
        shared = os.environ.get("REVERSA_TEST_DESK")
        return Path(shared) / f"{saga_id}.json" if shared else None

    def _read(self, saga_id: str) -> dict[str, Any]:
        path = self._file(saga_id)
        if path is None:
            return self.books.setdefault(saga_id, {"charged": 0, "reserved": 0, "shipped": 0})
        if not path.exists():
            return {"charged": 0, "reserved": 0, "shipped": 0}
        found: dict[str, Any] = json.loads(path.read_text())
        return found

    def _write(self, saga_id: str, book: dict[str, Any]) -> None:
        path = self._file(saga_id)
        if path is not None:  # whole-file replace: the other process never reads half
            part = path.with_suffix(f".{os.getpid()}.part")
            part.write_text(json.dumps(book))
            part.replace(path)


DESK = Desk()


def services() -> dict[str, Any]:
    """The one desk of this process (the console imports this by its path)."""
    return {"desk": DESK}


def registry() -> Registry:
    """The desk's handlers."""
    reg = Registry()

    def desk(ctx: Any) -> Desk:
        found: Desk = ctx.services["desk"]
        return found

    @reg.action("desk.charge")
    def charge(ctx: StepContext) -> dict[str, Any]:
        desk(ctx).add(ctx.saga_id, "charged", int(ctx.input["amount"]))
        return {"charged": ctx.input["amount"]}

    @reg.compensation("desk.refund")
    def refund(ctx: StepContext) -> dict[str, Any]:
        if ctx.input.get("refunds_down") and not desk(ctx).refunds_up:
            raise PermanentError("the refund desk is down (HTTP 503)")
        desk(ctx).add(ctx.saga_id, "charged", -int(ctx.input["amount"]))
        return {"refunded": ctx.input["amount"]}

    @reg.cost("desk.refund_fee")
    def refund_fee(ctx: StepContext) -> CostEstimate:
        return CostEstimate(amount=1.5, unit="GBP", detail={"card": "refund fee"})

    @reg.action("desk.reserve")
    def reserve(ctx: StepContext) -> dict[str, Any]:
        if ctx.input.get("hold"):  # stay running until the test opens the gate
            desk(ctx).held.set()
            if not desk(ctx).gate.wait(timeout=120):
                raise PermanentError("the test never opened the gate")
        desk(ctx).add(ctx.saga_id, "reserved", 1)
        return {"reserved": 1}

    @reg.compensation("desk.release")
    def release(ctx: StepContext) -> dict[str, Any]:
        desk(ctx).add(ctx.saga_id, "reserved", -1)
        return {"released": 1}

    @reg.action("desk.ship")
    def ship(ctx: StepContext) -> dict[str, Any]:
        if ctx.input.get("fail_ship"):
            raise PermanentError("carrier rejected the parcel")
        desk(ctx).add(ctx.saga_id, "shipped", 1)
        return {"shipped": 1}

    @reg.compensation("desk.unship")
    def unship(ctx: StepContext) -> dict[str, Any]:
        desk(ctx).add(ctx.saga_id, "shipped", -1)
        return {"recalled": 1}

    @reg.snapshot("desk.snapshot")
    def snapshot(ctx: SnapshotContext) -> dict[str, Any]:
        return desk(ctx).book(ctx.saga_id)

    return reg


def saga(window_s: float = 3600) -> Saga:
    """charge -> reserve -> ship, each compensable (a refund costs a fee)."""
    return Saga(
        workflow="refund-desk", app="tests.console.flows:registry",
        services="tests.console.flows:services", snapshot="desk.snapshot",
        rollback_window_s=window_s,
        steps=[
            Step(name="charge", action="desk.charge", compensation="desk.refund", retry=FAST,
                 compensation_retry=FAST, cost="desk.refund_fee"),
            Step(name="reserve", action="desk.reserve", compensation="desk.release",
                 depends_on=("charge",), retry=FAST, compensation_retry=FAST),
            Step(name="ship", action="desk.ship", compensation="desk.unship",
                 depends_on=("reserve",), retry=FAST, compensation_retry=FAST),
        ],
    )


def run(store: Store, *, fail: bool, amount: int = 120, hold: bool = False,
        **engine: Any) -> SagaResult:
    """Run one saga on ``store``: ``fail`` ends it escalated (its refunds are down);
    ``hold`` keeps it running inside step 2 until ``DESK.gate`` is set."""
    eng = Engine(registry(), store, services=services(), heartbeat=False, **engine)
    try:
        return eng.run(saga(), {"amount": amount, "fail_ship": fail, "refunds_down": fail,
                                "hold": hold})
    finally:
        eng.close()

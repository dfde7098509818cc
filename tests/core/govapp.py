"""A user's workflow for the governance CLI tests; copied into a test's directory.

``python govflows.py DB complete|submit|hold`` starts one saga and prints what it
became. ``book.json`` next to it is the external system. Rolling a completed
order back escalates: ``unship`` refuses (the parcel left) unless ``parcel-back``
exists next to this file. In ``hold`` mode ``ship`` writes ``shipping`` and waits
(at most 120 s) for ``go`` to appear: a saga a live process is running.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from typing import Any

from reversa import (
    Approval,
    Engine,
    PermanentError,
    Registry,
    Saga,
    SnapshotContext,
    Step,
    StepContext,
    Store,
)

HERE = pathlib.Path(__file__).resolve().parent
BOOK = HERE / "book.json"
HOLD = False


class Book:
    """Balances in a JSON file."""

    def read(self) -> dict[str, int]:
        return json.loads(BOOK.read_text()) if BOOK.exists() else {"alice": 100, "shop": 0}

    def move(self, amount: int) -> None:
        book = self.read()
        book["alice"] -= amount
        book["shop"] += amount
        BOOK.write_text(json.dumps(book))


def services() -> dict[str, Any]:
    return {"book": Book()}


def registry() -> Registry:
    reg = Registry()

    @reg.action("pay")
    def pay(ctx: StepContext) -> dict[str, int]:
        ctx.services["book"].move(10)
        return {"paid": 10}

    @reg.compensation("refund")
    def refund(ctx: StepContext) -> dict[str, int]:
        ctx.services["book"].move(-10)
        return {"refunded": 10}

    @reg.action("ship")
    def ship(ctx: StepContext) -> dict[str, bool]:
        if HOLD:
            # Written whole, then renamed: the test polls for the file and reads it at once.
            (HERE / "shipping.part").write_text(ctx.saga_id)
            os.replace(HERE / "shipping.part", HERE / "shipping")
            deadline = time.monotonic() + 120
            while not (HERE / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return {"shipped": True}

    @reg.compensation("unship")
    def unship(ctx: StepContext) -> None:
        if not (HERE / "parcel-back").exists():
            raise PermanentError("the parcel already left")

    @reg.snapshot("book.state")
    def state(ctx: SnapshotContext) -> dict[str, int]:
        return dict(ctx.services["book"].read())

    return reg


def saga() -> Saga:
    return Saga.chain("order", [Step(name="pay", action="pay", compensation="refund"),
                                Step(name="ship", action="ship", compensation="unship")],
                      snapshot="book.state", app="govflows:registry",
                      services="govflows:services")


if __name__ == "__main__":
    mode = sys.argv[2]
    HOLD = mode == "hold"
    engine = Engine(registry(), Store.open(sys.argv[1]), services=services(), heartbeat=False)
    if mode == "submit":
        held = engine.submit(saga(), {"amount": 5000, "currency": "GBP"}, by="agent:bot",
                             approval_reason="amount above the agent's limit")
        assert isinstance(held, Approval)
        print(held.saga_id, held.id)
    else:
        result = engine.run(saga(), {"amount": 5000, "currency": "GBP"})
        print(result.saga_id, result.status.value, result.escalation_id)
    engine.close()

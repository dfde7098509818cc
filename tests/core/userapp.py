"""A user's workflow whose code lives outside Reversa; copied into a test's directory.

``book.json`` next to it is the external system (it outlives processes);
while ``refund-desk-down`` exists, refunds fail and the rollback escalates.
Run ``python myflows.py DB`` to start one saga (it escalates while the desk is down).
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

from reversa import (
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
DOWN = HERE / "refund-desk-down"


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
        if DOWN.exists():
            raise PermanentError("the refund desk is down")
        ctx.services["book"].move(-10)
        return {"refunded": 10}

    @reg.action("ship")
    def ship(ctx: StepContext) -> None:
        raise PermanentError("the warehouse rejected the order")

    @reg.compensation("unship")
    def unship(ctx: StepContext) -> None:
        return None

    @reg.snapshot("book.state")
    def state(ctx: SnapshotContext) -> dict[str, int]:
        return dict(ctx.services["book"].read())

    return reg


def saga() -> Saga:
    return Saga.chain("user-order", [Step(name="pay", action="pay", compensation="refund"),
                                     Step(name="ship", action="ship", compensation="unship")],
                      snapshot="book.state", app="myflows:registry", services="myflows:services")


if __name__ == "__main__":
    DOWN.touch()
    engine = Engine(registry(), Store.open(sys.argv[1]), services=services(), heartbeat=False)
    result = engine.run(saga())
    engine.close()
    print(result.saga_id, result.status.value, result.escalation_id)

"""Quick start: a three-step transfer whose last step fails, governed back.

Run: python examples/core/quickstart.py   (writes ./reversa.db, or $REVERSA_DB)
"""

from __future__ import annotations

from typing import Any

from reversa import (
    Check,
    Engine,
    PermanentError,
    PredicateContext,
    Registry,
    Saga,
    SagaStatus,
    SnapshotContext,
    Step,
    StepContext,
    Store,
)

balances = {"alice": 100, "bob": 0}
applied: set[str] = set()  # the "bank" deduplicates by idempotency key
registry = Registry()


def move(ctx: StepContext, frm: str, to: str, amount: int) -> dict[str, Any]:
    if ctx.idempotency_key not in applied:
        applied.add(ctx.idempotency_key)
        balances[frm] -= amount
        balances[to] += amount
    return {"moved": amount}


@registry.action("bank.debit")
def debit(ctx: StepContext) -> dict[str, Any]:
    return move(ctx, "alice", "bob", ctx.params["amount"])


@registry.compensation("bank.refund")
def refund(ctx: StepContext) -> dict[str, Any]:
    return move(ctx, "bob", "alice", ctx.result["moved"])


@registry.action("partner.credit")
def credit(ctx: StepContext) -> None:
    raise PermanentError("partner bank rejects the credit (sanctions screening)")


@registry.compensation("partner.cancel")
def cancel(ctx: StepContext) -> None:
    return None  # nothing reached the partner; "nothing to undo" is success


@registry.snapshot("bank.balances")
def snapshot(ctx: SnapshotContext) -> dict[str, Any]:
    return dict(balances)


@registry.predicate("bank.restored")
def restored(ctx: PredicateContext) -> Check:
    ok = ctx.post_state == ctx.pre_state
    return Check(ok, "balances equal the pre-workflow snapshot" if ok else "balances differ")


saga = Saga.chain(
    "quickstart-transfer",
    [
        Step(name="debit", action="bank.debit", compensation="bank.refund",
             params={"amount": 40}),
        Step(name="credit", action="partner.credit", compensation="partner.cancel"),
    ],
    snapshot="bank.balances",
    predicate="bank.restored",
)

if __name__ == "__main__":
    store = Store.open()  # $REVERSA_DB or ./reversa.db (SQLite, WAL)
    engine = Engine(registry, store)
    result = engine.run(saga, {"reference": "INV-1"})
    engine.close()
    print(f"saga {result.saga_id}: {result.status} (failed at {result.failed_step!r})")
    print(f"balances: {balances}")
    print(f"audit verified: {store.verify_audit(result.saga_id).ok}")
    raise SystemExit(0 if result.status is SagaStatus.COMPENSATED else 1)

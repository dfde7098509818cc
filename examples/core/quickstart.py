"""Quick start: the README's transfer saga, typed, with a consistency predicate.

The debit succeeds, the partner's credit fails, so the debit is refunded; the
predicate then confirms the balance equals the snapshot taken before step 1.

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

# An in-file stand-in for the bank: one posting per idempotency key, so a retried
# or repeated call posts once (as a real bank API that deduplicates by key would).
bank: dict[str, int] = {}
OPENING_BALANCE = 100
registry = Registry()


@registry.action("bank.debit")
def debit(ctx: StepContext) -> dict[str, Any]:
    bank[ctx.idempotency_key] = -ctx.input["amount"]
    return {"amount": ctx.input["amount"]}


@registry.compensation("bank.refund")
def refund(ctx: StepContext) -> None:
    bank[ctx.idempotency_key] = ctx.result["amount"]


@registry.action("partner.credit")
def credit(ctx: StepContext) -> None:
    raise PermanentError("the partner bank rejects the credit (sanctions screening)")


@registry.compensation("partner.cancel")
def cancel(ctx: StepContext) -> None:
    return None  # nothing reached the partner; "nothing to undo" is success


@registry.snapshot("bank.balance")
def balance(ctx: SnapshotContext) -> dict[str, Any]:
    return {"balance": OPENING_BALANCE + sum(bank.values())}


@registry.predicate("bank.restored")
def restored(ctx: PredicateContext) -> Check:
    ok = ctx.post_state == ctx.pre_state
    return Check(ok, "balance equals the pre-workflow snapshot" if ok else "balance differs")


saga = Saga.chain(
    "transfer",
    [
        Step(name="debit", action="bank.debit", compensation="bank.refund"),
        Step(name="credit", action="partner.credit", compensation="partner.cancel"),
    ],
    snapshot="bank.balance",
    predicate="bank.restored",
)

if __name__ == "__main__":
    store = Store.open()  # $REVERSA_DB or ./reversa.db (SQLite, WAL)
    engine = Engine(registry, store)
    result = engine.run(saga, {"amount": 40})
    engine.close()
    print(f"saga {result.saga_id}: {result.status} (failed at {result.failed_step!r})")
    print(f"balance: {OPENING_BALANCE + sum(bank.values())}")
    print(f"audit verified: {store.verify_audit(result.saga_id).ok}")
    raise SystemExit(0 if result.status is SagaStatus.COMPENSATED else 1)

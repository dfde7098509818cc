"""A shared-account service for the cross-workflow tests (issue 15).

Several sagas act on the same accounts. The service keeps the effect boundary
(fenced, tombstoned keys) and counts what landed, so the tests count effects at
the service: ``landed`` holds one label per effect that changed a balance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from reversa import (
    Check,
    CostEstimate,
    PermanentError,
    Probe,
    Registry,
    Retry,
    Saga,
    Step,
    StepContext,
)
from reversa.core.fencing import FenceGate
from reversa.core.model import OnDependents
from reversa.core.resources import Resource, Role

FAST = Retry(max_attempts=2, initial_s=0.01, max_s=0.02)


@dataclass
class Accounts:
    """Balances per account; every applied effect is recorded by key."""

    balances: dict[str, int] = field(default_factory=lambda: {"house": 1000, "shared": 0,
                                                               "payee": 0, "writeoff": 0})
    applied: dict[str, str] = field(default_factory=dict)  # key -> label
    landed: list[str] = field(default_factory=list)  # labels, in the order they landed
    reversed_outside: set[str] = field(default_factory=set)  # keys undone behind Reversa's back
    gate: FenceGate = field(default_factory=FenceGate)
    price: float = 1.0  # what undoing a funding costs now (EUR)
    before_boom: Callable[[], Awaitable[Any]] | None = None
    before_pause: Callable[[], Awaitable[Any]] | None = None

    def move(self, ctx: StepContext, label: str, src: str, dst: str, amount: int) -> dict[str, Any]:
        with self.gate.lock:
            self.gate.admit(ctx.fence)
            self.gate.check_key(ctx.idempotency_key)
            if ctx.idempotency_key not in self.applied:
                if self.balances[src] < amount:
                    raise PermanentError(f"{src} has {self.balances[src]}, needs {amount}")
                self.balances[src] -= amount
                self.balances[dst] += amount
                self.applied[ctx.idempotency_key] = label
                self.landed.append(label)
            return {"label": label, "amount": amount}

    def count(self, label: str) -> int:
        return self.landed.count(label)

    def reverse_outside(self, key: str, src: str, dst: str, amount: int) -> None:
        """Someone books an effect back by hand: Reversa is not told."""
        self.balances[src] += amount
        self.balances[dst] -= amount
        self.reversed_outside.add(key)


def registry(acc: Accounts) -> Registry:
    """fund (house -> account), spend (account -> payee), boom (fails after a hook)."""
    reg = Registry()

    def fund(ctx: StepContext) -> dict[str, Any]:
        return acc.move(ctx, "do:fund", "house", ctx.param("account"), ctx.param("amount"))

    def unfund(ctx: StepContext) -> dict[str, Any]:
        return acc.move(ctx, "undo:fund", ctx.param("account"), "house", ctx.param("amount"))

    def accept_fund(ctx: StepContext) -> dict[str, Any]:
        # Semantic compensation: the funds stay spent; the house books a write-off.
        return acc.move(ctx, "accept:fund", "house", "writeoff", 0)

    def spend(ctx: StepContext) -> dict[str, Any]:
        return acc.move(ctx, "do:spend", ctx.param("account"), "payee", ctx.param("amount"))

    def unspend(ctx: StepContext) -> dict[str, Any]:
        return acc.move(ctx, "undo:spend", "payee", ctx.param("account"), ctx.param("amount"))

    async def boom(ctx: StepContext) -> None:
        if acc.before_boom is not None:
            hook, acc.before_boom = acc.before_boom, None
            await hook()
        raise PermanentError("downstream rejected the funding")

    async def pause(ctx: StepContext) -> dict[str, Any]:
        if acc.before_pause is not None:
            hook, acc.before_pause = acc.before_pause, None
            await hook()
        return {}

    def probe(ctx: StepContext) -> Probe:
        return Probe.HAPPENED if ctx.action_key in acc.applied else Probe.NOT_HAPPENED

    def fund_resources(ctx: StepContext) -> list[Resource]:
        return [Resource("acct", str(ctx.param("account")), Role.PRODUCES)]

    def spend_resources(ctx: StepContext) -> list[Resource]:
        return [Resource("acct", str(ctx.param("account")), Role.CONSUMES)]

    def fund_reconcile(ctx: StepContext) -> Check:
        if ctx.phase == "action":
            ok = ctx.action_key in acc.applied and ctx.action_key not in acc.reversed_outside
            return Check(ok, "funding stands" if ok else "funding was booked back outside")
        key = ctx.idempotency_key
        ok = key in acc.applied and key not in acc.reversed_outside
        return Check(ok, "correction stands" if ok else "correction was booked back outside")

    def fund_cost(ctx: StepContext) -> CostEstimate:
        return CostEstimate(acc.price, "EUR", kind="fx", reason="reversal spread")

    def conserved(ctx: Any) -> Check:
        total = sum(acc.balances.values())
        return Check(total == 1000, f"money on the books: {total} (1000 expected)")

    for kind, name, fn in [
        ("predicate", "acct.conserved", conserved),
        ("action", "fund", fund), ("compensation", "fund.undo", unfund),
        ("compensation", "fund.accept", accept_fund), ("action", "spend", spend),
        ("compensation", "spend.undo", unspend), ("action", "boom", boom),
        ("action", "pause", pause), ("compensation", "pause.undo", lambda ctx: None),
        ("probe", "acct.probe", probe), ("resources", "fund.resources", fund_resources),
        ("resources", "spend.resources", spend_resources),
        ("reconcile", "fund.reconcile", fund_reconcile), ("cost", "fund.cost", fund_cost),
    ]:
        reg.add(kind, name, fn)
    return reg


def funding(policy: OnDependents = OnDependents.BLOCK, *, fail: bool = True,
            **saga: Any) -> Saga:
    """Saga A: fund the shared account, then (with ``fail``) a step that fails."""
    steps = [Step(name="fund", action="fund", compensation="fund.undo", probe="acct.probe",
                  resources="fund.resources", reconcile="fund.reconcile", cost="fund.cost",
                  accept_compensation="fund.accept", retry=FAST, compensation_retry=FAST,
                  params={"account": "$input.account", "amount": "$input.amount"})]
    if fail:
        steps.append(Step(name="boom", action="boom", compensation="fund.undo",
                          depends_on=("fund",), retry=FAST, probe="acct.probe",
                          params={"account": "$input.account", "amount": 0}))
    return Saga(workflow="funding", steps=steps, on_dependents=policy,
                predicate="acct.conserved", **saga)


def payout(**saga: Any) -> Saga:
    """Saga B: pay the shared account's funds out."""
    step = Step(name="spend", action="spend", compensation="spend.undo", probe="acct.probe",
                resources="spend.resources", retry=FAST, compensation_retry=FAST,
                params={"account": "$input.account", "amount": "$input.amount"})
    return Saga(workflow="payout", steps=[step], predicate="acct.conserved", **saga)


INPUT = {"account": "shared", "amount": 100}

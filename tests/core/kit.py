"""A small world of services for core tests: effects recorded per idempotency key."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reversa import (
    Check,
    PermanentError,
    Probe,
    Registry,
    Retry,
    Saga,
    SnapshotContext,
    Step,
    StepContext,
)
from reversa.core.fencing import FenceGate


@dataclass
class World:
    """Balances changed by steps; every call and every applied effect is counted.

    Like a real service it keeps the effect boundary: it refuses a call whose
    fencing token is older than one it has seen for the saga, and a call whose
    key a rollback blocked.
    """

    balances: dict[str, int] = field(default_factory=lambda: {"a": 100, "b": 0, "c": 0})
    applied: dict[str, Any] = field(default_factory=dict)  # key -> first result
    calls: Counter[str] = field(default_factory=Counter)  # key -> calls received
    order: list[str] = field(default_factory=list)  # "do:x" / "undo:x" in call order
    fail: dict[str, Any] = field(default_factory=dict)  # handler -> exception or list
    keys: dict[str, list[str]] = field(default_factory=dict)  # step/phase -> keys seen
    gate: FenceGate = field(default_factory=FenceGate)
    landed: list[str] = field(default_factory=list)  # labels of effects that changed balances

    def effect(self, ctx: StepContext, label: str, delta: dict[str, int]) -> dict[str, Any]:
        self.calls[ctx.idempotency_key] += 1
        self.keys.setdefault(f"{ctx.step}:{ctx.phase}", []).append(ctx.idempotency_key)
        planned = self.fail.get(label)
        if isinstance(planned, list) and planned:
            raise planned.pop(0)
        if isinstance(planned, BaseException):
            raise planned
        with self.gate.lock:
            self.gate.admit(ctx.fence)
            self.gate.check_key(ctx.idempotency_key)
            return self._apply(ctx, label, delta)

    def block(self, ctx: StepContext) -> Probe:
        """Tombstone the action's key unless it already took effect (atomically)."""
        with self.gate.lock:
            self.gate.admit(ctx.fence)
            if ctx.action_key in self.applied:
                return Probe.HAPPENED
            self.gate.tombstone(ctx.action_key, ctx.fence)
            return Probe.NOT_HAPPENED

    def _apply(self, ctx: StepContext, label: str, delta: dict[str, int]) -> dict[str, Any]:
        if ctx.idempotency_key in self.applied:  # a replay: dedupe, like a real service
            return dict(self.applied[ctx.idempotency_key])
        self.order.append(label)
        self.landed.append(label)
        for account, amount in delta.items():
            self.balances[account] += amount
        result = {"label": label, "delta": delta}
        self.applied[ctx.idempotency_key] = result
        return result


def transfer_registry(world: World) -> Registry:
    """Steps moving 10 units around; compensations move them back."""
    reg = Registry()
    moves = {"debit": {"a": -10}, "convert": {"b": 10}, "credit": {"c": 10},
             "notify": {}, "confirm": {}}
    for name, delta in moves.items():
        _register_move(reg, world, name, delta)

    @reg.snapshot("world.snapshot")
    def snapshot(ctx: SnapshotContext) -> dict[str, Any]:
        return {"balances": dict(world.balances)}

    @reg.predicate("world.balanced")
    def balanced(ctx: Any) -> Check:
        ok = ctx.post_state == ctx.pre_state
        return Check(ok, "balances restored" if ok else "balances differ")

    @reg.probe("world.probe")
    def probe(ctx: StepContext) -> Probe:
        return Probe.HAPPENED if ctx.action_key in world.applied else Probe.NOT_HAPPENED

    reg.add("block", "world.block", world.block)

    return reg


def _register_move(reg: Registry, world: World, name: str, delta: dict[str, int]) -> None:
    undo = {k: -v for k, v in delta.items()}

    def do(ctx: StepContext) -> dict[str, Any]:
        return world.effect(ctx, f"do:{name}", delta)

    async def do_async(ctx: StepContext) -> dict[str, Any]:
        await asyncio.sleep(0)
        return world.effect(ctx, f"do:{name}", delta)

    def undo_fn(ctx: StepContext) -> dict[str, Any]:
        return world.effect(ctx, f"undo:{name}", undo)

    reg.add("action", f"{name}", do)
    reg.add("action", f"{name}.async", do_async)
    reg.add("compensation", f"{name}.undo", undo_fn)


FAST = Retry(max_attempts=3, initial_s=0.01, max_s=0.05)


def chain_saga(names: list[str] | None = None, **policy: Any) -> Saga:
    names = names or ["debit", "convert", "credit"]
    steps = [Step(name=n, action=n, compensation=f"{n}.undo", retry=FAST,
                  compensation_retry=FAST, probe="world.probe", block="world.block")
             for n in names]
    policy.setdefault("snapshot", "world.snapshot")
    return Saga.chain("transfer", steps, **policy)


def reject(msg: str = "rejected") -> PermanentError:
    return PermanentError(msg)

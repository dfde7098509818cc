"""The core pack: chains, parallel DAG branches, checkpoints, forward recovery, safe states.

Every step moves something at one simulated service, the ledger, which keeps the
effect boundary as a real service must: it admits a call only with a fencing
token at least as new as any it has seen for the saga, refuses keys a rollback
blocked, applies a forward call once per idempotency key and an undo once per
undo key, and counts everything it applied. Results and probe answers carry
``Decimal`` amounts, as money does.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ....core.context import Check, CostEstimate, Probe, StepContext
from ....core.errors import Fenced, OutcomeUnknown, PermanentError, TransientError
from ....core.fencing import FenceGate
from ....core.model import (
    Escalation,
    OnCrash,
    OnFailure,
    Retry,
    Reversibility,
    Saga,
)
from ....core.registry import Registry
from ..faults import SagaPlan
from ..network import Network, Request
from ..process import Process
from . import Effects

__all__ = ["CorePack", "Ledger"]

STEP_RETRY = Retry(max_attempts=3, initial_s=0.2, max_s=1.0)
UNDO_RETRY = Retry(max_attempts=4, initial_s=0.2, max_s=1.0)

WORKFLOWS: dict[str, tuple[str, ...]] = {
    "chain": ("debit", "convert", "credit"),
    "dag": ("reserve", "left", "right", "settle"),
    "checkpoint": ("hold", "book", "ship", "pay"),
    "forward": ("charge", "deliver", "invoice"),
    "safe": ("pick", "place", "weld"),
    "final": ("draft", "pay", "notify"),
    "probe_only": ("quote", "order", "confirm"),
}


class Ledger:
    """The simulated service. Single-threaded (the simulation's loop), atomic per call."""

    def __init__(self) -> None:
        self.gate = FenceGate()
        self.log = Effects()
        self._results: dict[str, Any] = {}
        self._undo_results: dict[str, Any] = {}
        self._recoveries: dict[str, Any] = {}
        self._rejected: dict[tuple[str, str], str] = {}
        self.safe_states: Counter[str] = Counter()
        self.closed: set[str] = set()
        self.clock = 0.0

    def handle(self, request: Request, injected: str | None) -> Any:
        """Apply ``request`` (or answer with the error the schedule injects).

        A rejection is the answer for that key, as an idempotent API stores its
        responses: a duplicate of a rejected request is rejected again, never
        applied later behind the caller's back. A transient refusal is not stored
        (a retry under the same key may succeed).
        """
        self.log.calls[request.key] += 1
        effectful = request.op in ("do", "undo", "recover")
        rejected = self._rejected.get((request.op, request.key))
        if rejected is not None:
            raise PermanentError(rejected)
        if injected == "transient":
            raise TransientError("the service is busy (simulated); nothing was applied")
        if injected == "permanent":
            message = "the service rejected the call (simulated)"
            if effectful:
                self._rejected[(request.op, request.key)] = message
            raise PermanentError(message)
        try:
            self.gate.admit(request.fence)
            if request.op in ("do", "recover"):
                self.gate.check_key(request.key)
        except Fenced:
            self.log.refused += 1
            raise
        result = getattr(self, "_" + request.op)(request)
        if injected == "in_doubt":
            raise OutcomeUnknown("the service failed after applying the call (simulated)")
        return result

    def _do(self, request: Request) -> Any:
        if request.key in self._results:  # a replay: the same answer, no second effect
            return self._results[request.key]
        if request.decline:
            raise PermanentError(f"the service declines {request.step} (simulated business "
                                 "rule)", code="declined")
        self.log.applied[request.key] = (request.saga, request.step)
        result = {"amount": Decimal("12.50"), "step": request.step}
        self._results[request.key] = result
        return result

    def _undo(self, request: Request) -> Any:
        if request.key in self._undo_results:
            return self._undo_results[request.key]
        target = request.target
        if target in self.log.applied:
            # Refund by reference: each distinct undo key refunds again.
            self.log.undone[target] += 1
            result = {"undone": True}
        else:
            # Nothing to undo, and it must never happen now: block the forward key.
            self.gate.tombstone(target, request.fence)
            result = {"undone": False}
        self._undo_results[request.key] = result
        return result

    def _probe(self, request: Request) -> Any:
        happened = request.target in self.log.applied
        return {"happened": happened, "amount": Decimal("12.50") if happened else None}

    def _block(self, request: Request) -> Any:
        if request.target in self.log.applied:
            return {"happened": True, "amount": Decimal("12.50")}
        self.gate.tombstone(request.target, request.fence)
        return {"happened": False}

    def _recover(self, request: Request) -> Any:
        if request.key not in self._recoveries:
            self.log.recovered[request.target] += 1
            self._recoveries[request.key] = {"recovered": request.step}
        return self._recoveries[request.key]

    def _safe(self, request: Request) -> Any:
        self.safe_states[request.saga] += 1
        return {"safe": True}

    # -- direct reads (snapshots and checks read state, they change nothing) ---------
    def standing(self, saga_id: str) -> dict[str, list[str]]:
        """The saga's effects in place: steps whose forward effect stands, steps recovered."""
        standing = sorted(step for key, (saga, step) in self.log.applied.items()
                          if saga == saga_id and self.log.standing(key))
        recovered = sorted(step for key, (saga, step) in self.log.applied.items()
                           if saga == saga_id and self.log.recovered[key])
        return {"standing": standing, "recovered": recovered}


class LedgerPort:
    """A process' client of the ledger: every call goes through the simulated network."""

    def __init__(self, ledger: Ledger, proc: Process, network: Network) -> None:
        self.ledger = ledger
        self.proc = proc
        self.network = network

    async def send(self, op: str, ctx: StepContext, *, decline: bool = False) -> Any:
        """Send one request carrying the call's key, the forward key and the fence."""
        request = Request(op, ctx.idempotency_key, ctx.action_key, ctx.fence, ctx.saga_id,
                          ctx.step, decline)
        return await self.network.call(self.proc, self.ledger, request)


def _port(ctx: StepContext) -> LedgerPort:
    return ctx.service("ledger", LedgerPort)


def _answer(reply: Mapping[str, Any]) -> Any:
    return (Probe.HAPPENED, dict(reply)) if reply["happened"] else Probe.NOT_HAPPENED


class Move:
    """A reversible move: execute, compensate, probe, block, a precondition and a cost."""

    name = "sim.move"

    async def execute(self, ctx: StepContext) -> Any:
        return await _port(ctx).send("do", ctx, decline=bool(ctx.param("decline", False)))

    async def compensate(self, ctx: StepContext) -> Any:
        return await _port(ctx).send("undo", ctx)

    async def probe(self, ctx: StepContext) -> Any:
        return _answer(await _port(ctx).send("probe", ctx))

    async def block(self, ctx: StepContext) -> Any:
        return _answer(await _port(ctx).send("block", ctx))

    def preconditions(self, ctx: StepContext) -> Check:
        ledger = _port(ctx).ledger
        open_ = ctx.saga_id not in ledger.closed
        return Check(open_, "compensation window open" if open_ else
                     "the service closed this saga's compensation window",
                     {"fee": Decimal("0.25")})

    def estimate_cost(self, ctx: StepContext) -> CostEstimate:
        return CostEstimate(0.25, "GBP", {"fee": Decimal("0.25")})


class ProbeOnly:
    """A move whose service can tell whether it happened but cannot refuse it later."""

    name = "sim.probe_only"
    cannot_block = "the simulated service has no way to refuse a late request"

    async def execute(self, ctx: StepContext) -> Any:
        return await _port(ctx).send("do", ctx, decline=bool(ctx.param("decline", False)))

    async def compensate(self, ctx: StepContext) -> Any:
        return await _port(ctx).send("undo", ctx)

    async def probe(self, ctx: StepContext) -> Any:
        return _answer(await _port(ctx).send("probe", ctx))


class OneWay:
    """An irreversible move (a payment out, a weld): nothing undoes it."""

    name = "sim.one_way"

    async def execute(self, ctx: StepContext) -> Any:
        return await _port(ctx).send("do", ctx, decline=bool(ctx.param("decline", False)))

    async def probe(self, ctx: StepContext) -> Any:
        return _answer(await _port(ctx).send("probe", ctx))

    async def block(self, ctx: StepContext) -> Any:
        return _answer(await _port(ctx).send("block", ctx))


class CoreWorld:
    """One schedule's ledger, and the sagas of the core pack."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self._registry = _registry(self.ledger)

    def registry(self) -> Registry:
        return self._registry

    def services_for(self, proc: Process, network: Network) -> Mapping[str, Any]:
        return {"ledger": LedgerPort(self.ledger, proc, network)}

    def effects(self) -> Effects:
        return self.ledger.log

    def close_window(self, saga_id: str) -> None:
        self.ledger.closed.add(saga_id)

    def saga(self, plan: SagaPlan) -> tuple[Saga, dict[str, Any]]:
        return _saga(plan.workflow, plan.decline, plan.option("on_crash", "compensate"),
                     plan.index % 2 == 0), {"saga": plan.index}


class CorePack:
    """Workflows using only the core: the ones every Reversa feature can be checked on."""

    name = "core"

    def workflows(self) -> dict[str, tuple[str, ...]]:
        return dict(WORKFLOWS)

    def world(self, seed: int) -> CoreWorld:
        return CoreWorld()


def _registry(ledger: Ledger) -> Registry:
    reg = Registry()
    for op in (Move(), ProbeOnly(), OneWay()):
        reg.register(op)

    async def recover(ctx: StepContext) -> Any:
        return await _port(ctx).send("recover", ctx)

    async def safe(ctx: StepContext) -> Any:
        return await _port(ctx).send("safe", ctx)

    reg.add("action", "sim.recover", recover)
    reg.add("action", "sim.safe", safe)
    reg.add("snapshot", "sim.snapshot", lambda ctx: ledger.standing(ctx.saga_id))

    def reconciled(ctx: Any) -> Check:
        # Forward recovery leaves the irreversible effect in place, completed another way.
        def net(state: Any) -> list[str]:
            state = state or {"standing": [], "recovered": []}
            return sorted(set(state["standing"]) - set(state["recovered"]))

        baseline = ctx.checkpoint_state if ctx.checkpoint else ctx.pre_state
        ok = net(ctx.post_state) == net(baseline)
        return Check(ok, "every effect undone or recovered" if ok else
                     f"effects still standing: {net(ctx.post_state)}")

    reg.add("predicate", "sim.reconciled", reconciled)
    return reg


@functools.lru_cache(maxsize=512)
def _saga(wf: str, decline: str | None, on_crash: str, retry: bool) -> Saga:
    # Definitions are plain data, wired by name: build each variant once, so every
    # engine of every run validates the same object (engines cache by identity).
    reg = _WIRING
    names = WORKFLOWS[wf]

    def step(name: str, op: str = "sim.move", **extra: Any) -> Any:
        params = {"decline": True} if decline == name else {}
        return reg.step(name, op, retry=STEP_RETRY, compensation_retry=UNDO_RETRY,
                        params=params, **extra)

    policy: dict[str, Any] = {
        "snapshot": "sim.snapshot", "rollback_window_s": 120.0, "stall_after_s": 60.0,
        "on_crash": OnCrash(on_crash),
    }
    if wf == "chain":
        return Saga.chain("sim-chain", [step(n) for n in names], **policy)
    if wf == "dag":
        reserve, left, right, settle = names
        return Saga(workflow="sim-dag", steps=[
            step(reserve), step(left, depends_on=(reserve,)), step(right, depends_on=(reserve,)),
            step(settle, depends_on=(left, right))], **policy)
    if wf == "checkpoint":
        hold, book, ship, pay = names
        return Saga.chain("sim-checkpoint", [
            step(hold), step(book, checkpoint=True), step(ship), step(pay)],
            on_failure=(OnFailure.RETRY_FROM_CHECKPOINT if retry
                        else OnFailure.ROLLBACK_TO_CHECKPOINT), checkpoint_retries=1, **policy)
    if wf == "forward":
        charge, deliver, invoice = names
        return Saga.chain("sim-forward", [
            step(charge),
            step(deliver, "sim.one_way", reversibility=Reversibility.IRREVERSIBLE,
                 forward_recovery="sim.recover"),
            step(invoice)], predicate="sim.reconciled", **policy)
    if wf == "safe":
        return Saga.chain("sim-safe", [step(n) for n in names], safe_state="sim.safe",
                          **policy)
    if wf == "final":
        draft, pay, notify = names
        return Saga.chain("sim-final", [
            step(draft),
            step(pay, "sim.one_way", reversibility=Reversibility.IRREVERSIBLE,
                 escalation=Escalation(reason="money left the account; a human must claw "
                                              "it back")),
            step(notify)], **policy)
    quote, order, confirm = names
    return Saga.chain("sim-probe-only", [step(quote), step(order, "sim.probe_only"),
                                         step(confirm)], **policy)


_WIRING = _registry(Ledger())
"""Wires step definitions to handler names (the same names in every run's registry)."""

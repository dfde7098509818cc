"""The payments pack: the payments adapter's own operations against the simulated bank.

Steps are the adapter's real operations (``payments.hold``, ``payments.transfer``:
a hold undone by a void, posted transfers undone by a correcting transfer that
references the original), booking on :class:`~reversa.simulators.ledger.MockLedger`,
which keeps the effect boundary itself (fencing tokens per saga, tombstoned ids).
Nothing here re-implements the adapter: only the wire between a process and the
bank is simulated.

The adapter is synchronous, so its calls cannot wait on the simulated network's
timers. :class:`BankLink` applies the same schedule to them synchronously: a lost
request or reply and a request delivered late (it lands after the caller gave
up, scheduled on the loop) are a :class:`LedgerTimeout` to the caller; a
duplicate is delivered twice; the service faults are a refusal (transient), a
rejection (permanent) or an error after booking (in doubt). Pauses need an
``await`` and so never hit this pack's calls.

Effects are counted at the bank: a forward transfer that was booked, by id; a
void or a correction booked against it, by the id it undoes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from ....adapters.payments.ledger_api import (
    Account,
    LedgerError,
    LedgerFenced,
    LedgerRejected,
    LedgerTimeout,
    LedgerUnavailable,
    Payment,
    PaymentRequest,
    Recall,
    Transfer,
    TransferKind,
    TransferRequest,
)
from ....adapters.payments.ledger_ops import LedgerHold, LedgerTransfer
from ....core.context import Check, Fence, StepContext
from ....core.model import OnCrash, Retry, Saga
from ....core.registry import Registry
from ....simulators.ledger import MockLedger
from ..faults import SagaPlan
from ..network import CALL_TIMEOUT_S, Network
from ..process import Process
from . import Effects
from .paced import Paced

__all__ = ["BankLink", "PaymentsPack", "PaymentsWorld"]

T = TypeVar("T")
SERVICE = "bank"  # not "ledger": the core pack's service has that name
STEP_RETRY = Retry(max_attempts=3, initial_s=0.2, max_s=1.0)
UNDO_RETRY = Retry(max_attempts=4, initial_s=0.2, max_s=1.0)
ACCOUNTS = ("customer", "escrow", "fees", "merchant", "partner")

WORKFLOWS: dict[str, tuple[str, ...]] = {
    "payout": ("hold", "fee", "pay"),
    "split": ("hold", "fee", "pay", "share"),
}


class _Epoch:
    """The bank's clock: holds here never expire and nothing settles on a rail."""

    def now(self) -> float:
        return 0.0


class BankLink:
    """A process' connection to the bank: the LedgerAPI calls the adapter makes.

    Every call counts as one service call of the schedule (net and service faults
    are pinned to call numbers) and dies with the process.
    """

    def __init__(self, world: PaymentsWorld, proc: Process, network: Network) -> None:
        self.world = world
        self.bank = world.bank
        self.proc = proc
        self.network = network

    async def pause_point(self, what: str) -> None:
        """Where a pause can hit: before the operation's next call to the bank.

        The adapter's calls are synchronous, so a process can only stop between
        them; an operation starts with its first call, so that is where it stops.
        """
        proc = self.proc
        proc.check_alive()
        pause = self.network.book.pause_fault(proc, proc.calls + 1)
        if pause is None:
            return
        self.network.book.fired_fault(pause, f"{proc.name} paused before {what}")
        proc.paused_until = asyncio.get_running_loop().time() + float(pause.arg)
        await asyncio.sleep(float(pause.arg))
        proc.check_alive()

    def _call(self, op: str, fence: Fence | None, apply: Callable[[], T], *,
              effect: bool) -> T:
        self.proc.check_alive()
        self.proc.calls += 1
        self.network.calls += 1
        n = self.network.calls
        book = self.network.book
        net, injected = book.net_fault(n), book.service_fault(n)
        what = f"{op} of {fence.saga_id if fence else '?'} at the bank"
        for fault in (net, injected):
            if fault is not None:
                book.fired_fault(fault, what)
        kind = net.arg if net is not None else None
        # Counted by operation: many bank calls (a search, an account read) have no key.
        self.world.log.calls[op] += 1
        if kind == "lost_request":
            raise LedgerTimeout(f"no reply from the bank within {CALL_TIMEOUT_S:g}s")
        if kind == "late":
            # It lands after the caller gave up: the late effect the bank's boundary
            # must refuse when a rollback blocked it meanwhile.
            asyncio.get_running_loop().call_later(CALL_TIMEOUT_S * 3, self._late, apply)
            raise LedgerTimeout(f"no reply from the bank within {CALL_TIMEOUT_S:g}s")
        if injected is not None and injected.arg == "transient":
            raise LedgerUnavailable("the bank is busy (simulated); nothing was booked")
        if injected is not None and injected.arg == "permanent":
            raise LedgerRejected("the bank rejected the call (simulated)", code="rejected")
        result = self._counted(apply)
        if kind == "dup":
            self.network.duplicates += 1
            self._late(apply)  # a replay under the same id: the bank answers, books nothing
        if kind == "lost_reply" or (injected is not None and injected.arg == "in_doubt"):
            if not effect:
                raise LedgerUnavailable("the connection dropped (simulated)")
            raise LedgerTimeout("the bank applied the call but its answer was lost (simulated)")
        return result

    def _counted(self, apply: Callable[[], T]) -> T:
        try:
            return apply()
        except LedgerFenced:
            self.world.log.refused += 1
            raise

    def _late(self, apply: Callable[[], Any]) -> None:
        try:
            self._counted(apply)
        except LedgerError:
            return  # the caller is gone: the bank's answer goes nowhere

    # -- the LedgerAPI calls the pack's operations make ------------------------------
    def get_account(self, id: str, *, fence: Fence | None = None) -> Account:
        return self._call("get_account", fence, lambda: self.bank.get_account(id, fence=fence),
                          effect=False)

    def create_transfer(self, request: TransferRequest, *, fence: Fence | None = None
                        ) -> Transfer:
        def apply() -> Transfer:
            booked = self.bank.create_transfer(request, fence=fence)
            self.world.booked(booked, fence)
            return booked

        return self._call("create_transfer", fence, apply, effect=True)

    def void_pending(self, id: str, pending_id: str, *, fence: Fence | None = None
                     ) -> Transfer:
        def apply() -> Transfer:
            booked = self.bank.void_pending(id, pending_id, fence=fence)
            self.world.booked(booked, fence)
            return booked

        return self._call("void_pending", fence, apply, effect=True)

    def get_transfer(self, id: str, *, fence: Fence | None = None) -> Transfer | None:
        return self._call("get_transfer", fence, lambda: self.bank.get_transfer(id, fence=fence),
                          effect=False)

    def block_transfer(self, id: str, *, fence: Fence | None = None) -> Transfer | None:
        return self._call("block_transfer", fence,
                          lambda: self.bank.block_transfer(id, fence=fence), effect=True)

    def find_transfers(self, *, prefix: str | None = None, corrects: str | None = None,
                       pending_id: str | None = None, fence: Fence | None = None
                       ) -> list[Transfer]:
        return self._call("find_transfers", fence, lambda: self.bank.find_transfers(
            prefix=prefix, corrects=corrects, pending_id=pending_id, fence=fence), effect=False)


    # -- the rest of LedgerAPI (this pack's workflows do not use them) -----------------
    def create_account(self, id: str, currency: str, role: str = "customer", *,
                       debits_must_not_exceed_credits: bool = False,
                       fence: Fence | None = None) -> Account:
        return self._call("create_account", fence, lambda: self.bank.create_account(
            id, currency, role, debits_must_not_exceed_credits=debits_must_not_exceed_credits,
            fence=fence), effect=True)

    def get_accounts(self, ids: Sequence[str], *, fence: Fence | None = None) -> list[Account]:
        return self._call("get_accounts", fence,
                          lambda: self.bank.get_accounts(ids, fence=fence), effect=False)

    def create_linked(self, requests: Sequence[TransferRequest], *, fence: Fence | None = None
                      ) -> list[Transfer]:
        def apply() -> list[Transfer]:
            booked = self.bank.create_linked(requests, fence=fence)
            for transfer in booked:
                self.world.booked(transfer, fence)
            return booked

        return self._call("create_linked", fence, apply, effect=True)

    def post_pending(self, id: str, pending_id: str, amount: int | None = None, *,
                     fence: Fence | None = None) -> Transfer:
        return self._call("post_pending", fence, lambda: self.bank.post_pending(
            id, pending_id, amount, fence=fence), effect=True)

    def submit_payment(self, request: PaymentRequest, *, fence: Fence | None = None
                       ) -> Payment:
        return self._call("submit_payment", fence,
                          lambda: self.bank.submit_payment(request, fence=fence), effect=True)

    def get_payment(self, id: str, *, fence: Fence | None = None) -> Payment | None:
        return self._call("get_payment", fence, lambda: self.bank.get_payment(id, fence=fence),
                          effect=False)

    def block_payment(self, id: str, *, fence: Fence | None = None) -> Payment | None:
        return self._call("block_payment", fence,
                          lambda: self.bank.block_payment(id, fence=fence), effect=True)

    def find_payments(self, *, prefix: str, fence: Fence | None = None) -> list[Payment]:
        return self._call("find_payments", fence,
                          lambda: self.bank.find_payments(prefix=prefix, fence=fence),
                          effect=False)

    def cancel_payment(self, payment_id: str, *, fence: Fence | None = None) -> Payment:
        return self._call("cancel_payment", fence,
                          lambda: self.bank.cancel_payment(payment_id, fence=fence), effect=True)

    def return_payment(self, payment_id: str, return_id: str, *, fence: Fence | None = None
                       ) -> Payment:
        return self._call("return_payment", fence, lambda: self.bank.return_payment(
            payment_id, return_id, fence=fence), effect=True)

    def request_recall(self, recall_id: str, payment_id: str, reason: str, *,
                       fence: Fence | None = None) -> Recall:
        return self._call("request_recall", fence, lambda: self.bank.request_recall(
            recall_id, payment_id, reason, fence=fence), effect=True)

    def get_recall(self, id: str, *, fence: Fence | None = None) -> Recall | None:
        return self._call("get_recall", fence, lambda: self.bank.get_recall(id, fence=fence),
                          effect=False)

class PaymentsWorld:
    """One schedule's bank, and the sagas of the payments pack."""

    def __init__(self) -> None:
        self.bank = MockLedger(clock=_Epoch())
        for name in ACCOUNTS:
            self.bank.open_account(f"acct:{name}", "EUR", balance=1_000_000)
        self.log = Effects()
        self._seen: set[str] = set()

    def booked(self, transfer: Transfer, fence: Fence | None) -> None:
        """Count a transfer the bank booked (a replay of an id books nothing new)."""
        if transfer.id in self._seen:
            return
        self._seen.add(transfer.id)
        if transfer.kind == TransferKind.VOID and transfer.pending_id:
            self.log.undone[transfer.pending_id] += 1
        elif transfer.corrects:
            self.log.undone[transfer.corrects] += 1
        elif fence is not None:
            # The reference is "<workflow>/<step>" (the adapter's default).
            self.log.applied[transfer.id] = (fence.saga_id, transfer.reference.split("/")[-1])

    def registry(self) -> Registry:
        return _registry()

    def services_for(self, proc: Process, network: Network) -> Mapping[str, Any]:
        return {SERVICE: BankLink(self, proc, network)}

    def effects(self) -> Effects:
        return self.log

    def close_window(self, saga_id: str) -> None:
        # The bank closes nothing (a correction is always possible): the fault is a no-op.
        return None

    def saga(self, plan: SagaPlan) -> tuple[Saga, dict[str, Any]]:
        return _saga(plan.workflow, plan.decline, plan.option("on_crash", "compensate")), {
            "amount": "12.50"}


class PaymentsPack:
    """Holds and transfers on the simulated bank, through the payments adapter."""

    name = "payments"

    def workflows(self) -> dict[str, tuple[str, ...]]:
        return dict(WORKFLOWS)

    def world(self, seed: int) -> PaymentsWorld:
        return PaymentsWorld()


async def _paused_first(hook: str, ctx: StepContext, run: Callable[[], Awaitable[Any]]) -> Any:
    # The synchronous adapter cannot be suspended in the middle: the process's pause
    # point comes before the call.
    await ctx.service(SERVICE, BankLink).pause_point(f"{hook} of {ctx.saga_id}/{ctx.step}")
    return await run()


@functools.lru_cache(maxsize=1)
def _registry() -> Registry:
    reg = Registry()
    reg.register(Paced(LedgerHold(SERVICE), _paused_first))
    reg.register(Paced(LedgerTransfer(SERVICE), _paused_first))
    reg.add("snapshot", "pay.snapshot", _standing)

    def reconciled(ctx: Any) -> Check:
        baseline = ctx.checkpoint_state if ctx.checkpoint else ctx.pre_state
        now, before = (ctx.post_state or {}).get("standing"), (baseline or {}).get("standing")
        ok = now == before
        return Check(ok, "every booking undone" if ok else f"bookings still standing: {now}")

    reg.add("predicate", "pay.reconciled", reconciled)
    return reg


def _standing(ctx: Any) -> dict[str, list[str]]:
    # What the bank holds for this saga: steps whose booking stands (not voided or
    # corrected), read at the bank itself like an auditor's query.
    world = ctx.service(SERVICE, BankLink).world
    log = world.log
    return {"standing": sorted(step for key, (saga, step) in log.applied.items()
                               if saga == ctx.saga_id and log.standing(key))}


def _step(reg: Registry, name: str, op: str, debit: str, credit: str, decline: str | None,
          depends_on: Sequence[str] = ()) -> Any:
    # A declined step books to an account the bank does not have: it rejects it.
    params = {"debit": f"acct:{debit}",
              "credit": "acct:closed" if decline == name else f"acct:{credit}",
              "amount": "$input.amount", "currency": "EUR"}
    return reg.step(name, op, retry=STEP_RETRY, compensation_retry=UNDO_RETRY, params=params,
                    depends_on=tuple(depends_on))


@functools.lru_cache(maxsize=64)
def _saga(wf: str, decline: str | None, on_crash: str) -> Saga:
    reg = _registry()
    policy: dict[str, Any] = {"rollback_window_s": 120.0, "stall_after_s": 60.0,
                              "on_crash": OnCrash(on_crash), "snapshot": "pay.snapshot",
                              "predicate": "pay.reconciled"}
    hold = _step(reg, "hold", "payments.hold", "customer", "escrow", decline)
    fee = _step(reg, "fee", "payments.transfer", "customer", "fees", decline)
    pay = _step(reg, "pay", "payments.transfer", "escrow", "merchant", decline,
                depends_on=("hold",) if wf == "split" else ())
    if wf == "payout":
        return Saga.chain("pay-payout", [hold, fee, pay], **policy)
    share = _step(reg, "share", "payments.transfer", "escrow", "partner", decline,
                  depends_on=("hold",))
    # hold, then fee, pay and share as parallel branches (compensated in parallel).
    fee = _step(reg, "fee", "payments.transfer", "customer", "fees", decline,
                depends_on=("hold",))
    return Saga(workflow="pay-split", steps=[hold, fee, pay, share], **policy)


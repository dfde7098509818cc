"""Ledger operations: posted transfers, holds (two-phase) and posting a hold.

Each is a Reversa :class:`~reversa.Operation`: ``execute``, ``compensate``,
``probe`` ("did the transfer with this idempotency key happen?") and ``block``
(the same question, answered atomically with tombstoning the key at the ledger
when the answer is no). Transfer ids *are* idempotency keys, so a retried call or
a re-run after a crash is a replay that returns the first result. Every call
carries the saga's fencing token (``ctx.fence``), so a stale owner is refused.

Undoing follows the ledger's rules: a hold is voided; anything posted is
undone by a **correcting transfer** that references the original (never a
delete, never an edit). A correction covers only what is still uncorrected, so
two compensations touching the same original (posting a hold, then the hold
itself) cannot undo it twice.
"""

from __future__ import annotations

from typing import Any

from reversa.core.context import Check, Fence, Probe, StepContext

from ._boundary import ledger_boundary
from .ledger_api import LedgerAPI, PendingState, Transfer, TransferKind, TransferRequest
from .money import format_money, to_minor

__all__ = ["LedgerHold", "LedgerTransfer", "PostHold", "correct_remaining"]


def _amount(ctx: StepContext, currency: str) -> int:
    """Amount param in minor units (``amount`` in major units or ``amount_minor``)."""
    minor = ctx.param("amount_minor", None)
    if minor is not None:
        return int(minor)
    return to_minor(ctx.param("amount"), currency)


def _transfer_result(t: Transfer) -> dict[str, Any]:
    return {
        "transfer_id": t.id, "debit_account": t.debit_account,
        "credit_account": t.credit_account, "amount": t.amount, "currency": t.currency,
        "kind": t.kind, "state": t.state, "display": format_money(t.amount, t.currency),
    }


def correct_remaining(
    ledger: LedgerAPI, original: Transfer, correction_id: str, reason: str,
    *, fence: Fence | None = None,
) -> dict[str, Any]:
    """Book a correcting transfer for whatever of ``original`` is still uncorrected.

    Idempotent: a replay of ``correction_id`` returns the first correction, and
    an original that is already fully corrected yields ``nothing_to_undo``.
    Every ledger call carries ``fence``.
    """
    existing = ledger.get_transfer(correction_id, fence=fence)
    if existing is not None:
        return {"outcome": "corrected", "correction_id": existing.id, "amount": existing.amount,
                "corrects": original.id, "replayed": True}
    posted = original.amount
    if original.kind == TransferKind.PENDING:
        if original.state != PendingState.POSTED:
            return {"outcome": "nothing_to_undo", "reason": f"hold is {original.state}"}
        post = next(
            (t for t in ledger.find_transfers(pending_id=original.id, fence=fence)
             if t.kind == TransferKind.POST), None)
        posted = post.amount if post is not None else original.amount
    corrected = sum(t.amount for t in ledger.find_transfers(corrects=original.id, fence=fence))
    remaining = posted - corrected
    if remaining <= 0:
        return {"outcome": "nothing_to_undo", "reason": "already fully corrected",
                "corrects": original.id}
    correction = ledger.create_transfer(
        TransferRequest(
            id=correction_id, debit_account=original.credit_account,
            credit_account=original.debit_account, amount=remaining,
            currency=original.currency, code="correction",
            reference=f"correction of {original.id}: {reason}", corrects=original.id,
        ),
        fence=fence,
    )
    return {"outcome": "corrected", "correction_id": correction.id, "amount": correction.amount,
            "corrects": original.id, "display": format_money(remaining, original.currency)}


class _OnLedger:
    """What every ledger operation shares: its ledger service, probe and block.

    Args:
        ledger_service: Name of the :class:`LedgerAPI` service (default ``ledger``).
    """

    name = ""

    def __init__(self, ledger_service: str = "ledger") -> None:
        self.ledger_service = ledger_service

    def _ledger(self, ctx: StepContext) -> LedgerAPI:
        return ctx.service(self.ledger_service, LedgerAPI)

    def probe(self, ctx: StepContext) -> Probe | tuple[Probe, dict[str, Any]]:
        """Did the transfer with the action's key happen? (Errors reach the engine.)"""
        with ledger_boundary(f"probe {ctx.step!r}", effect=False):
            found = self._ledger(ctx).get_transfer(ctx.action_key, fence=ctx.fence)
        return Probe.NOT_HAPPENED if found is None else (Probe.HAPPENED, _transfer_result(found))

    def block(self, ctx: StepContext) -> Probe | tuple[Probe, dict[str, Any]]:
        """The transfer with the action's key happened, or it now never can (tombstoned)."""
        with ledger_boundary(f"block {ctx.step!r}", effect=True):
            found = self._ledger(ctx).block_transfer(ctx.action_key, fence=ctx.fence)
        return Probe.NOT_HAPPENED if found is None else (Probe.HAPPENED, _transfer_result(found))


class LedgerTransfer(_OnLedger):
    """A posted (single-phase) transfer; undone by a correcting transfer.

    Step params: ``debit``, ``credit``, ``amount`` (major units) or
    ``amount_minor``, ``currency``, optional ``code`` and ``reference``. Values
    may reference ``$input.<key>`` or ``$results.<step>.<key>``.
    """

    name = "payments.transfer"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Book the transfer under the step's idempotency key."""
        currency = str(ctx.param("currency")).upper()
        request = TransferRequest(
            id=ctx.idempotency_key, debit_account=str(ctx.param("debit")),
            credit_account=str(ctx.param("credit")), amount=_amount(ctx, currency),
            currency=currency, code=str(ctx.param("code", "transfer")),
            reference=str(ctx.param("reference", f"{ctx.workflow}/{ctx.step}")),
        )
        with ledger_boundary(f"transfer {ctx.step!r}", effect=True):
            booked = self._ledger(ctx).create_transfer(request, fence=ctx.fence)
        return _transfer_result(booked)

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Correct the original transfer (nothing booked: nothing to undo)."""
        ledger = self._ledger(ctx)
        with ledger_boundary(f"correct {ctx.step!r}", effect=True):
            original = ledger.get_transfer(ctx.action_key, fence=ctx.fence)
            if original is None:
                return {"outcome": "nothing_to_undo", "reason": "transfer was never booked"}
            return correct_remaining(ledger, original, ctx.idempotency_key, "saga rollback",
                                     fence=ctx.fence)

    def preconditions(self, ctx: StepContext) -> Check:
        """The credited account can give the money back (if it may not go negative)."""
        ledger = self._ledger(ctx)
        with ledger_boundary(f"check {ctx.step!r}", effect=False):
            original = ledger.get_transfer(ctx.action_key, fence=ctx.fence)
            if original is None:
                return Check(True, "nothing booked, nothing to correct")
            account = ledger.get_account(original.credit_account, fence=ctx.fence)
        if account.debits_must_not_exceed_credits and account.available < original.amount:
            return Check(
                False,
                f"{account.id} holds {format_money(account.available, account.currency)}, "
                f"less than the {format_money(original.amount, original.currency)} to return",
                {"available": account.available, "needed": original.amount},
            )
        needed = format_money(original.amount, original.currency)
        return Check(True, f"{account.id} can return {needed}")


class LedgerHold(LedgerTransfer):
    """A two-phase debit: a pending transfer (hold) that reserves funds.

    Extra step param: ``timeout_s`` (the ledger voids the hold by itself after
    it). Compensation voids the hold; if a later step posted it, the posted
    amount is corrected instead (whatever is not corrected yet).
    """

    name = "payments.hold"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Place the hold under the step's idempotency key."""
        currency = str(ctx.param("currency")).upper()
        timeout = ctx.param("timeout_s", None)
        request = TransferRequest(
            id=ctx.idempotency_key, debit_account=str(ctx.param("debit")),
            credit_account=str(ctx.param("credit")), amount=_amount(ctx, currency),
            currency=currency, code=str(ctx.param("code", "hold")),
            reference=str(ctx.param("reference", f"{ctx.workflow}/{ctx.step}")), pending=True,
            timeout_s=None if timeout is None else float(timeout),
        )
        with ledger_boundary(f"hold {ctx.step!r}", effect=True):
            booked = self._ledger(ctx).create_transfer(request, fence=ctx.fence)
        return _transfer_result(booked)

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Void the hold, or correct it if it was posted."""
        ledger, fence = self._ledger(ctx), ctx.fence
        key = ctx.action_key
        with ledger_boundary(f"release hold {ctx.step!r}", effect=True):
            hold = ledger.get_transfer(key, fence=fence)
            if hold is None:
                return {"outcome": "nothing_to_undo", "reason": "hold was never placed"}
            if hold.state == PendingState.PENDING:
                void = ledger.void_pending(ctx.idempotency_key, key, fence=fence)
                return {"outcome": "voided", "void_id": void.id, "hold_id": key}
            voided = ledger.get_transfer(ctx.idempotency_key, fence=fence)
            if voided is not None and voided.kind == TransferKind.VOID:
                return {"outcome": "voided", "void_id": voided.id, "hold_id": key,
                        "replayed": True}
            if hold.state == PendingState.POSTED:
                return correct_remaining(ledger, hold, ctx.idempotency_key, "saga rollback",
                                         fence=fence)
            return {"outcome": "nothing_to_undo", "reason": f"hold is {hold.state}"}

    def preconditions(self, ctx: StepContext) -> Check:
        """A pending hold can always be voided; a posted one needs the funds to return."""
        with ledger_boundary(f"check {ctx.step!r}", effect=False):
            hold = self._ledger(ctx).get_transfer(ctx.action_key, fence=ctx.fence)
        if hold is None or hold.state != PendingState.POSTED:
            state = "never placed" if hold is None else hold.state
            return Check(True, f"hold {state}: voiding it (or nothing) always succeeds")
        return super().preconditions(ctx)


class PostHold(_OnLedger):
    """Post (capture) a hold placed by an earlier step; undone by a correction.

    Step params: ``hold`` (the hold's transfer id, e.g.
    ``"$results.debit.transfer_id"``: the step must depend on the one that
    placed it), optional ``amount``/``amount_minor`` to post less than the hold.
    """

    name = "payments.post_hold"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Post the hold under this step's idempotency key."""
        hold_id = str(ctx.param("hold"))
        ledger = self._ledger(ctx)
        with ledger_boundary(f"post hold {hold_id!r}", effect=True):
            hold = ledger.get_transfer(hold_id, fence=ctx.fence)
            amount = None
            if hold is not None and ("amount" in ctx.params or "amount_minor" in ctx.params):
                amount = _amount(ctx, hold.currency)
            posted = ledger.post_pending(ctx.idempotency_key, hold_id, amount, fence=ctx.fence)
        return {**_transfer_result(posted), "hold_id": hold_id}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Correct the posted amount; corrections reference the hold itself."""
        ledger = self._ledger(ctx)
        with ledger_boundary(f"correct posting {ctx.step!r}", effect=True):
            posted = ledger.get_transfer(ctx.action_key, fence=ctx.fence)
            if posted is None:
                return {"outcome": "nothing_to_undo", "reason": "the hold was never posted"}
            hold = ledger.get_transfer(posted.pending_id or "", fence=ctx.fence)
            if hold is None:  # pragma: no cover - a post always references its hold
                return {"outcome": "nothing_to_undo", "reason": "hold not found"}
            return correct_remaining(ledger, hold, ctx.idempotency_key, "saga rollback",
                                     fence=ctx.fence)

"""Payments on rails, classed in the plan by the rail's settlement finality.

:func:`payment_step` builds the :class:`~reversa.Step` for a payment from its
rail (see :mod:`reversa.adapters.payments.rails`):

- a rail that is **final on execution** (CHAPS, Fedwire, TARGET2, SEPA Instant)
  makes the step ``IRREVERSIBLE``: no compensation is declared, and the plan is
  refused unless the step has ``forward_recovery`` or ``escalation``;
- a rail that is final only **after settlement** (SWIFT MT103) makes it
  ``PARTIALLY_REVERSIBLE``: cancelled before settlement, recalled (camt.056,
  which the beneficiary bank may refuse) after;
- a rail we can always undo (internal book, card) makes it ``REVERSIBLE``.

The compensation reads the payment by the action's idempotency key and does
what its state allows: nothing (never submitted, rejected, already cancelled or
returned), cancel (accepted, unsettled, cancellable), return (settled on a
non-final rail) or recall (settled on a final rail). A refused recall fails the
compensation, which escalates the saga to a human.
"""

from __future__ import annotations

from typing import Any

from reversa.core.context import Check, Probe, StepContext, key_prefix
from reversa.core.errors import PermanentError, PlanError, TransientError
from reversa.core.model import CompensationKind, Escalation, Reversibility, Step
from reversa.core.registry import Registry

from ._boundary import ledger_boundary
from .ledger_api import LedgerAPI, Payment, PaymentRequest, PaymentStatus, RecallStatus
from .money import format_money, to_minor
from .rails import AfterFinality, Rail, RailSpec, rail_spec

__all__ = ["CancelInFlightPayments", "RailPayment", "payment_step"]

_DONE = {PaymentStatus.CANCELLED.value, PaymentStatus.RETURNED.value}


def _payment_result(p: Payment) -> dict[str, Any]:
    return {
        "payment_id": p.id, "rail": p.rail, "status": p.status,
        "debit_account": p.debit_account, "amount": p.amount, "currency": p.currency,
        "beneficiary": p.beneficiary, "settles_at": p.settles_at,
        "display": f"{format_money(p.amount, p.currency)} via {p.rail} to {p.beneficiary}",
    }


class RailPayment:
    """Submit a payment on a rail. Build its step with :func:`payment_step`.

    Step params: ``rail``, ``debit_account``, ``amount`` (major) or
    ``amount_minor``, ``currency``, ``beneficiary``; optional ``reference``,
    ``recall_reason`` (ISO reason sent with a recall, default ``"CUST"``:
    requested by the customer) and ``allow_recall`` (default True; False makes a
    settled final payment an infeasible rollback in the dry-run).

    Args:
        ledger_service: Name of the :class:`LedgerAPI` service (default ``ledger``).
    """

    name = "payments.pay"

    def __init__(self, ledger_service: str = "ledger") -> None:
        self.ledger_service = ledger_service

    def _ledger(self, ctx: StepContext) -> LedgerAPI:
        return ctx.service(self.ledger_service, LedgerAPI)

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Submit the payment under the step's idempotency key."""
        currency = str(ctx.param("currency")).upper()
        minor = ctx.param("amount_minor", None)
        request = PaymentRequest(
            id=ctx.idempotency_key, rail=str(ctx.param("rail")),
            debit_account=str(ctx.param("debit_account")),
            amount=int(minor) if minor is not None else to_minor(ctx.param("amount"), currency),
            currency=currency, beneficiary=str(ctx.param("beneficiary")),
            reference=str(ctx.param("reference", f"{ctx.workflow}/{ctx.step}")),
        )
        with ledger_boundary(f"pay {request.rail} ({ctx.step!r})", effect=True):
            payment = self._ledger(ctx).submit_payment(request, fence=ctx.fence)
        return _payment_result(payment)

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Cancel, return or recall the payment, as its state and rail allow."""
        ledger, fence = self._ledger(ctx), ctx.fence
        key = ctx.action_key
        with ledger_boundary(f"undo payment {ctx.step!r}", effect=True):
            pay = ledger.get_payment(key, fence=fence)
            if pay is None or pay.status == PaymentStatus.REJECTED:
                why = "never submitted" if pay is None else f"rejected ({pay.rejection_code})"
                return {"outcome": "nothing_to_undo", "reason": f"payment {why}"}
            if pay.status in _DONE:
                recall = ledger.get_recall(ctx.idempotency_key, fence=fence)
                if recall is not None and recall.status == RecallStatus.ACCEPTED:
                    # Our own recall, answered since the last attempt asked.
                    return {"outcome": "recalled", "payment_id": key, "recall_id": recall.id,
                            "return_transfer_id": recall.return_transfer_id}
                return {"outcome": f"already_{pay.status}", "payment_id": key}
            spec = rail_spec(pay.rail)
            if pay.status == PaymentStatus.ACCEPTED and spec.cancellable_before_settlement:
                cancelled = ledger.cancel_payment(key, fence=fence)
                return {"outcome": "cancelled", "payment_id": key, "status": cancelled.status}
            if spec.after_finality is not AfterFinality.RECALL:
                returned = ledger.return_payment(key, ctx.idempotency_key, fence=fence)
                return {"outcome": "returned", "payment_id": key,
                        "return_transfer_id": returned.return_transfer_id}
            reason = str(ctx.param("recall_reason", "CUST"))
            recall = ledger.request_recall(ctx.idempotency_key, key, reason, fence=fence)
        if recall.status == RecallStatus.ACCEPTED:
            return {"outcome": "recalled", "payment_id": key, "recall_id": recall.id,
                    "return_transfer_id": recall.return_transfer_id}
        if recall.status == RecallStatus.REQUESTED:
            raise TransientError(
                f"recall {recall.id} of payment {key} awaits the beneficiary bank's answer",
                code="recall_pending",
            )
        raise PermanentError(
            f"the beneficiary bank refused recall {recall.id} of payment {key} "
            f"(reason {recall.rejection_reason}); the funds stay with {pay.beneficiary}",
            code="recall_rejected",
        )

    def probe(self, ctx: StepContext) -> Probe | tuple[Probe, dict[str, Any]]:
        """Did a payment with this key reach the rail (rejections count as not)?"""
        with ledger_boundary(f"probe payment {ctx.step!r}", effect=False):
            pay = self._ledger(ctx).get_payment(ctx.action_key, fence=ctx.fence)
        return _verdict(pay)

    def block(self, ctx: StepContext) -> Probe | tuple[Probe, dict[str, Any]]:
        """The payment reached the rail, or its key is now tombstoned at the ledger.

        A rejected payment never moved money, and a replay of its key is refused
        as rejected, so it counts as blocked.
        """
        with ledger_boundary(f"block payment {ctx.step!r}", effect=True):
            pay = self._ledger(ctx).block_payment(ctx.action_key, fence=ctx.fence)
        return _verdict(pay)

    def preconditions(self, ctx: StepContext) -> Check:
        """Report how the payment would be undone; refuse only what cannot be asked for."""
        with ledger_boundary(f"check payment {ctx.step!r}", effect=False):
            pay = self._ledger(ctx).get_payment(ctx.action_key, fence=ctx.fence)
        if pay is None or pay.status in _DONE or pay.status == PaymentStatus.REJECTED:
            return Check(True, "nothing in flight to undo")
        spec = rail_spec(pay.rail)
        if pay.status == PaymentStatus.ACCEPTED and spec.cancellable_before_settlement:
            return Check(True, f"not settled on {pay.rail}: cancellable")
        if spec.after_finality is not AfterFinality.RECALL:
            return Check(True, f"settled on {pay.rail}: returned by {spec.after_finality}")
        if not bool(ctx.param("allow_recall", True)):
            return Check(False, f"final on {pay.rail} and recalls are not allowed by the plan")
        return Check(True, f"final on {pay.rail}: needs a recall the beneficiary bank may refuse")


def _verdict(pay: Payment | None) -> Probe | tuple[Probe, dict[str, Any]]:
    if pay is None or pay.status == PaymentStatus.REJECTED:
        return Probe.NOT_HAPPENED
    return Probe.HAPPENED, _payment_result(pay)


def payment_step(
    registry: Registry,
    name: str,
    *,
    rail: Rail | str,
    operation: str = RailPayment.name,
    rails: dict[Rail, RailSpec] | None = None,
    escalation: Escalation | None = None,
    forward_recovery: str | None = None,
    params: dict[str, Any] | None = None,
    **fields: Any,
) -> Step:
    """Build the step of a payment on ``rail``, classed by the rail's finality.

    Args:
        registry: Where ``operation`` is registered (``registry.register(RailPayment())``).
        name: Step name.
        rail: The rail the payment goes over.
        operation: Registered name of the payment operation.
        rails: Rail table (default :data:`~reversa.adapters.payments.rails.DEFAULT_RAILS`).
        escalation: Escalation policy (required for a rail final on execution,
            unless ``forward_recovery`` is given).
        forward_recovery: Registered action completing the workflow another way.
        params: Step params (``debit_account``, ``amount``, ``currency``,
            ``beneficiary``...); ``rail`` and the rail's finality are added.
        **fields: Other :class:`~reversa.Step` fields (``depends_on``, ``retry``...).

    Raises:
        PlanError: The rail is unknown, or is final on execution and the step
            has neither ``escalation`` nor ``forward_recovery``.
    """
    spec = rail_spec(rail, rails)
    reversibility = spec.reversibility
    step_params = {**(params or {}), "rail": str(spec.rail), "finality": spec.to_dict()}
    wired: dict[str, Any] = {"reversibility": reversibility, "params": step_params, **fields}
    if escalation is not None:
        wired["escalation"] = escalation
    if forward_recovery is not None:
        wired["forward_recovery"] = forward_recovery
    if reversibility is Reversibility.IRREVERSIBLE:
        if escalation is None and forward_recovery is None:
            raise PlanError(
                f"step {name!r} pays on {spec.rail}, which is final on execution: only a "
                "recall the beneficiary bank may refuse can undo it. Pass "
                "escalation=Escalation(reason=...) or forward_recovery='<action>' (AG-384 4.7)"
            )
        # Validation forbids a compensation on an irreversible step; the probe
        # and precondition wired by registry.step stay useful to a human.
        wired["compensation"] = None
        wired["preconditions"] = ()
    elif spec.after_finality is not AfterFinality.CORRECTION:
        wired.setdefault("compensation_kind", CompensationKind.SEMANTIC)
    return registry.step(name, operation, **wired)


class CancelInFlightPayments:
    """Safe-state action: stop money leaving; cancel this saga's unsettled payments.

    Run by the engine (``Saga(safe_state=...)``) when the dry-run finds the full
    rollback infeasible, before a human takes over: nothing else is undone, so
    the human sees the positions as they were, with no payment still in flight.
    Register with ``registry.add(HandlerKind.ACTION, name, CancelInFlightPayments())``.

    Args:
        ledger_service: Name of the :class:`LedgerAPI` service (default ``ledger``).
    """

    name = "payments.cancel_in_flight"

    def __init__(self, ledger_service: str = "ledger") -> None:
        self.ledger_service = ledger_service

    def __call__(self, ctx: StepContext) -> dict[str, Any]:
        """Cancel every accepted, cancellable payment whose key belongs to this saga."""
        ledger, fence = ctx.service(self.ledger_service, LedgerAPI), ctx.fence
        cancelled, irrevocable = [], []
        with ledger_boundary("safe state: cancel in-flight payments", effect=True):
            for pay in ledger.find_payments(prefix=key_prefix(ctx.saga_id), fence=fence):
                if pay.status != PaymentStatus.ACCEPTED:
                    continue
                if rail_spec(pay.rail).cancellable_before_settlement:
                    ledger.cancel_payment(pay.id, fence=fence)
                    cancelled.append(pay.id)
                else:
                    irrevocable.append(pay.id)
        return {"cancelled": cancelled, "irrevocable_in_flight": irrevocable}

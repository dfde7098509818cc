"""Operations on the non-ledger participants of AG-166 scenario A (and notices).

Warehouse reservation, ERP purchase order, the logistics partner's pre-step
webhook (capacity planning notice) and shipment confirmation, and customer
notices. A webhook cannot be unsent, so its compensation is *semantic*: a
cancellation webhook (AG-166 4.9). The service is ``ctx.services["counterparties"]``
(any object with the methods of
:class:`~reversa.simulators.counterparties.Counterparties`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from reversa.core.context import Probe, StepContext
from reversa.core.errors import OutcomeUnknown, PermanentError, TransientError

from ._boundary import action_key, param, service

__all__ = [
    "ConfirmShipment",
    "CreatePurchaseOrder",
    "NotifyLogistics",
    "ReserveStock",
    "SendNotice",
]


def _world(ctx: StepContext) -> Any:
    return service(ctx, str(ctx.params.get("counterparties_service", "counterparties")))


@contextmanager
def _boundary(what: str) -> Iterator[None]:
    """Counterparty errors -> Reversa errors (matched by class name: no vendor import)."""
    try:
        yield
    except Exception as exc:
        kind = type(exc).__name__
        message = f"{what}: {getattr(exc, 'message', str(exc))}"
        code = str(getattr(exc, "code", "error"))
        if kind == "CounterpartyTimeout":
            raise OutcomeUnknown(message, code="timeout") from exc
        if kind == "CounterpartyRejected":
            raise PermanentError(message, code=code) from exc
        if kind == "CounterpartyError":
            raise TransientError(message, code=code) from exc
        raise


def _probe(ctx: StepContext) -> Probe:
    try:
        return Probe.HAPPENED if _world(ctx).seen(action_key(ctx)) else Probe.NOT_HAPPENED
    except Exception:
        return Probe.UNKNOWN


class ReserveStock:
    """Reserve stock. Params: ``sku``, ``qty``. Undone by releasing the reservation."""

    name = "procurement.reserve"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Reserve under the step's key."""
        with _boundary(f"reserve ({ctx.step!r})"):
            out = _world(ctx).reserve(ctx.idempotency_key, str(param(ctx, "sku")),
                                      int(param(ctx, "qty")))
        return {"key": ctx.idempotency_key, **out}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Release it (never reserved: nothing to release)."""
        with _boundary(f"release ({ctx.step!r})"):
            out = _world(ctx).release(ctx.idempotency_key, action_key(ctx))
        return dict(out)

    def probe(self, ctx: StepContext) -> Probe:
        """Was the reservation with this key made?"""
        return _probe(ctx)


class CreatePurchaseOrder:
    """Create a PO. Params: ``supplier``, ``sku``, ``qty``, ``amount``. Undone by cancelling."""

    name = "procurement.create_po"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Create the PO under the step's key."""
        with _boundary(f"create PO ({ctx.step!r})"):
            out = _world(ctx).create_po(
                ctx.idempotency_key, str(param(ctx, "supplier")), str(param(ctx, "sku")),
                int(param(ctx, "qty")), str(param(ctx, "amount")),
            )
        return {"key": ctx.idempotency_key, **out}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Cancel the PO created with the action's key (none: nothing to cancel)."""
        world = _world(ctx)
        po = world.po_for(action_key(ctx))
        if po is None:
            return {"cancelled": False, "reason": "no PO was created"}
        with _boundary(f"cancel PO ({ctx.step!r})"):
            return dict(world.cancel_po(ctx.idempotency_key, po))

    def probe(self, ctx: StepContext) -> Probe:
        """Was a PO created with this key?"""
        return _probe(ctx)


class NotifyLogistics:
    """Pre-step webhook to the logistics partner. Params: ``po`` (e.g.
    ``$results.create_po.po``), ``qty``. Semantic compensation: a cancellation webhook."""

    name = "procurement.notify_logistics"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Send the capacity-planning webhook."""
        with _boundary(f"notify logistics ({ctx.step!r})"):
            out = _world(ctx).notify(ctx.idempotency_key, str(param(ctx, "po")),
                                     int(param(ctx, "qty")))
        return {"key": ctx.idempotency_key, **out}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Send the cancellation webhook."""
        with _boundary(f"cancel logistics notice ({ctx.step!r})"):
            return dict(_world(ctx).cancel_notice(ctx.idempotency_key, action_key(ctx)))

    def probe(self, ctx: StepContext) -> Probe:
        """Was the webhook with this key delivered?"""
        return _probe(ctx)


class ConfirmShipment:
    """Send the shipment confirmation. Param: ``po``. Semantic compensation: a cancellation."""

    name = "procurement.confirm_shipment"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Send the confirmation."""
        with _boundary(f"confirm shipment ({ctx.step!r})"):
            out = _world(ctx).confirm_shipment(ctx.idempotency_key, str(param(ctx, "po")))
        return {"key": ctx.idempotency_key, **out}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Send a shipment cancellation (only if a confirmation went out)."""
        world = _world(ctx)
        if not world.seen(action_key(ctx)):
            return {"cancelled": False, "reason": "no confirmation was sent"}
        with _boundary(f"cancel shipment ({ctx.step!r})"):
            return dict(world.cancel_shipment(ctx.idempotency_key, str(param(ctx, "po"))))

    def probe(self, ctx: StepContext) -> Probe:
        """Was the confirmation with this key sent?"""
        return _probe(ctx)


class SendNotice:
    """Send a customer notice. Params: ``to``, ``text``. Semantic compensation: a correction."""

    name = "payments.notify_customer"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Send the confirmation notice."""
        with _boundary(f"notify ({ctx.step!r})"):
            out = _world(ctx).send(ctx.idempotency_key, str(param(ctx, "to")), "confirmation",
                                   str(param(ctx, "text")))
        return {"key": ctx.idempotency_key, **out}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Send a correction notice (only if the confirmation went out)."""
        world = _world(ctx)
        if not world.seen(action_key(ctx)):
            return {"sent": False, "reason": "no confirmation was sent"}
        with _boundary(f"correct notice ({ctx.step!r})"):
            out = world.send(ctx.idempotency_key, str(param(ctx, "to")), "correction",
                             "Please disregard our confirmation: the payment was reversed.")
        return dict(out)

    def probe(self, ctx: StepContext) -> Probe:
        """Was the notice with this key sent?"""
        return _probe(ctx)

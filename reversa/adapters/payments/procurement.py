"""Operations on the non-ledger participants of AG-166 scenario A (and notices).

Warehouse reservation, ERP purchase order, the logistics partner's pre-step
webhook (capacity planning notice) and shipment confirmation, and customer
notices. A webhook cannot be unsent, so its compensation is *semantic*: a
cancellation webhook (AG-166 4.9). The service (``counterparties`` unless the
operation is built with another name) is any object with the methods of
:class:`~reversa.simulators.counterparties.Counterparties`; every call carries
the saga's fencing token, and ``block`` tombstones the action's key there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from reversa.core.context import Probe, StepContext
from reversa.core.errors import Fenced, OutcomeUnknown, PermanentError, TransientError

__all__ = [
    "ConfirmShipment",
    "CreatePurchaseOrder",
    "NotifyLogistics",
    "ReserveStock",
    "SendNotice",
]


@contextmanager
def _boundary(what: str) -> Iterator[None]:
    """Counterparty errors -> Reversa errors (matched by class name: no vendor import)."""
    try:
        yield
    except Exception as exc:
        kind = type(exc).__name__
        message = f"{what}: {getattr(exc, 'message', str(exc))}"
        code = str(getattr(exc, "code", "error"))
        if kind == "CounterpartyFenced":
            raise Fenced(message, code=code) from exc
        if kind == "CounterpartyTimeout":
            raise OutcomeUnknown(message, code="timeout") from exc
        if kind == "CounterpartyRejected":
            raise PermanentError(message, code=code) from exc
        if kind == "CounterpartyError":
            raise TransientError(message, code=code) from exc
        raise


class _WithCounterparties:
    """Shared by the operations below: the service, and probe-and-block by the action's key.

    Args:
        counterparties_service: Name of the service (default ``counterparties``).
    """

    name = ""

    def __init__(self, counterparties_service: str = "counterparties") -> None:
        self.counterparties_service = counterparties_service

    def _world(self, ctx: StepContext) -> Any:
        # Duck-typed (any object with Counterparties' methods): the adapter imports
        # no simulator, and the stories' counterparties have no protocol of their own.
        return ctx.service(self.counterparties_service, object)

    def probe(self, ctx: StepContext) -> Probe:
        """Was the effect with the action's key applied? (Errors reach the engine.)"""
        with _boundary(f"probe {ctx.step!r}"):
            seen = self._world(ctx).seen(ctx.action_key, fence=ctx.fence)
        return Probe.HAPPENED if seen else Probe.NOT_HAPPENED

    def block(self, ctx: StepContext) -> Probe:
        """It was applied, or the action's key is now tombstoned at the counterparty."""
        with _boundary(f"block {ctx.step!r}"):
            seen = self._world(ctx).block(ctx.action_key, fence=ctx.fence)
        return Probe.HAPPENED if seen else Probe.NOT_HAPPENED


class ReserveStock(_WithCounterparties):
    """Reserve stock. Params: ``sku``, ``qty``. Undone by releasing the reservation."""

    name = "procurement.reserve"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Reserve under the step's key."""
        with _boundary(f"reserve ({ctx.step!r})"):
            return dict(self._world(ctx).reserve(
                ctx.idempotency_key, str(ctx.param("sku")), int(ctx.param("qty")),
                fence=ctx.fence))

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Release it (never reserved: nothing to release)."""
        with _boundary(f"release ({ctx.step!r})"):
            return dict(self._world(ctx).release(ctx.idempotency_key, ctx.action_key,
                                                 fence=ctx.fence))


class CreatePurchaseOrder(_WithCounterparties):
    """Create a PO. Params: ``supplier``, ``sku``, ``qty``, ``amount``. Undone by cancelling."""

    name = "procurement.create_po"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Create the PO under the step's key."""
        with _boundary(f"create PO ({ctx.step!r})"):
            return dict(self._world(ctx).create_po(
                ctx.idempotency_key, str(ctx.param("supplier")), str(ctx.param("sku")),
                int(ctx.param("qty")), str(ctx.param("amount")), fence=ctx.fence))

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Cancel the PO created with the action's key (none: nothing to cancel)."""
        world = self._world(ctx)
        with _boundary(f"cancel PO ({ctx.step!r})"):
            po = world.po_for(ctx.action_key, fence=ctx.fence)
            if po is None:
                return {"cancelled": False, "reason": "no PO was created"}
            return dict(world.cancel_po(ctx.idempotency_key, po, fence=ctx.fence))


class NotifyLogistics(_WithCounterparties):
    """Pre-step webhook to the logistics partner. Params: ``po`` (e.g.
    ``$results.create_po.po``), ``qty``. Semantic compensation: a cancellation webhook."""

    name = "procurement.notify_logistics"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Send the capacity-planning webhook."""
        with _boundary(f"notify logistics ({ctx.step!r})"):
            return dict(self._world(ctx).notify(
                ctx.idempotency_key, str(ctx.param("po")), int(ctx.param("qty")),
                fence=ctx.fence))

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Send the cancellation webhook."""
        with _boundary(f"cancel logistics notice ({ctx.step!r})"):
            return dict(self._world(ctx).cancel_notice(ctx.idempotency_key, ctx.action_key,
                                                       fence=ctx.fence))


class ConfirmShipment(_WithCounterparties):
    """Send the shipment confirmation. Param: ``po``. Semantic compensation: a cancellation."""

    name = "procurement.confirm_shipment"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Send the confirmation."""
        with _boundary(f"confirm shipment ({ctx.step!r})"):
            return dict(self._world(ctx).confirm_shipment(
                ctx.idempotency_key, str(ctx.param("po")), fence=ctx.fence))

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Send a shipment cancellation (only if a confirmation went out)."""
        world = self._world(ctx)
        with _boundary(f"cancel shipment ({ctx.step!r})"):
            if not world.seen(ctx.action_key, fence=ctx.fence):
                return {"cancelled": False, "reason": "no confirmation was sent"}
            return dict(world.cancel_shipment(ctx.idempotency_key, str(ctx.param("po")),
                                              fence=ctx.fence))


class SendNotice(_WithCounterparties):
    """Send a customer notice. Params: ``to``, ``text``. Semantic compensation: a correction."""

    name = "payments.notify_customer"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Send the confirmation notice."""
        with _boundary(f"notify ({ctx.step!r})"):
            return dict(self._world(ctx).send(
                ctx.idempotency_key, str(ctx.param("to")), "confirmation",
                str(ctx.param("text")), fence=ctx.fence))

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Send a correction notice (only if the confirmation went out)."""
        world = self._world(ctx)
        with _boundary(f"correct notice ({ctx.step!r})"):
            if not world.seen(ctx.action_key, fence=ctx.fence):
                return {"sent": False, "reason": "no confirmation was sent"}
            return dict(world.send(
                ctx.idempotency_key, str(ctx.param("to")), "correction",
                "Please disregard our confirmation: the payment was reversed.",
                fence=ctx.fence))

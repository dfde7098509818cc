"""Register every payments operation under its conventional name."""

from __future__ import annotations

from reversa.core.registry import HandlerKind, Registry

from .fx_ops import FxConvert
from .ledger_ops import LedgerHold, LedgerTransfer, PostHold
from .payment_ops import CancelInFlightPayments, RailPayment
from .procurement import (
    ConfirmShipment,
    CreatePurchaseOrder,
    NotifyLogistics,
    ReserveStock,
    SendNotice,
)

__all__ = ["payments_registry"]


def payments_registry(registry: Registry | None = None) -> Registry:
    """Register the payments operations (into ``registry``, or a new one).

    Operations (action name; compensation is ``<name>:compensate``, probe
    ``<name>:probe``, block ``<name>:block``...): ``payments.transfer``, ``payments.hold``,
    ``payments.post_hold``, ``payments.fx_convert``, ``payments.pay``,
    ``payments.notify_customer``, ``procurement.reserve``,
    ``procurement.create_po``, ``procurement.notify_logistics``,
    ``procurement.confirm_shipment``; safe-state action
    ``payments.cancel_in_flight``.
    """
    reg = registry if registry is not None else Registry()
    for op in (
        LedgerTransfer(), LedgerHold(), PostHold(), FxConvert(), RailPayment(), SendNotice(),
        ReserveStock(), CreatePurchaseOrder(), NotifyLogistics(), ConfirmShipment(),
    ):
        reg.register(op)
    reg.add(HandlerKind.ACTION, CancelInFlightPayments.name, CancelInFlightPayments())
    return reg

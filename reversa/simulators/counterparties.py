"""Non-ledger participants of the payments stories: warehouse, ERP, logistics, notices.

Each deduplicates by idempotency key (a replay returns the first result) and
shares one :class:`~reversa.simulators.ledger.faults.FaultPlan`, with operations
named ``reserve``, ``release``, ``create_po``, ``cancel_po``, ``notify``,
``cancel_notice``, ``confirm_shipment``, ``cancel_shipment``, ``send``.
Errors are this module's own (:class:`CounterpartyError` and subclasses); the
adapter translates them at its boundary.

Every call takes the caller's fencing token (``fence=``) and keeps the effect
boundary (:mod:`reversa.simulators.boundary`): a stale epoch or a key that
:meth:`Counterparties.block` tombstoned is refused with
:class:`CounterpartyFenced`, and what landed is counted per key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reversa.core.context import Fence
from reversa.core.errors import Fenced

from .boundary import EffectBoundary
from .ledger.faults import FaultKind, FaultPlan

__all__ = [
    "CounterpartyError",
    "CounterpartyFenced",
    "CounterpartyRejected",
    "CounterpartyTimeout",
    "Counterparties",
]

T = TypeVar("T")


class CounterpartyError(Exception):
    """A counterparty refused or failed a call."""

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class CounterpartyTimeout(CounterpartyError):
    """No reply in time; the effect may have happened."""


class CounterpartyRejected(CounterpartyError):
    """A definite refusal; nothing happened."""


class CounterpartyFenced(CounterpartyError):
    """Refused at the effect boundary (stale fencing token or blocked key); nothing happened."""


@dataclass
class Counterparties:
    """Warehouse stock, ERP purchase orders, logistics bookings and an outbox.

    Attributes:
        stock: ``{sku: {"on_hand": n, "reserved": n}}``.
        reservations: By idempotency key.
        orders: Purchase orders by PO number.
        bookings: Logistics capacity bookings by idempotency key.
        webhooks: Every webhook the logistics partner received, in order.
        outbox: Every notice sent to customers, in order.
        effects: How many times each key's effect was applied (always 1).
        boundary: Fencing tokens, tombstones and per-key counters.
    """

    stock: dict[str, dict[str, int]] = field(default_factory=dict)
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    bookings: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    effects: dict[str, int] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    boundary: EffectBoundary = field(default_factory=EffectBoundary)
    _seen: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- call wrapper -----------------------------------------------------------------
    def _call(self, op: str, key: str, request: Mapping[str, Any], effect: Callable[[], T],
              fence: Fence | None) -> T:
        self.boundary.note(op, fence)
        with self.boundary.in_flight([key]):
            fault = self.faults.take(op, {"key": key, **request})
            if fault is not None and fault.kind is FaultKind.REJECT:
                raise CounterpartyRejected(f"{op} rejected ({fault.code})", fault.code)
            if fault is not None and fault.latency_s:
                self.faults.sleep(fault.latency_s)
            if fault is None or fault.kind is FaultKind.LATENCY or fault.applied:
                with self._lock:
                    try:
                        self.boundary.admit(op, fence, [key])
                    except Fenced as exc:
                        raise CounterpartyFenced(exc.message, exc.code) from None
                    if key not in self._seen:
                        self._seen[key] = effect()
                        self.effects[key] = self.effects.get(key, 0) + 1
                        self.boundary.count_landed([key])
                    result = self._seen[key]
                if fault is None or fault.kind is FaultKind.LATENCY:
                    return result  # type: ignore[no-any-return]
            raise CounterpartyTimeout(f"{op} timed out")

    def seen(self, key: str, *, fence: Fence | None = None) -> bool:
        """Whether an effect with this key was applied (for probes)."""
        with self._lock:
            self._admit_read("seen", fence)
            return key in self._seen

    def block(self, key: str, *, fence: Fence | None = None) -> bool:
        """Atomically: True if the effect with ``key`` was applied, else tombstone
        ``key`` (no effect may ever be applied under it) and return False."""
        with self._lock:
            self._admit_read("block", fence)
            if key in self._seen:
                return True
            self.boundary.tombstone(key, fence)
            return False

    def _admit_read(self, op: str, fence: Fence | None) -> None:
        self.boundary.note(op, fence)
        try:
            self.boundary.admit(op, fence)
        except Fenced as exc:
            raise CounterpartyFenced(exc.message, exc.code) from None

    # -- warehouse --------------------------------------------------------------------
    def reserve(
        self, key: str, sku: str, qty: int, *, fence: Fence | None = None
    ) -> dict[str, Any]:
        """Reserve ``qty`` of ``sku``; refuses when not enough is free."""

        def effect() -> dict[str, Any]:
            item = self.stock.get(sku)
            if item is None or item["on_hand"] - item["reserved"] < qty:
                raise CounterpartyRejected(f"not enough {sku} free to reserve {qty}", "no_stock")
            item["reserved"] += qty
            self.reservations[key] = {"sku": sku, "qty": qty, "active": True}
            return {"reservation": key, "sku": sku, "qty": qty}

        return self._call("reserve", key, {"sku": sku, "qty": qty}, effect, fence)

    def release(self, key: str, reservation: str, *, fence: Fence | None = None) -> dict[str, Any]:
        """Release a reservation (nothing to release is success)."""

        def effect() -> dict[str, Any]:
            res = self.reservations.get(reservation)
            if res is None or not res["active"]:
                return {"released": False}
            res["active"] = False
            self.stock[res["sku"]]["reserved"] -= res["qty"]
            return {"released": True, "qty": res["qty"]}

        return self._call("release", key, {"reservation": reservation}, effect, fence)

    # -- ERP --------------------------------------------------------------------------
    def create_po(self, key: str, supplier: str, sku: str, qty: int, amount: str, *,
                  fence: Fence | None = None) -> dict[str, Any]:
        """Create a purchase order."""

        def effect() -> dict[str, Any]:
            number = f"PO-{len(self.orders) + 1:05d}"
            self.orders[number] = {"key": key, "supplier": supplier, "sku": sku, "qty": qty,
                                   "amount": amount, "status": "open"}
            return {"po": number, "supplier": supplier, "amount": amount}

        return self._call("create_po", key, {"supplier": supplier}, effect, fence)

    def cancel_po(self, key: str, po: str, *, fence: Fence | None = None) -> dict[str, Any]:
        """Cancel a purchase order (already cancelled is success)."""

        def effect() -> dict[str, Any]:
            order = self.orders.get(po)
            if order is None:
                return {"cancelled": False, "reason": "no such PO"}
            order["status"] = "cancelled"
            return {"cancelled": True, "po": po}

        return self._call("cancel_po", key, {"po": po}, effect, fence)

    def po_for(self, key: str, *, fence: Fence | None = None) -> str | None:
        """The PO created with this idempotency key, if any."""
        with self._lock:
            self._admit_read("po_for", fence)
            return next((n for n, o in self.orders.items() if o["key"] == key), None)

    # -- logistics partner ------------------------------------------------------------
    def notify(self, key: str, po: str, qty: int, *, fence: Fence | None = None) -> dict[str, Any]:
        """Pre-step webhook: tell the partner's capacity planning to expect a shipment."""

        def effect() -> dict[str, Any]:
            self.bookings[key] = {"po": po, "qty": qty, "status": "planned"}
            self.webhooks.append({"event": "capacity.planned", "po": po, "key": key})
            return {"booking": key, "po": po}

        return self._call("notify", key, {"po": po}, effect, fence)

    def cancel_notice(
        self, key: str, booking: str, *, fence: Fence | None = None
    ) -> dict[str, Any]:
        """Cancellation webhook for a capacity notice."""

        def effect() -> dict[str, Any]:
            found = self.bookings.get(booking)
            if found is None or found["status"] == "cancelled":
                return {"cancelled": False}
            found["status"] = "cancelled"
            self.webhooks.append({"event": "capacity.cancelled", "po": found["po"],
                                  "key": booking})
            return {"cancelled": True, "po": found["po"]}

        return self._call("cancel_notice", key, {"booking": booking}, effect, fence)

    def confirm_shipment(self, key: str, po: str, *, fence: Fence | None = None) -> dict[str, Any]:
        """Send the shipment confirmation."""

        def effect() -> dict[str, Any]:
            self.webhooks.append({"event": "shipment.confirmed", "po": po, "key": key})
            return {"confirmed": po}

        return self._call("confirm_shipment", key, {"po": po}, effect, fence)

    def cancel_shipment(self, key: str, po: str, *, fence: Fence | None = None) -> dict[str, Any]:
        """Send a shipment cancellation (a confirmation cannot be unsent)."""

        def effect() -> dict[str, Any]:
            self.webhooks.append({"event": "shipment.cancelled", "po": po, "key": key})
            return {"cancelled": po}

        return self._call("cancel_shipment", key, {"po": po}, effect, fence)

    # -- customer notices -------------------------------------------------------------
    def send(self, key: str, to: str, kind: str, text: str, *, fence: Fence | None = None
            ) -> dict[str, Any]:
        """Send a notice (confirmation, or a correction of one)."""

        def effect() -> dict[str, Any]:
            self.outbox.append({"to": to, "kind": kind, "text": text, "key": key})
            return {"sent": kind, "to": to}

        return self._call("send", key, {"to": to, "kind": kind}, effect, fence)

    # -- state for snapshots ----------------------------------------------------------
    def state(self, sku: str, supplier: str) -> dict[str, Any]:
        """What a procurement saga touches: stock, open POs, live logistics bookings."""
        with self._lock:
            item = self.stock.get(sku, {"on_hand": 0, "reserved": 0})
            return {
                "stock": {sku: dict(item)},
                "open_pos": sorted(n for n, o in self.orders.items()
                                   if o["supplier"] == supplier and o["status"] == "open"),
                "logistics_bookings": sorted(k for k, b in self.bookings.items()
                                             if b["status"] == "planned"),
            }

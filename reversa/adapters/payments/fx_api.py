"""The FX venue boundary: ccxt's unified API plus two optional effect-boundary extensions.

:class:`~reversa.adapters.payments.FxConvert` talks to any ccxt ``Exchange``. A
venue that keeps the effect boundary declares it in ccxt's capability map:

- ``exchange.has[FENCE_CAPABILITY]``: order calls accept the caller's fencing
  token in ``params[FENCE_PARAM]`` (``"<saga>;<epoch>"``) and refuse a lower
  epoch than one already seen for that saga;
- ``exchange.has[BLOCK_CAPABILITY]``: ``exchange.block_order(client_order_id,
  None, params)`` atomically returns the order placed under that client order id,
  or ``None`` after tombstoning the id, so no order may ever be placed under it.

Both refusals raise :class:`FxFenced`, which the adapter translates into
:class:`reversa.Fenced`. A real exchange has neither: then no fence is sent, and
an FX step that is in doubt during a rollback is compensated if the venue shows
the order, and escalated to a human otherwise (a probe's "not found" cannot
stop a late order). See docs/payments.md.
"""

from __future__ import annotations

import ccxt

__all__ = ["BLOCK_CAPABILITY", "FENCE_CAPABILITY", "FENCE_PARAM", "FxFenced"]

FENCE_CAPABILITY = "reversaFence"
"""``exchange.has`` key: the venue checks fencing tokens."""

FENCE_PARAM = "reversaFence"
"""ccxt ``params`` key carrying the fencing token (``Fence.header()``)."""

BLOCK_CAPABILITY = "blockOrder"
"""``exchange.has`` key: the venue can tombstone a client order id (``block_order``)."""


class FxFenced(ccxt.OperationRejected):  # type: ignore[misc]  # ccxt ships no type stubs
    """The venue refused an order call: stale fencing token, or a blocked client order id.

    Nothing was placed. Translated into :class:`reversa.Fenced` at the adapter boundary.
    """

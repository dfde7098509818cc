"""Webhook delivery of Reversa's notifications (extra ``notify``: httpx).

The outbox and its API live in the core (:mod:`reversa.core.notify`); this
package holds the part that speaks HTTP.
"""

from .dispatcher import Dispatcher, DispatchReport

__all__ = ["DispatchReport", "Dispatcher"]

"""Mock ledger for the payments adapter: double-entry books, holds, corrections,
payment rails with settlement delay and finality, recalls, and fault injection.

In process: :class:`MockLedger`. Over loopback HTTP: :mod:`reversa.simulators.ledger.http`
(``serve``, ``start_server``, ``HttpLedgerClient``).
"""

from ._ledger import MockLedger, RecallAnswer
from .faults import Fault, FaultKind, FaultPlan

__all__ = ["Fault", "FaultKind", "FaultPlan", "MockLedger", "RecallAnswer"]

"""The full picture of one saga, from its rows and its audit log (see :class:`Inspector`)."""

from __future__ import annotations

import json
from typing import Any

from ..inspector import Inspector
from ..store import Store
from ..views import EscalationView, SagaView

__all__ = ["audit_entries", "escalation_view", "saga_view"]


def audit_entries(store: Store, saga_id: str) -> list[dict[str, Any]]:
    """The saga's log entries, in order, with details decoded."""
    return [e.model_dump() for e in Inspector(store).audit(saga_id)]


def saga_view(store: Store, saga_id: str) -> SagaView:
    """Build a :class:`SagaView` (every step, attempt, timestamp and outcome code)."""
    return Inspector(store).saga(saga_id)


def escalation_view(r: dict[str, Any]) -> EscalationView:
    """Decode an escalation row."""
    return EscalationView(
        id=r["id"], saga_id=r["saga_id"], created_at=r["created_at"], reason=r["reason"],
        status=r["status"], report=json.loads(r["report_json"]), resolution=r["resolution"],
        resolved_by=r["resolved_by"], resolved_at=r["resolved_at"], note=r["note"])

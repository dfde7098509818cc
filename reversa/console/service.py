"""What the console reads and does, shared by its pages and its JSON API.

Reads go through :class:`~reversa.Inspector` (and its read models, for paging);
every change of a saga goes through the :class:`~reversa.Engine`, attributed to
the logged-in user (``user:<name>``), so the console records nothing the CLI
could not, and the audit chain says who did what.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from ..cli.apps import saga_code
from ..core.audit import AuditReport
from ..core.engine import Engine
from ..core.errors import ConfigError
from ..core.evidence import Verifier, Witness
from ..core.governance import Approval, ApprovalKind
from ..core.inspector import Inspector
from ..core.registry import Registry
from ..core.states import SagaStatus
from ..core.store import Store
from ..core.store.read_models import SagaRecord
from ..core.views import AuditEntry, EscalationView, SagaResult, SagaSummary, SagaView
from .accounts import User

__all__ = ["ACTIONS", "AuditKeys", "Code", "ConsoleService", "SagaPage", "parse_age"]

ACTIONS = ("retry", "forward_recovery", "mark_resolved")
"""The resolutions of an escalation, as ``Engine.resolve`` names them."""

_SUMMARY = tuple(col(c) for c in (
    SagaRecord.id, SagaRecord.workflow, SagaRecord.status, SagaRecord.created_at,
    SagaRecord.updated_at, SagaRecord.failed_step, SagaRecord.error, SagaRecord.lease_owner,
    SagaRecord.lease_expires_at, SagaRecord.app, SagaRecord.services))


@dataclass(frozen=True)
class SagaPage:
    """One page of a filtered saga listing."""

    items: list[SagaSummary]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages the filter yields (at least 1)."""
        return max(1, -(-self.total // self.per_page))


class Code:
    """Which registry and services run a saga's handlers when the console acts on it.

    The same trust rule as the CLI's (:mod:`reversa.cli.apps`): ``--app`` and
    ``--services`` given to ``reversa console`` are always used; a path a saga
    recorded is imported only when trusted. Each import is done once per process
    (services hold clients and connections worth reusing).
    """

    def __init__(self, apps: Sequence[str] = (), services: str | None = None,
                 *, trust_recorded: bool = False) -> None:
        self.apps = list(apps)
        self.services = services
        self.trust_recorded = trust_recorded
        self._cache: dict[tuple[str | None, str | None], tuple[Registry, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def for_saga(self, saga_id: str, app: str | None, services: str | None
                 ) -> tuple[Registry, dict[str, Any]]:
        """The registry and services for a saga that recorded ``app`` and ``services``.

        Raises:
            ConfigError: Nothing to load, an untrusted recorded path, or an import failure.
        """
        key = (None if self.apps else app, None if self.services else services)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = saga_code(saga_id, app, services, apps=self.apps,
                                             services=self.services,
                                             trust_recorded=self.trust_recorded)
            return self._cache[key]


@dataclass(frozen=True)
class AuditKeys:
    """What the audit verification checks beyond the chains and the tables.

    Attributes:
        verifiers: Public keys (or HMAC keys) of the signed chain heads; None
            leaves signatures unchecked (the report says so).
        witnesses: Witnesses holding the signed checkpoints.
    """

    verifiers: tuple[Verifier, ...] | None = None
    witnesses: tuple[Witness, ...] = ()


class ConsoleService:
    """Everything the console shows and does, for pages and API alike.

    Args:
        store: The saga store (writable: resolutions are recorded in it).
        code: Where handlers come from when an action runs a saga's code.
        engine_options: Extra keyword arguments for every :class:`Engine` made here.
        audit: Keys and witnesses the audit verification uses (default: the
            witnesses the store itself publishes to, no public key).
    """

    def __init__(self, store: Store, code: Code | None = None,
                 engine_options: dict[str, Any] | None = None,
                 audit: AuditKeys | None = None) -> None:
        self.store = store
        self.inspector = Inspector(store)
        self.code = code or Code()
        self.engine_options = dict(engine_options or {})
        self.audit = audit or AuditKeys(witnesses=tuple(store.audit.witnesses))

    # -- reading --------------------------------------------------------------------
    def sagas(
        self,
        *,
        status: Sequence[str] = (),
        workflow: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> SagaPage:
        """Sagas matching the filters, newest first, one page of them."""
        wanted = [_status(s) for s in status]
        conditions: list[ColumnElement[bool]] = []
        if wanted:
            conditions.append(col(SagaRecord.status).in_(wanted))
        if workflow:
            conditions.append(col(SagaRecord.workflow) == workflow)
        if created_after is not None:
            conditions.append(col(SagaRecord.created_at) >= created_after)
        if created_before is not None:
            conditions.append(col(SagaRecord.created_at) <= created_before)
        page, per_page = max(1, page), min(max(1, per_page), 200)
        query = (sa_select(*_SUMMARY).where(*conditions)
                 .order_by(col(SagaRecord.created_at).desc(), col(SagaRecord.id))
                 .offset((page - 1) * per_page).limit(per_page))
        counting = select(func.count()).select_from(SagaRecord).where(*conditions)
        with self.inspector.session() as session:
            total = int(session.exec(counting).one())
            rows = session.execute(query).mappings().all()
        return SagaPage([SagaSummary.model_validate(dict(r)) for r in rows], page, per_page,
                        total)

    def workflows(self) -> list[str]:
        """Every workflow name recorded, for the listing's filter."""
        with self.inspector.session() as session:
            return list(session.exec(select(SagaRecord.workflow).distinct()
                                     .order_by(col(SagaRecord.workflow))).all())

    def counts(self) -> dict[str, int]:
        """Number of sagas per status (every status, zeros included)."""
        query = select(SagaRecord.status, func.count()).group_by(col(SagaRecord.status))
        with self.inspector.session() as session:
            found = {str(status): int(n) for status, n in session.exec(query).all()}
        return {s.value: found.get(s.value, 0) for s in SagaStatus}

    def saga(self, saga_id: str) -> SagaView:
        """One saga with everything recorded (``saga_id`` may be a unique prefix)."""
        return self.inspector.saga(saga_id)

    def timeline(self, saga_id: str) -> list[AuditEntry]:
        """The saga's audit chain, in order."""
        return self.inspector.audit(self.inspector.resolve_id(saga_id))

    def escalations(self, status: str | None = "open") -> list[EscalationView]:
        """Escalations, oldest first (``status`` ``open``, ``resolved`` or None for all)."""
        return self.inspector.escalations(status=status)

    def escalation(self, escalation_id: int) -> EscalationView:
        """One escalation with its full state report."""
        return self.inspector.escalation(escalation_id)

    def verify_audit(self, saga_id: str | None = None) -> AuditReport:
        """Verify the audit record (or one saga's) as ``reversa audit verify`` does:
        chains, tables against the chains' state records and, with the keys and
        witnesses given, head signatures and witnessed checkpoints. Read-only."""
        return self.store.verify_audit(
            None if saga_id is None else self.inspector.resolve_id(saga_id),
            verifiers=self.audit.verifiers, witnesses=self.audit.witnesses)

    def approvals(self, status: str | None = "pending", kind: str | None = None
                  ) -> list[Approval]:
        """Approvals (``status`` pending, approved, rejected, executed, failed or None
        for all), oldest first."""
        return self.inspector.approvals(status=status, kind=kind)

    def approval(self, approval_id: int) -> Approval:
        """One approval with every decision so far."""
        return self.inspector.approval(approval_id)

    def rollback_window_left(self, view: SagaView, now: float) -> float | None:
        """Seconds left to roll back a completed saga (None when it is not completed)."""
        if view.status is not SagaStatus.COMPLETED:
            return None
        return float(view.plan.get("rollback_window_s", 0)) - (now - view.updated_at)

    # -- acting ---------------------------------------------------------------------
    def _engine_for(self, saga_id: str, *, code: str) -> Engine:
        """An engine to act on ``saga_id``: with the saga's code when ``code`` is
        ``required``, without any for ``none``, with it if loadable for ``optional``
        (a running saga whose live owner does the work needs none here)."""
        registry: Registry = Registry()
        services: dict[str, Any] = {}
        if code != "none":
            record = self.inspector.record(saga_id)
            try:
                registry, services = self.code.for_saga(record.id, record.app,
                                                        record.services)
            except ConfigError:
                if code == "required":
                    raise
        return Engine(registry, self.store, services=services, **self.engine_options)

    def resolve(self, user: User, escalation_id: int, action: str, note: str
                ) -> SagaResult | Approval:
        """Resolve an open escalation as ``user`` (recorded as its author).

        Returns:
            The saga's result, or a pending ``resolution`` approval when four-eyes
            applies (it runs once a second, distinct approver approves it).

        Raises:
            ConfigError: Unknown action, or the saga's code cannot be loaded.
            NotFound: No open escalation with that id.
        """
        if action not in ACTIONS:
            raise ConfigError(f"unknown resolution {action!r}; use one of {', '.join(ACTIONS)}")
        escalation = self.inspector.escalation(escalation_id)
        engine = self._engine_for(escalation.saga_id,
                                  code="none" if action == "mark_resolved" else "required")
        try:
            return engine.resolve(escalation_id, action=action, author=user.identity,
                                  note=note)
        finally:
            engine.close()

    def request_rollback(self, user: User, saga_id: str, reason: str
                         ) -> SagaResult | Approval:
        """Ask, as ``user``, that a running saga stop and roll back, or that a completed
        one still within its rollback window be rolled back now.

        Returns:
            The saga's result (``running`` when its live owner will roll it back at
            its next step boundary), or a pending ``rollback`` approval under four-eyes.

        Raises:
            ConfigError: Nothing to roll back (terminal, window elapsed, escalated,
                awaiting approval), no reason, or the saga's code cannot be loaded.
        """
        record = self.inspector.record(saga_id)
        live_owner = (record.status is SagaStatus.RUNNING and record.lease_expires_at is not None
                      and record.lease_expires_at > self.store.now())
        engine = self._engine_for(record.id, code="optional" if live_owner else "required")
        try:
            return engine.request_rollback(record.id, by=user.identity, reason=reason)
        finally:
            engine.close()

    def decide(self, user: User, approval_id: int, verdict: str, note: str) -> Approval:
        """Approve or reject (``verdict``) a pending approval as ``user``.

        The decision that completes an approval executes what it held back (a
        resolution, a rollback) here, with the saga's code; a started saga is left
        for a worker.

        Raises:
            ConfigError: Already decided, the same identity deciding twice or
                approving its own request, a rejection without a note.
        """
        approval = self.inspector.approval(approval_id)
        code = "none"
        if verdict == "approved" and approval.kind is ApprovalKind.ROLLBACK:
            code = "optional"  # a running saga's live owner may be the one rolling back
        elif (verdict == "approved" and approval.kind is ApprovalKind.RESOLUTION
              and approval.payload.get("action") != "mark_resolved"):
            code = "required"
        engine = self._engine_for(approval.saga_id, code=code)
        try:
            if verdict == "approved":
                return engine.approve(approval_id, by=user.identity, note=note)
            if verdict == "rejected":
                return engine.reject(approval_id, by=user.identity, note=note)
            raise ConfigError(f"unknown verdict {verdict!r}; use approved or rejected")
        finally:
            engine.close()


def parse_age(text: str | None) -> float | None:
    """``90s``, ``15m``, ``2h``, ``3d`` (or plain seconds) -> seconds; None stays None.

    Raises:
        ConfigError: Not a non-negative number with an optional unit.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects NaN
        raise ConfigError(f"age {text!r}: use a non-negative number with s, m, h or d "
                          "(e.g. 15m)")
    return value


def _status(value: str) -> str:
    try:
        return SagaStatus(value).value
    except ValueError:
        raise ConfigError(f"unknown saga status {value!r}; use one of "
                          f"{', '.join(s.value for s in SagaStatus)}") from None

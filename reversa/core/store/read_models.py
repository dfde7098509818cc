"""Typed read models (SQLModel) of the store's tables, for queries that inspect sagas.

Each class maps one existing table column for column, with JSON columns
decoded (``plan_json`` is ``plan``) and statuses as their enums, so readers --
the CLI, :class:`~reversa.core.inspector.Inspector`, a web console or an API --
write typed queries::

    from sqlmodel import Session, select

    with Session(store.engine) as session:
        stuck = session.exec(select(SagaRecord).where(SagaRecord.status == "escalated")).all()

They are for reading only. They live in their own SQLAlchemy registry and
``MetaData`` (:data:`read_metadata`), never in ``SQLModel.metadata`` nor in the
schema's: ``create_all`` on either can never create or alter a Reversa table;
the schema belongs to the versioned migrations in :mod:`.schema`. The per-step
write path stays on fixed SQL (:mod:`.writer`), which is several times faster
than ORM units of work.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Column, Dialect, MetaData, String, Text
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from ..states import SagaStatus, StepStatus

__all__ = [
    "ApprovalRecord",
    "AuditRecord",
    "EscalationRecord",
    "OutboxRecord",
    "ReadModel",
    "RollbackRecord",
    "SagaRecord",
    "StepRecord",
    "read_metadata",
]

_registry = registry(metadata=MetaData())
read_metadata: MetaData = _registry.metadata
"""The read models' own MetaData: never passed to ``create_all`` or migrations."""


class JsonText(TypeDecorator[Any]):
    """A TEXT column holding canonical JSON, decoded on read."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        # Read models never write; encoding only serves literal filter values.
        return None if value is None else json.dumps(value, sort_keys=True)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class EnumText(TypeDecorator[Any]):
    """A string column holding a StrEnum's value, returned as the enum member."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int = 32) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(self.enum(value).value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.enum(value)


class ReadModel(SQLModel, registry=_registry):
    """Base of the read models (their own registry, so their own MetaData)."""


class SagaRecord(ReadModel, table=True):
    """A row of ``reversa_sagas``: one saga, its plan, state, lease and origin."""

    __tablename__ = "reversa_sagas"

    id: str = Field(primary_key=True, max_length=64)
    workflow: str
    status: SagaStatus = Field(sa_column=Column("status", EnumText(SagaStatus),
                                                nullable=False))
    plan_hash: str
    plan: dict[str, Any] = Field(sa_column=Column("plan_json", JsonText, nullable=False))
    input: dict[str, Any] = Field(sa_column=Column("input_json", JsonText, nullable=False))
    pre_state: dict[str, Any] | None = Field(default=None,
                                             sa_column=Column("pre_state_json", JsonText))
    created_at: float
    updated_at: float
    failed_step: str | None = None
    error: str | None = None
    rollback_started_at: float | None = None
    checkpoint: str | None = None
    resumes: int = 0
    lease_owner: str | None = None
    lease_token: int = 0
    lease_expires_at: float | None = None
    audit_seq: int = 0
    audit_head: str
    app: str | None = Field(default=None, description="Import path of the saga's registry.")
    services: str | None = Field(default=None,
                                 description="Import path of its services factory.")
    heartbeat_at: float | None = Field(default=None,
                                       description="Last heartbeat (progress), store clock.")
    audit_key: str | None = Field(default=None, description="Id of the key that signed the head.")
    audit_sig: str | None = Field(default=None, description="Signature of the chain's head.")
    rollback_requested: dict[str, Any] | None = Field(
        default=None, sa_column=Column("rollback_requested", JsonText),
        description="An operator's rollback request its owner has not acted on yet.")


class StepRecord(ReadModel, table=True):
    """A row of ``reversa_steps``: one step's state, attempts, results and timestamps."""

    __tablename__ = "reversa_steps"

    saga_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    position: int
    status: StepStatus = Field(sa_column=Column("status", EnumText(StepStatus),
                                                nullable=False))
    attempts: int = 0
    comp_attempts: int = 0
    result: Any = Field(default=None, sa_column=Column("result_json", JsonText))
    comp_result: Any = Field(default=None, sa_column=Column("comp_result_json", JsonText))
    state: Any = Field(default=None, sa_column=Column("state_json", JsonText))
    error: str | None = Field(default=None, sa_column=Column("error", Text))
    outcome: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    comp_started_at: float | None = None
    comp_finished_at: float | None = None


class AuditRecord(ReadModel, table=True):
    """A row of ``reversa_audit``: one entry of a saga's hash chain."""

    __tablename__ = "reversa_audit"

    id: int = Field(primary_key=True)
    saga_id: str
    seq: int
    ts: float
    step: str | None = None
    phase: str
    attempt: int
    event: str
    outcome: str
    detail: dict[str, Any] = Field(sa_column=Column("detail_json", JsonText, nullable=False))
    state: Any = Field(default=None, sa_column=Column("state_json", JsonText),
                       description="The state record the entry seals (last of a commit).")
    prev_hash: str
    hash: str


class EscalationRecord(ReadModel, table=True):
    """A row of ``reversa_escalations``: a hand-over to a human, and its resolution."""

    __tablename__ = "reversa_escalations"

    id: int = Field(primary_key=True)
    saga_id: str
    created_at: float
    reason: str = Field(sa_column=Column("reason", Text, nullable=False))
    report: dict[str, Any] = Field(sa_column=Column("report_json", JsonText, nullable=False))
    status: str
    resolution: str | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    note: str | None = Field(default=None, sa_column=Column("note", Text))


class RollbackRecord(ReadModel, table=True):
    """A row of ``reversa_rollbacks``: the record of one rollback (AG-384 4.5)."""

    __tablename__ = "reversa_rollbacks"

    id: int = Field(primary_key=True)
    saga_id: str
    failed_step: str | None = None
    scope: str
    outcome: str
    detected_at: float
    finished_at: float
    duration_s: float
    record: dict[str, Any] = Field(sa_column=Column("record_json", JsonText, nullable=False))
    predicate_ok: bool | None = Field(default=None, sa_column=Column("predicate_ok", Boolean))



class ApprovalRecord(ReadModel, table=True):
    """A row of ``reversa_approvals``: what is held back, who asked, who decided."""

    __tablename__ = "reversa_approvals"

    id: int = Field(primary_key=True)
    kind: str
    status: str
    saga_id: str
    workflow: str
    requested_by: str
    requested_at: float
    reason: str = Field(sa_column=Column("reason", Text, nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column("payload_json", JsonText, nullable=False))
    decisions: list[dict[str, Any]] = Field(
        sa_column=Column("decisions_json", JsonText, nullable=False))
    required: int
    decided_at: float | None = None
    outcome: str | None = Field(default=None, sa_column=Column("outcome", Text))
    version: int = 0


class OutboxRecord(ReadModel, table=True):
    """A row of ``reversa_outbox``: one notification and its delivery state."""

    __tablename__ = "reversa_outbox"

    id: int = Field(primary_key=True)
    event: str
    saga_id: str
    workflow: str
    payload: dict[str, Any] = Field(sa_column=Column("payload_json", JsonText, nullable=False))
    idempotency_key: str
    created_at: float
    attempts: int = 0
    next_attempt_at: float | None = None
    delivered_at: float | None = None
    last_error: str | None = Field(default=None, sa_column=Column("last_error", Text))
    delivered_to: list[str] = Field(sa_column=Column("delivered_to", JsonText, nullable=False))

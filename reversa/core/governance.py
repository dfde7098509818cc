"""Governance: approvals, the four-eyes policy and who decided what.

An :class:`Approval` holds a saga (its start), an escalation's resolution or an
operator's rollback until enough distinct identities approve it. Every call
takes ``by``, an identity the caller has authenticated (``"user:alice"``,
``"agent:payments-bot"``, ``"cli:$USER"``): the core records it in the
approval row and in the saga's audit chain, and enforces only what needs no
roles -- the requester never approves their own request, and each approver is
a different identity. Roles and authentication belong to the caller (the web
console, the MCP server).

``required`` counts approvers other than the requester: a four-eyes
resolution is requested by its author and executed once one other identity
approves it (two pairs of eyes).

The :class:`FourEyes` policy says which resolutions and operator rollbacks
need that second identity: those of sagas whose input value, or whose
recorded rollback cost, reaches a threshold. Give it per workflow to the
``Engine``/``Worker`` (``governance={"payments": FourEyes(...), "*": ...}``) or
load it from a TOML file with :func:`load_policy`::

    [four_eyes.cross-border-payment]
    min_value = { GBP = 10000, EUR = 12000 }
    min_rollback_cost = { GBP = 50 }
    value_field = "amount"
    unit_field = "currency"

    [four_eyes."*"]
    always = false
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

__all__ = [
    "Approval",
    "ApprovalKind",
    "ApprovalStatus",
    "Decision",
    "FourEyes",
    "Governance",
    "load_policy",
    "policy_for",
]


class ApprovalKind(StrEnum):
    """What an approval holds back."""

    START = "start"
    """A saga recorded but not started (``Engine.submit(..., approval_reason=...)``)."""
    RESOLUTION = "resolution"
    """An escalation's resolution that four-eyes applies to."""
    ROLLBACK = "rollback"
    """An operator's rollback that four-eyes applies to."""


class ApprovalStatus(StrEnum):
    """Where an approval stands.

    ``approved`` is a decided start approval whose saga waits for a worker;
    ``executed`` means what it held back ran (a started saga, a resolution, a
    rollback -- whatever its own outcome); ``failed`` means it was approved but
    could no longer run (the saga moved on, the rollback window elapsed), with
    the reason in ``outcome``.
    """

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTED = "executed"
    FAILED = "failed"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Decision(_Frozen):
    """One identity's verdict on an approval."""

    by: str
    at: float
    verdict: str
    """``approved`` or ``rejected``."""
    note: str = ""


class Approval(_Frozen):
    """A row of ``reversa_approvals``: what is held back, by whom, and who decided.

    Attributes:
        id: Approval id (``reversa approvals approve ID``).
        kind: ``start``, ``resolution`` or ``rollback``.
        status: See :class:`ApprovalStatus`.
        saga_id: The saga it concerns.
        workflow: The saga's workflow.
        requested_by: Who asked (never an approver of their own request).
        requested_at: When (store clock, epoch seconds).
        reason: Why approval is needed.
        payload: For ``resolution``: ``action``, ``note`` and ``escalation``; for
            ``rollback``: ``reason``.
        decisions: Every verdict so far, in order.
        required: How many distinct approvers (other than the requester) it needs.
        decided_at: When it stopped being pending.
        outcome: What executing it did, or why it could not run.
    """

    id: int
    kind: ApprovalKind
    status: ApprovalStatus
    saga_id: str
    workflow: str
    requested_by: str
    requested_at: float
    reason: str
    payload: dict[str, Any]
    decisions: list[Decision]
    required: int
    decided_at: float | None = None
    outcome: str | None = None

    @property
    def approvers(self) -> list[str]:
        """Distinct identities that approved it, in order."""
        return list(dict.fromkeys(d.by for d in self.decisions if d.verdict == "approved"))


class FourEyes(_Frozen):
    """When a resolution or an operator rollback needs a second, distinct approver.

    Attributes:
        min_value: Per unit (``{"GBP": 10000}``; ``"*"`` for any unit): a saga
            whose input value reaches it needs a second approver.
        min_rollback_cost: Per unit: a saga whose recorded rollback cost (its
            last dry-run) reaches it needs one too.
        value_field: Where the value is in the saga's input (dotted path).
        unit_field: Where its unit (currency) is; the ``"*"`` threshold applies
            when the input has none.
        always: Every resolution and operator rollback of the workflow needs one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_value: dict[str, float] = Field(default_factory=dict)
    min_rollback_cost: dict[str, float] = Field(default_factory=dict)
    value_field: str = "amount"
    unit_field: str = "currency"
    always: bool = False

    def applies(
        self, input: Mapping[str, Any], rollback_costs: Mapping[str, float]
    ) -> str | None:
        """Why a second approver is needed for a saga, or None when it is not.

        Args:
            input: The saga's recorded input.
            rollback_costs: Its last recorded rollback cost estimates per unit.
        """
        if self.always:
            return "four-eyes: the workflow's policy requires a second approver"
        value = _field(input, self.value_field)
        if isinstance(value, int | float | str) and self.min_value:
            try:
                amount = float(value)
            except ValueError:
                amount = None
            unit = _field(input, self.unit_field)
            unit = str(unit) if unit is not None else "*"
            limit = self.min_value.get(unit, self.min_value.get("*"))
            if amount is not None and limit is not None and amount >= limit:
                return (f"four-eyes: value {amount:g} {unit} is at or above "
                        f"{limit:g} {unit}")
        for unit, cost in rollback_costs.items():
            limit = self.min_rollback_cost.get(unit, self.min_rollback_cost.get("*"))
            if limit is not None and cost >= limit:
                return (f"four-eyes: estimated rollback cost {cost:g} {unit} is at or above "
                        f"{limit:g} {unit}")
        return None


Governance = Mapping[str, FourEyes]
"""Per-workflow policy: a workflow's name (or ``"*"`` for every other) -> FourEyes."""


def policy_for(governance: Governance | None, workflow: str) -> FourEyes | None:
    """The policy that applies to ``workflow`` (its own, else ``"*"``), if any."""
    if not governance:
        return None
    return governance.get(workflow, governance.get("*"))


def load_policy(path: str | os.PathLike[str]) -> dict[str, FourEyes]:
    """Read a governance policy file (TOML, see the module docstring).

    Raises:
        ConfigError: The file is missing, not TOML, or names an unknown field.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"no policy file at {path}; check the path") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"policy file {path} is not readable TOML: {exc}") from None
    unknown = sorted(set(data) - {"four_eyes"})
    if unknown:
        raise ConfigError(f"policy file {path}: unknown section(s) {unknown}; use [four_eyes."
                          "<workflow>] tables")
    out: dict[str, FourEyes] = {}
    for workflow, table in dict(data.get("four_eyes", {})).items():
        try:
            out[workflow] = FourEyes.model_validate(table)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"policy file {path}: [four_eyes.{workflow}] {where}: "
                              f"{first['msg']}") from None
    return out


def _field(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value

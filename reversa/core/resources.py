"""What a step touches in the world, so sagas sharing it can see each other.

A step declares its resources through its operation's ``resources(ctx)`` hook
(registered like ``probe`` or ``block``): the accounts a transfer debits and
credits, the allowance an approval grants, the robot cell and work piece a pick
moves. Each adapter names its own kinds (``ledger.account``, ``evm.allowance``,
``robot.workpiece``...). The engine records them with the step's intent and
uses them twice:

- **links**: a step that *consumes* a resource another saga's standing step
  *produced* (the euros a conversion credited, then paid out) depends on that
  saga; the link is recorded in both sagas' chains and in ``reversa_links``,
  and rolling the producer back assesses the consumer first;
- **holds**: while a saga is rolling back or escalated, every resource its
  steps declared is held; another saga's step touching one waits (bounded by
  its workflow's ``hold_wait_s``) or fails naming the holder.

A step may also declare a dependency the resources cannot show, with
``ctx.consumes(saga_id)`` from inside its action.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import PlanError

__all__ = ["Resource", "Role"]


class Role(StrEnum):
    """How a step uses a resource."""

    PRODUCES = "produces"
    """It puts something there others may use (credits an account, grants an allowance)."""
    CONSUMES = "consumes"
    """It uses what is there (debits an account, spends an allowance, picks a part)."""
    TOUCHES = "touches"
    """It acts on it without producing or consuming (moves an arm in a cell): holds only."""


@dataclass(frozen=True, slots=True)
class Resource:
    """One thing in the world a step acts on.

    Attributes:
        kind: The adapter's resource kind (``ledger.account``, ``evm.allowance``...).
        id: Its identity within the kind (an account id, ``token:owner:spender``...).
        role: How the step uses it.
    """

    kind: str
    id: str
    role: Role = Role.TOUCHES

    def __post_init__(self) -> None:
        if not self.kind or not self.id or ":" in self.kind:
            raise PlanError(
                f"resource {self.kind!r}/{self.id!r}: give a non-empty kind without ':' and a "
                "non-empty id, e.g. Resource('ledger.account', 'cust:alice', Role.CONSUMES)")
        object.__setattr__(self, "role", Role(self.role))

    @property
    def key(self) -> str:
        """``<kind>:<id>``: how the resource is stored and named in messages."""
        return f"{self.kind}:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (audit entries, reports)."""
        return {"kind": self.kind, "id": self.id, "role": self.role.value}


def as_resources(value: Any, where: str) -> list[Resource]:
    """A ``resources`` hook's answer as a list (one resource, a list, or None)."""
    if value is None:
        return []
    items = [value] if isinstance(value, Resource) else list(value)
    for item in items:
        if not isinstance(item, Resource):
            raise TypeError(f"{where} must return Resource objects (or a list of them), got "
                            f"{item!r}")
    return items

"""Per-agent policy: who an agent is, what it may start, and above what a human decides.

The policy is a TOML file the operator writes; agents can read their own limits
(``describe_workflow``) but no tool changes them. One table per agent::

    [agents.payments-bot]
    # HTTP identity: SHA-256 (hex) of the agent's bearer token. The token itself
    # never goes in this file: `printf %s "$TOKEN" | sha256sum`.
    token_sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
    workflows = ["payments.ag166c.cross_border"]   # or ["*"]
    max_value = { GBP = 250000 }          # above: refused outright
    approval_above = { GBP = 150000 }     # above: pending_approval until a human approves
    max_rollback_cost = { GBP = 500 }     # estimated rollback cost above: pending_approval
    may_request_rollback = true

Limits are per currency or unit. A workflow whose input carries a value in a
unit the agent has no ``max_value`` for is refused (deny by default); rollback
cost units without a limit are not limited here (the saga's own
``max_rollback_cost`` still applies when it rolls back).
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..core.errors import ConfigError, ReversaError
from .catalog import describe_errors

__all__ = ["AgentPolicy", "Policy", "Refused", "load_policy", "token_digest"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class Refused(ReversaError):
    """The agent's policy forbids what it asked for; nothing was recorded or run."""

    default_code = "refused"


def token_digest(token: str) -> str:
    """SHA-256 (hex) of a bearer token: what the policy file stores."""
    return hashlib.sha256(token.encode()).hexdigest()


class AgentPolicy(BaseModel):
    """One agent's identity and limits.

    Attributes:
        name: The agent's name; recorded as ``agent:<name>`` in audit chains.
        token_sha256: SHA-256 of its bearer token (HTTP transport).
        workflows: Workflow names it may see and start (``"*"``: all).
        max_value: Per unit, the largest value a saga it starts may carry.
        approval_above: Per unit, the value above which a human must approve.
        max_rollback_cost: Per unit, the estimated rollback cost above which a
            human must approve.
        may_request_rollback: Whether it may ask for a saga to be rolled back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    workflows: tuple[str, ...] = ()
    max_value: dict[str, float] = Field(default_factory=dict)
    approval_above: dict[str, float] = Field(default_factory=dict)
    max_rollback_cost: dict[str, float] = Field(default_factory=dict)
    may_request_rollback: bool = False

    @field_validator("max_value", "approval_above", "max_rollback_cost")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [unit for unit, limit in value.items() if not limit >= 0]
        if bad:
            raise ValueError(f"limits must be non-negative numbers ({', '.join(bad)})")
        return value

    @property
    def identity(self) -> str:
        """What audit chains record for this agent."""
        return f"agent:{self.name}"

    def allows(self, workflow: str) -> bool:
        """Whether it may see and start ``workflow``."""
        return "*" in self.workflows or workflow in self.workflows

    def check_workflow(self, workflow: str) -> None:
        """Raise :class:`Refused` unless it may use ``workflow``."""
        if not self.allows(workflow):
            raise Refused(f"agent {self.name!r} may not use workflow {workflow!r} (not in "
                          "its policy's workflows); list_workflows names those it may")

    def start_conditions(
        self, workflow: str, value: tuple[float, str] | None, costs: Mapping[str, float]
    ) -> list[str]:
        """Why a start needs a human's approval (empty: it may start now).

        Raises:
            Refused: The workflow is not allowed, or the value exceeds ``max_value``
                (or its unit has none).
        """
        self.check_workflow(workflow)
        reasons: list[str] = []
        if value is not None:
            amount, unit = value
            ceiling = self.max_value.get(unit)
            if ceiling is None:
                raise Refused(f"agent {self.name!r} has no max_value for {unit}, so it may not "
                              f"start {workflow!r} with a value in {unit}; the operator sets "
                              "limits in the policy file")
            if amount > ceiling:
                raise Refused(f"value {amount:,.2f} {unit} is above agent {self.name}'s "
                              f"limit of {ceiling:,.2f} {unit} per saga; refused (no approval "
                              "can raise it: the operator sets limits in the policy file)")
            threshold = self.approval_above.get(unit)
            if threshold is not None and amount > threshold:
                reasons.append(f"value {amount:,.2f} {unit} is above agent {self.name}'s "
                               f"approval threshold of {threshold:,.2f} {unit}")
        for unit, limit in sorted(self.max_rollback_cost.items()):
            cost = costs.get(unit)
            if cost is not None and cost > limit:
                reasons.append(f"estimated rollback cost {cost:,.2f} {unit} is above agent "
                               f"{self.name}'s limit of {limit:,.2f} {unit}")
        return reasons

    def limits(self) -> dict[str, Any]:
        """JSON form of the limits (what an agent may read about itself)."""
        return {"agent": self.name, "workflows": list(self.workflows),
                "max_value": self.max_value, "approval_above": self.approval_above,
                "max_rollback_cost": self.max_rollback_cost,
                "may_request_rollback": self.may_request_rollback}


class Policy:
    """Every agent's policy, looked up by name or by bearer token.

    Args:
        agents: The agents.
        source: Where the policy came from (shown in messages).
    """

    def __init__(self, agents: list[AgentPolicy], *, source: str = "policy") -> None:
        self.source = source
        self.agents: dict[str, AgentPolicy] = {}
        for agent in agents:
            if agent.name in self.agents:
                raise ConfigError(f"{source}: agent {agent.name!r} is defined twice")
            self.agents[agent.name] = agent
        digests = [a.token_sha256 for a in agents if a.token_sha256]
        if len(digests) != len(set(digests)):
            raise ConfigError(f"{source}: two agents share a token; give each its own")

    def agent(self, name: str) -> AgentPolicy:
        """The agent called ``name``.

        Raises:
            ConfigError: No such agent (the message lists them).
        """
        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents)) or "none"
            raise ConfigError(f"{self.source} defines no agent {name!r} (agents: {known})"
                              ) from None

    def by_token(self, token: str) -> AgentPolicy | None:
        """The agent whose ``token_sha256`` matches ``token``, if any."""
        digest = token_digest(token)
        found = None
        for agent in self.agents.values():
            # Compare every digest in constant time: no early exit to time.
            if agent.token_sha256 and hmac.compare_digest(agent.token_sha256, digest):
                found = agent
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "policy") -> Policy:
        """Build from the parsed TOML (``{"agents": {name: {...}}}``).

        Raises:
            ConfigError: Unknown keys or bad values, named in one line.
        """
        unknown = sorted(set(data) - {"agents"})
        if unknown:
            raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
                              "a policy has one [agents.<name>] table per agent")
        agents = data.get("agents") or {}
        if not isinstance(agents, Mapping) or not agents:
            raise ConfigError(f"{source}: no agents; add an [agents.<name>] table")
        parsed = []
        for name, table in agents.items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"{source}: [agents.{name}] must be a table")
            try:
                parsed.append(AgentPolicy.model_validate({**table, "name": name}))
            except ValidationError as exc:
                raise ConfigError(f"{source}: [agents.{name}] {describe_errors(exc)}") from None
        return cls(parsed, source=source)


def load_policy(path: str | Path) -> Policy:
    """Read a policy file (TOML, see the module docstring).

    Raises:
        ConfigError: Missing, unreadable or invalid, named in one line.
    """
    where = Path(path)
    try:
        data = tomllib.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"policy file {where} does not exist; write one (see "
                          "docs/agents.md) or leave --agent-policy out to serve the demo") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read policy file {where}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"policy file {where} is not valid TOML: {exc}") from None
    return Policy.from_dict(data, source=f"policy file {where}")

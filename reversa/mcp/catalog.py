"""What an MCP server offers agents: workflows, their inputs, and the value at stake.

A :class:`~reversa.Registry` names handlers; it does not say which sagas an
agent may start, what input they take or how much money one moves. A
:class:`Catalog` does: the registry, the services the handlers use, and one
:class:`Workflow` per saga an agent can start. ``reversa mcp --app
package.module:catalog`` serves one.

Example::

    from reversa.mcp import Catalog, Value, Workflow

    def catalog() -> Catalog:
        registry = my_registry()
        return Catalog(registry, [
            Workflow(my_saga(registry), "Pay a supplier invoice in GBP.",
                     value=Value("amount", unit="GBP")),
        ])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..core.context import CostEstimate, iter_refs, parse_ref
from ..core.errors import ConfigError
from ..core.model import Saga
from ..core.registry import Registry

__all__ = ["Catalog", "PreviewCost", "Value", "Workflow"]

PreviewCost = Callable[[Mapping[str, Any], Mapping[str, Any]], "CostEstimate | list[CostEstimate]"]
"""``fn(input, services)``: a rollback cost estimate for a saga that has not run yet."""


@dataclass(frozen=True, slots=True)
class Value:
    """Where a saga's input says how much is at stake, and in what unit.

    Attributes:
        field: Input key holding the amount (a number, or a decimal string).
        unit: The currency or unit, when the workflow fixes it (``"GBP"``).
        unit_field: Input key holding the unit, when the input chooses it.
        scale: Multiplier to major units (``1e-18`` for an 18-decimal token
            amount given in base units).
    """

    field: str
    unit: str | None = None
    unit_field: str | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if (self.unit is None) == (self.unit_field is None):
            raise ConfigError(f"Value({self.field!r}): give exactly one of unit= (a fixed "
                              "currency) or unit_field= (the input key naming it)")

    def read(self, input: Mapping[str, Any]) -> tuple[float, str]:
        """``(amount in major units, unit)`` of one saga input.

        Raises:
            ConfigError: The input lacks the field or it is not a number.
        """
        raw = input.get(self.field)
        try:
            # In decimal: a float product (10**21 * 1e-18 = 1000.0000000000001) would put
            # an amount exactly at an agent's limit above it.
            amount = float(Decimal(str(raw)) * Decimal(repr(self.scale)))
        except (InvalidOperation, ValueError):
            raise ConfigError(f"input {self.field!r} must be a number (the amount at stake), "
                              f"got {raw!r}") from None
        if amount != amount or amount < 0:  # NaN or negative
            raise ConfigError(f"input {self.field!r} must be a non-negative number, got {raw!r}")
        unit = self.unit if self.unit is not None else input.get(self.unit_field or "")
        if not isinstance(unit, str) or not unit:
            raise ConfigError(f"input {self.unit_field!r} must name the currency or unit")
        return amount, unit

    def describe(self) -> dict[str, Any]:
        """JSON form shown to agents."""
        return {"field": self.field, "unit": self.unit, "unit_field": self.unit_field,
                "scale": self.scale}


@dataclass(frozen=True)
class Workflow:
    """One saga agents may start.

    Attributes:
        saga: The definition (its ``workflow`` name is what agents call it).
        description: What it does, for the agent (one or two sentences).
        input_model: Pydantic model of the input agents give. Without one, the
            schema is derived from the plan: every ``$input.<key>`` it
            references is required, nothing else is accepted.
        value: Where the input says how much is at stake (per-agent limits).
        fixed_input: Entries merged into every input after validation, which
            agents neither see in the schema nor may override (addresses of
            deployed contracts, watch lists).
        preview_cost: Estimates the rollback cost before the saga runs, when
            the compensations' own estimators can only answer once it has
            (an FX reversal needs the conversion's fill).
    """

    saga: Saga
    description: str
    input_model: type[BaseModel] | None = None
    value: Value | None = None
    fixed_input: Mapping[str, Any] = field(default_factory=dict)
    preview_cost: PreviewCost | None = None

    @property
    def name(self) -> str:
        """The workflow name agents use."""
        return self.saga.workflow

    def model(self) -> type[BaseModel]:
        """The input model (given, or derived from the plan's ``$input`` references)."""
        if self.input_model is not None:
            return self.input_model
        keys = sorted({parse_ref(ref)[1][0] for step in self.saga.steps
                       for ref in iter_refs(step.params)
                       if ref.startswith("$input.")} - set(self.fixed_input))
        fields: dict[str, Any] = dict.fromkeys(keys, (Any, ...))
        return create_model(
            f"{self.name}.input", __config__=ConfigDict(extra="forbid"), **fields)

    def input_schema(self) -> dict[str, Any]:
        """JSON schema of the input agents give."""
        return self.model().model_json_schema()

    def parse_input(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validate an agent's input and merge the fixed entries.

        Raises:
            ConfigError: One line naming every field that is wrong and how.
        """
        try:
            parsed = self.model().model_validate(dict(given))
        except ValidationError as exc:
            raise ConfigError(f"input for {self.name}: {describe_errors(exc)}; see "
                              f"describe_workflow {self.name!r} for the schema") from None
        data = parsed.model_dump(mode="json")
        return {**data, **self.fixed_input}


class Catalog:
    """The registry, services and workflows an MCP server offers.

    Args:
        registry: Handlers of every workflow's steps.
        workflows: The workflows agents may start (names must be unique).
        services: Resources handed to handlers (``--services`` replaces them).
        clock: The engine's clock (simulated worlds bring their own).
    """

    def __init__(
        self,
        registry: Registry,
        workflows: Iterable[Workflow],
        *,
        services: Mapping[str, Any] | None = None,
        clock: Any = None,
    ) -> None:
        self.registry = registry
        self.services: dict[str, Any] = dict(services or {})
        self.clock = clock
        self._workflows: dict[str, Workflow] = {}
        for wf in workflows:
            if wf.name in self._workflows:
                raise ConfigError(f"workflow {wf.name!r} is in the catalog twice; give each "
                                  "saga its own workflow name")
            self._workflows[wf.name] = wf

    @property
    def names(self) -> list[str]:
        """Workflow names, sorted."""
        return sorted(self._workflows)

    def workflows(self) -> Sequence[Workflow]:
        """Every workflow, by name."""
        return [self._workflows[n] for n in self.names]

    def get(self, name: str) -> Workflow:
        """The workflow called ``name``.

        Raises:
            ConfigError: No such workflow (the message lists them).
        """
        try:
            return self._workflows[name]
        except KeyError:
            raise ConfigError(f"no workflow {name!r}; list_workflows names those you may "
                              "start") from None


def describe_errors(exc: ValidationError) -> str:
    """Pydantic errors as one line: ``field: problem`` pairs, no library links."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "not an accepted argument"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)

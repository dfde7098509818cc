"""Handlers registered by name, so any process can execute a stored plan.

A registry maps names to callables of seven kinds. A domain operation that knows
its action, compensation, probe, preconditions and cost (the narrow protocol
:class:`Operation`) registers all of them at once with :meth:`Registry.register`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

from .errors import PlanError
from .model import Step

__all__ = ["HandlerKind", "Operation", "Registry"]

F = TypeVar("F", bound=Callable[..., Any])


class HandlerKind(StrEnum):
    """The kinds of registered callables."""

    ACTION = "action"
    COMPENSATION = "compensation"
    PROBE = "probe"
    PRECONDITION = "precondition"
    COST = "cost"
    PREDICATE = "predicate"
    SNAPSHOT = "snapshot"


@runtime_checkable
class Operation(Protocol):
    """One side effect and everything needed to govern it.

    ``execute`` is required, and ``compensate`` for anything reversible.
    ``probe``, ``preconditions`` and ``estimate_cost`` are optional: define them
    on the class when the domain can answer them. Methods may be plain or
    ``async``.
    """

    name: str

    def execute(self, ctx: Any) -> Any:
        """Do the effect; return JSON-serialisable data."""
        ...

    def compensate(self, ctx: Any) -> Any:
        """Undo or neutralise the effect; 'nothing to undo' is success."""
        ...


class Registry:
    """Named actions, compensations, probes, preconditions, costs, predicates, snapshots.

    Decorators work bare (``@registry.action``) or called
    (``@registry.action("ledger.debit")``); the name defaults to the function's
    qualified module path and name.
    """

    def __init__(self) -> None:
        self._handlers: dict[HandlerKind, dict[str, Callable[..., Any]]] = {
            kind: {} for kind in HandlerKind
        }
        self._operations: dict[str, Operation] = {}
        self.version = 0
        """Bumped on every registration, so cached validations know to redo."""

    # -- registration -----------------------------------------------------------------
    def add(self, kind: HandlerKind | str, name: str, fn: Callable[..., Any]) -> None:
        """Register ``fn`` as a handler of ``kind`` under ``name``.

        Raises:
            PlanError: The name is taken by a different callable, or ``fn`` is
                not callable.
        """
        kind = HandlerKind(kind)
        if not callable(fn):
            raise PlanError(
                f"cannot register {kind} {name!r}: {fn!r} is not callable; "
                "pass a function or bound method"
            )
        if not name or not isinstance(name, str):
            raise PlanError(f"cannot register {kind} {fn!r}: the name must be a non-empty string")
        existing = self._handlers[kind].get(name)
        if existing is not None and existing is not fn and existing != fn:
            raise PlanError(
                f"{kind} {name!r} is already registered to {_describe(existing)}; "
                "choose a different name or use a separate Registry"
            )
        self._handlers[kind][name] = fn
        self.version += 1

    @overload
    def action(self, name_or_fn: F) -> F: ...
    @overload
    def action(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def action(self, name_or_fn: Any = None) -> Any:
        """Register an action (``fn(ctx: StepContext) -> JSON``)."""
        return self._decorator(HandlerKind.ACTION, name_or_fn)

    @overload
    def compensation(self, name_or_fn: F) -> F: ...
    @overload
    def compensation(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def compensation(self, name_or_fn: Any = None) -> Any:
        """Register a compensation (``fn(ctx: StepContext) -> JSON``)."""
        return self._decorator(HandlerKind.COMPENSATION, name_or_fn)

    @overload
    def probe(self, name_or_fn: F) -> F: ...
    @overload
    def probe(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def probe(self, name_or_fn: Any = None) -> Any:
        """Register a probe (``fn(ctx) -> Probe`` or ``(Probe, result)``)."""
        return self._decorator(HandlerKind.PROBE, name_or_fn)

    @overload
    def precondition(self, name_or_fn: F) -> F: ...
    @overload
    def precondition(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def precondition(self, name_or_fn: Any = None) -> Any:
        """Register a compensation precondition (``fn(ctx) -> Check | bool``)."""
        return self._decorator(HandlerKind.PRECONDITION, name_or_fn)

    @overload
    def cost(self, name_or_fn: F) -> F: ...
    @overload
    def cost(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def cost(self, name_or_fn: Any = None) -> Any:
        """Register a compensation cost estimator (``fn(ctx) -> CostEstimate``)."""
        return self._decorator(HandlerKind.COST, name_or_fn)

    @overload
    def predicate(self, name_or_fn: F) -> F: ...
    @overload
    def predicate(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def predicate(self, name_or_fn: Any = None) -> Any:
        """Register a consistency predicate (``fn(ctx: PredicateContext) -> Check | bool``)."""
        return self._decorator(HandlerKind.PREDICATE, name_or_fn)

    @overload
    def snapshot(self, name_or_fn: F) -> F: ...
    @overload
    def snapshot(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def snapshot(self, name_or_fn: Any = None) -> Any:
        """Register a state snapshot (``fn(ctx: SnapshotContext) -> dict``)."""
        return self._decorator(HandlerKind.SNAPSHOT, name_or_fn)

    def register(self, operation: Operation, name: str | None = None) -> Operation:
        """Register an :class:`Operation` under ``name`` (default ``operation.name``).

        Registers the action as ``name``, the compensation as
        ``name:compensate`` and, when defined, ``name:probe``,
        ``name:preconditions`` and ``name:cost``.
        """
        key: Any = name or getattr(operation, "name", None)
        if not isinstance(key, str) or not key:
            raise PlanError(
                f"cannot register operation {operation!r}: give it a 'name' attribute "
                "or pass name="
            )
        if not callable(getattr(operation, "execute", None)):
            raise PlanError(
                f"operation {key!r} has no execute() method; an Operation needs execute(ctx) "
                "and, unless it is irreversible, compensate(ctx)"
            )
        self.add(HandlerKind.ACTION, key, operation.execute)
        # An irreversible operation (solder paste, a final payment) has nothing to
        # compensate: its steps declare forward recovery or escalation instead.
        if callable(getattr(operation, "compensate", None)):
            self.add(HandlerKind.COMPENSATION, f"{key}:compensate", operation.compensate)
        optional = {
            "probe": (HandlerKind.PROBE, f"{key}:probe"),
            "preconditions": (HandlerKind.PRECONDITION, f"{key}:preconditions"),
            "estimate_cost": (HandlerKind.COST, f"{key}:cost"),
        }
        for attr, (kind, handler_name) in optional.items():
            hook = getattr(operation, attr, None)
            if callable(hook):
                self.add(kind, handler_name, hook)
        self._operations[key] = operation
        return operation

    def step(self, name: str, operation: str, **fields: Any) -> Step:
        """Build a :class:`Step` wired to a registered operation's handlers.

        Explicit ``fields`` override the conventions (e.g. extra preconditions).

        Raises:
            PlanError: No operation of that name is registered.
        """
        if operation not in self._operations:
            known = ", ".join(sorted(self._operations)) or "none"
            raise PlanError(
                f"step {name!r}: operation {operation!r} is not registered (known: {known}); "
                "call registry.register(op) first"
            )
        wired: dict[str, Any] = {"name": name, "action": operation}
        irreversible = str(fields.get("reversibility", "")) == "irreversible"
        if not irreversible and self.has(HandlerKind.COMPENSATION, f"{operation}:compensate"):
            wired["compensation"] = f"{operation}:compensate"
        if self.has(HandlerKind.PROBE, f"{operation}:probe"):
            wired["probe"] = f"{operation}:probe"
        if self.has(HandlerKind.PRECONDITION, f"{operation}:preconditions"):
            wired["preconditions"] = (f"{operation}:preconditions",)
        if self.has(HandlerKind.COST, f"{operation}:cost"):
            wired["cost"] = f"{operation}:cost"
        wired.update(fields)
        return Step(**wired)

    # -- lookup -----------------------------------------------------------------------
    def has(self, kind: HandlerKind | str, name: str) -> bool:
        """Whether a handler of ``kind`` is registered under ``name``."""
        return name in self._handlers[HandlerKind(kind)]

    def get(self, kind: HandlerKind | str, name: str) -> Callable[..., Any]:
        """Return the handler, or raise PlanError naming what is missing."""
        kind = HandlerKind(kind)
        try:
            return self._handlers[kind][name]
        except KeyError:
            raise PlanError(
                f"{kind} {name!r} is not registered; register it with "
                f"@registry.{kind}({name!r}) in the module this process imports",
                code="unregistered",
            ) from None

    def names(self, kind: HandlerKind | str) -> list[str]:
        """Registered names of one kind, sorted."""
        return sorted(self._handlers[HandlerKind(kind)])

    def merged(self, *others: Registry) -> Registry:
        """A new registry holding this one's handlers and those of ``others``."""
        out = Registry()
        for reg in (self, *others):
            for kind, table in reg._handlers.items():
                for name, fn in table.items():
                    out.add(kind, name, fn)
            out._operations.update(reg._operations)
        return out

    # -- internals --------------------------------------------------------------------
    def _decorator(self, kind: HandlerKind, name_or_fn: Any) -> Any:
        if callable(name_or_fn) and not isinstance(name_or_fn, str):
            fn = name_or_fn
            self.add(kind, _default_name(fn), fn)
            return fn
        if name_or_fn is not None and not isinstance(name_or_fn, str):
            raise PlanError(
                f"@registry.{kind}() takes a name string or nothing, got {name_or_fn!r}"
            )

        def wrap(fn: F) -> F:
            self.add(kind, name_or_fn or _default_name(fn), fn)
            return fn

        return wrap


def _default_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "handler"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def _describe(fn: Callable[..., Any]) -> str:
    try:
        source = inspect.getsourcefile(fn)
    except TypeError:
        source = None
    return f"{_default_name(fn)}" + (f" ({source})" if source else "")

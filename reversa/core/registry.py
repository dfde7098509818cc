"""Handlers registered by name, so any process can execute a stored plan.

A registry maps names to callables of ten kinds. A domain operation that knows
its action, compensation, probe, block, preconditions and cost (the narrow
protocol :class:`Operation`) registers all of them at once with
:meth:`Registry.register`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

from .context import StepContext
from .errors import PlanError
from .model import Step
from .sla import SLA

__all__ = ["HandlerKind", "Operation", "Registry"]

F = TypeVar("F", bound=Callable[..., Any])


class HandlerKind(StrEnum):
    """The kinds of registered callables."""

    ACTION = "action"
    COMPENSATION = "compensation"
    PROBE = "probe"
    BLOCK = "block"
    PRECONDITION = "precondition"
    COST = "cost"
    PREDICATE = "predicate"
    SNAPSHOT = "snapshot"
    RESOURCES = "resources"
    RECONCILE = "reconcile"


@runtime_checkable
class Operation(Protocol):
    """One side effect and everything needed to govern it: the effect boundary.

    Required: ``name`` and ``execute``. Optional hooks, defined on the class when
    the domain can answer them (plain or ``async``, each taking the
    :class:`~reversa.core.context.StepContext`):

    - ``compensate(ctx)``: undo or neutralise the effect named by
      ``ctx.action_key``; "nothing to undo" is success. Absent: irreversible.
    - ``probe(ctx)``: did the effect with ``ctx.action_key`` happen? Returns a
      :class:`~reversa.core.context.Probe`, or ``(Probe.HAPPENED, result)``.
    - ``block(ctx)``: make the effect with ``ctx.action_key`` unable to happen
      from now on (tombstone the key at the service), atomically with checking
      whether it already happened; returns ``Probe.NOT_HAPPENED`` when it is now
      blocked, or ``Probe.HAPPENED`` (optionally with the result) when it had
      happened. Without it, the engine cannot record an in-doubt step as
      "never happened": it escalates instead. Set ``cannot_block = "<why>"`` to
      say so explicitly (the reason goes into the escalation).
    - ``preconditions(ctx)``: checks the compensation needs (``Check`` or list).
    - ``estimate_cost(ctx)``: ``CostEstimate`` (or a list) of the compensation.
    - ``resources(ctx)``: the :class:`~reversa.core.resources.Resource` objects
      the step acts on (links across sagas, holds during escalation).
    - ``reconcile(ctx)``: does the service still agree with the record? Called
      with ``ctx.phase`` ``action`` for a completed step (its effect must
      stand) and ``compensation`` for a compensated one (the compensation must
      stand); returns a ``Check``.

    An operation may also carry ``compensation_sla`` (a
    :class:`~reversa.core.sla.SLA`): what its compensation endpoint promises.

    Every call an operation makes to a service carries ``ctx.fence`` (the saga's
    lease epoch) and its idempotency key, so the service can refuse stale and
    blocked calls (see :mod:`reversa.core.fencing`).
    """

    name: str

    def execute(self, ctx: StepContext) -> Any:
        """Do the effect under ``ctx.idempotency_key``; return JSON-serialisable data."""
        ...


OPTIONAL_HOOKS: dict[str, tuple[HandlerKind, str]] = {
    "compensate": (HandlerKind.COMPENSATION, "compensate"),
    "probe": (HandlerKind.PROBE, "probe"),
    "block": (HandlerKind.BLOCK, "block"),
    "preconditions": (HandlerKind.PRECONDITION, "preconditions"),
    "estimate_cost": (HandlerKind.COST, "cost"),
    "resources": (HandlerKind.RESOURCES, "resources"),
    "reconcile": (HandlerKind.RECONCILE, "reconcile"),
}
"""Hook attribute -> (handler kind, registered-name suffix) of an Operation."""

_KNOWN_ATTRS = frozenset({"name", "execute", "cannot_block", "compensation_sla",
                          *OPTIONAL_HOOKS})


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
        self._slas: dict[str, SLA] = {}
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
    def block(self, name_or_fn: F) -> F: ...
    @overload
    def block(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def block(self, name_or_fn: Any = None) -> Any:
        """Register a block (``fn(ctx) -> Probe``): tombstone ``ctx.action_key`` at the
        service unless it already happened (see :class:`Operation`)."""
        return self._decorator(HandlerKind.BLOCK, name_or_fn)

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

    @overload
    def resources(self, name_or_fn: F) -> F: ...
    @overload
    def resources(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def resources(self, name_or_fn: Any = None) -> Any:
        """Register a resources hook (``fn(ctx) -> Resource | list[Resource]``)."""
        return self._decorator(HandlerKind.RESOURCES, name_or_fn)

    @overload
    def reconcile(self, name_or_fn: F) -> F: ...
    @overload
    def reconcile(self, name_or_fn: str | None = None) -> Callable[[F], F]: ...
    def reconcile(self, name_or_fn: Any = None) -> Any:
        """Register a reconciliation check (``fn(ctx) -> Check | bool``)."""
        return self._decorator(HandlerKind.RECONCILE, name_or_fn)

    def declare_sla(self, compensation: str, sla: SLA) -> None:
        """Record what the endpoint behind ``compensation`` promises (its SLA).

        Reversa measures every call of that compensation against it (``reversa
        sla report``) and uses breaches in the continuous feasibility check.

        Raises:
            PlanError: ``sla`` is not an :class:`~reversa.core.sla.SLA`.
        """
        if not isinstance(sla, SLA):
            raise PlanError(f"declare_sla({compensation!r}, ...) needs an SLA, got {sla!r}")
        self._slas[compensation] = sla
        self.version += 1

    def sla(self, compensation: str) -> SLA | None:
        """The SLA declared for ``compensation``, if any."""
        return self._slas.get(compensation)

    def register(self, operation: Operation, name: str | None = None) -> Operation:
        """Register an :class:`Operation` under ``name`` (default ``operation.name``).

        Registers the action as ``name``, the compensation as
        ``name:compensate`` and, when defined, ``name:probe``, ``name:block``,
        ``name:preconditions``, ``name:cost``, ``name:resources`` and
        ``name:reconcile``; a ``compensation_sla`` is declared for
        ``name:compensate``.

        Raises:
            PlanError: No ``execute``, or a public method whose name is close to a
                hook's but not it (``probes``, ``compensation``...): a misspelt
                hook would silently never run.
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
        _reject_misspelt_hooks(key, operation)
        self.add(HandlerKind.ACTION, key, operation.execute)
        # An irreversible operation (solder paste, a final payment) has nothing to
        # compensate: its steps declare forward recovery or escalation instead.
        for attr, (kind, suffix) in OPTIONAL_HOOKS.items():
            hook = getattr(operation, attr, None)
            if callable(hook):
                self.add(kind, f"{key}:{suffix}", hook)
        sla = getattr(operation, "compensation_sla", None)
        if sla is not None and callable(getattr(operation, "compensate", None)):
            self.declare_sla(f"{key}:compensate", sla)
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
        if self.has(HandlerKind.BLOCK, f"{operation}:block"):
            wired["block"] = f"{operation}:block"
        if self.has(HandlerKind.PRECONDITION, f"{operation}:preconditions"):
            wired["preconditions"] = (f"{operation}:preconditions",)
        if self.has(HandlerKind.COST, f"{operation}:cost"):
            wired["cost"] = f"{operation}:cost"
        if self.has(HandlerKind.RESOURCES, f"{operation}:resources"):
            wired["resources"] = f"{operation}:resources"
        if self.has(HandlerKind.RECONCILE, f"{operation}:reconcile"):
            wired["reconcile"] = f"{operation}:reconcile"
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

    def operation(self, name: str) -> Operation | None:
        """The operation registered under ``name`` with :meth:`register`, if any."""
        return self._operations.get(name)

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
            out._slas.update(reg._slas)
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


def _reject_misspelt_hooks(key: str, operation: Any) -> None:
    for attr in dir(operation):
        if attr.startswith("_") or attr in _KNOWN_ATTRS:
            continue
        if not callable(getattr(operation, attr, None)):
            continue
        close = difflib.get_close_matches(attr, list(OPTIONAL_HOOKS), n=1, cutoff=0.75)
        if close:
            raise PlanError(
                f"operation {key!r} defines {attr}() which is not a hook; did you mean "
                f"{close[0]}()? (hooks: {', '.join(OPTIONAL_HOOKS)}; rename helpers with a "
                "leading underscore)")


def _default_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "handler"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def _describe(fn: Callable[..., Any]) -> str:
    try:
        source = inspect.getsourcefile(fn)
    except TypeError:
        source = None
    return f"{_default_name(fn)}" + (f" ({source})" if source else "")

"""What handlers receive and return.

Handlers are plain or async callables registered by name. They get a context
object and return JSON-serialisable data (or one of the small result types
below). Keep them free of module-level state: resources such as clients come
through ``ctx.services``, handed to the engine once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from .clock import Clock
from .errors import ConfigError, PermanentError
from .states import Phase

T = TypeVar("T")
_REQUIRED: Any = object()

__all__ = [
    "Check",
    "CostEstimate",
    "EffectJournal",
    "FENCE_HEADER",
    "Fence",
    "JournalRecord",
    "PredicateContext",
    "Probe",
    "SnapshotContext",
    "StepContext",
]


class Probe(StrEnum):
    """A probe's answer to "did the effect with this idempotency key happen?"."""

    HAPPENED = "happened"
    NOT_HAPPENED = "not_happened"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Check:
    """Result of a precondition or consistency predicate.

    Attributes:
        ok: Whether it holds.
        reason: Human-readable explanation (shown in dry-runs and reports).
        detail: JSON-serialisable evidence.
    """

    ok: bool
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """Estimated cost of a compensation before it runs (AG-384 advanced level).

    Attributes:
        amount: Estimated cost in ``unit``.
        unit: Currency code, ``"gas"``, ``"s"``...
        detail: Breakdown (VWAP, spread, fees, slippage...).
        acceptable: False when the adapter's own policy rejects the cost.
        reason: Why it is (not) acceptable.
        kind: What the cost is, for the overhead breakdown: ``fx`` (spread,
            slippage, rate move), ``gas``, ``fee``, ``token``... (default
            ``compensation``).
    """

    amount: float
    unit: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    acceptable: bool = True
    reason: str = ""
    kind: str = "compensation"


FENCE_HEADER = "Reversa-Fence"
"""HTTP header carrying :meth:`Fence.header` on every call to a fenced service."""


@dataclass(frozen=True, slots=True)
class Fence:
    """A fencing token: the saga's lease epoch, carried by every call to a service.

    Each takeover of a saga (a worker claiming it after its owner's lease lapsed,
    or the watchdog forcing it) bumps the epoch. A service that remembers the
    highest epoch it has seen per saga and refuses lower ones keeps a paused or
    partitioned former owner from changing the world after the new owner took
    over (Kleppmann's fencing tokens). :class:`FenceGate` is that check.

    Attributes:
        saga_id: The saga the call belongs to.
        epoch: The lease epoch of the process making the call.
    """

    saga_id: str
    epoch: int

    def header(self) -> str:
        """``<saga_id>;<epoch>``: the form HTTP services receive in ``Reversa-Fence``."""
        return f"{self.saga_id};{self.epoch}"

    @classmethod
    def parse(cls, text: str) -> Fence:
        """Inverse of :meth:`header`.

        Raises:
            ValueError: ``text`` is not ``<saga_id>;<epoch>``.
        """
        saga_id, sep, epoch = text.rpartition(";")
        if not sep or not saga_id or not epoch.isdigit():
            raise ValueError(f"not a fencing token: {text!r} (expected '<saga_id>;<epoch>')")
        return cls(saga_id, int(epoch))


@dataclass(frozen=True, slots=True)
class StepContext:
    """Everything an action, compensation, probe, block, precondition or estimator sees.

    The engine builds it; operations read what they need from it and nothing
    else: parameters through :meth:`param`, services through :meth:`service`,
    keys from :attr:`idempotency_key` / :attr:`action_key`, and the fencing
    token from :attr:`fence`, which every call to a service must carry.

    Attributes:
        saga_id: The saga's id.
        workflow: The saga's workflow name.
        step: This step's name.
        phase: Which call this is (action, compensation, forward recovery...).
        attempt: 1-based attempt number of this call.
        idempotency_key: Stable for (saga, step, phase): the same on every retry
            and after a crash, so the remote side can deduplicate.
        action_key: The key of this step's forward call: what a compensation,
            probe or block names when it asks about, undoes or blocks the effect.
        fencing_token: The saga's lease epoch (see :class:`Fence`).
        input: The saga's input.
        params: This step's static parameters from the plan, unresolved (use
            :meth:`param` to read them with references resolved).
        results: Results of the steps this step depends on (directly or not),
            by step name. Only those: a step reads what it declared it consumes.
        result: This step's own action result (compensation phase), else None.
        pre_state: Snapshot taken before step 1, if the saga declares one.
        deadline: Absolute clock time by which this call must finish, if any.
        clock: The engine's clock.
        services: Resources the engine was given (clients, simulators...).
        generation: The checkpoint-resume generation of this step's effect (0
            unless a resume re-ran the step); its keys carry it.
        journal: The saga store's effect journal (write-ahead records of what an
            operation sent, e.g. signed transactions), fenced by this saga's lease.
        consumed: What :meth:`consumes` declared during this call.
    """

    saga_id: str
    workflow: str
    step: str
    phase: Phase
    attempt: int
    idempotency_key: str
    input: Mapping[str, Any]
    params: Mapping[str, Any]
    results: Mapping[str, Any]
    result: Any
    pre_state: Mapping[str, Any] | None
    deadline: float | None
    clock: Clock
    services: Mapping[str, Any]
    generation: int = 0
    action_key: str = ""
    fencing_token: int = 0
    journal: EffectJournal | None = None
    consumed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fence(self) -> Fence:
        """The fencing token to send with every call to a service."""
        return Fence(self.saga_id, self.fencing_token)

    def key_for(self, phase: Phase | str) -> str:
        """The idempotency key this step uses in another phase (this generation)."""
        return idempotency_key(self.saga_id, self.step, str(phase), self.generation)

    def service(self, name: str, kind: type[T] | None = None) -> T:
        """The service registered as ``name``, checked to be a ``kind`` when given.

        Raises:
            ConfigError: It is missing, or of the wrong type; the message names
                the fix.
        """
        return lookup_service(self.services, name, kind, where=f"step {self.step!r}")

    def param(self, name: str, default: Any = _REQUIRED) -> Any:
        """A step parameter with ``$input.…`` / ``$results.<step>.…`` references resolved.

        Raises:
            PermanentError: The parameter is required and absent, or a reference
                does not resolve.
        """
        if name not in self.params:
            if default is _REQUIRED:
                raise PermanentError(
                    f"step {self.step!r} needs parameter {name!r}; add it to the step's params",
                    code="bad_param")
            return default
        return resolve_refs(self.params[name], self.input, self.results, where=self.step)

    def consumes(self, saga_id: str, step: str | None = None, *, reason: str = "") -> None:
        """Declare that this action consumes an effect of another saga.

        Use it when the resources cannot show the dependency (the funding saga's
        id arrives in this saga's input, say). The engine records the link in
        both sagas' chains and in ``reversa_links`` when the action completes;
        rolling ``saga_id`` back then assesses this saga first (see
        :class:`~reversa.core.model.OnDependents`).

        Args:
            saga_id: The saga whose effect is consumed.
            step: Its step whose effect is consumed (None: any of its effects).
            reason: Why, in words (kept with the link).

        Raises:
            ConfigError: ``saga_id`` is empty or this saga itself.
        """
        if not saga_id or saga_id == self.saga_id:
            raise ConfigError(f"step {self.step!r}: ctx.consumes() needs another saga's id, "
                              f"got {saga_id!r}")
        self.consumed.append({"saga": str(saga_id), "step": step, "reason": reason})

    def require_journal(self) -> EffectJournal:
        """The effect journal, or a ConfigError when the engine provided none."""
        if self.journal is None:
            raise ConfigError(
                f"step {self.step!r} needs the effect journal, which only the engine provides; "
                "run it through Engine.run (or give the context a journal in tests)")
        return self.journal


@dataclass(frozen=True, slots=True)
class SnapshotContext:
    """What a snapshot function sees."""

    saga_id: str
    workflow: str
    input: Mapping[str, Any]
    results: Mapping[str, Any]
    services: Mapping[str, Any]
    clock: Clock

    def service(self, name: str, kind: type[T] | None = None) -> T:
        """The service registered as ``name`` (see :meth:`StepContext.service`)."""
        return lookup_service(self.services, name, kind, where=f"snapshot of {self.workflow!r}")


@dataclass(frozen=True, slots=True)
class PredicateContext:
    """What a consistency predicate sees after a rollback.

    Attributes:
        pre_state: Snapshot taken before step 1 (None if no snapshot declared).
        post_state: Snapshot taken after the rollback.
        checkpoint: Name of the checkpoint rolled back to, or None for a full
            rollback.
        results: Results of steps that remain in effect.
        checkpoint_state: Snapshot taken when the checkpoint step completed.
    """

    saga_id: str
    workflow: str
    input: Mapping[str, Any]
    pre_state: Mapping[str, Any] | None
    post_state: Mapping[str, Any] | None
    checkpoint: str | None
    results: Mapping[str, Any]
    services: Mapping[str, Any]
    clock: Clock
    checkpoint_state: Mapping[str, Any] | None = None

    def service(self, name: str, kind: type[T] | None = None) -> T:
        """The service registered as ``name`` (see :meth:`StepContext.service`)."""
        return lookup_service(self.services, name, kind, where=f"predicate of {self.workflow!r}")


@functools.lru_cache(maxsize=8192)
def idempotency_key(saga_id: str, step: str, phase: str, generation: int = 0) -> str:
    """The one key format: ``rv:<saga>:<step>:<phase>[#<generation>]``.

    Components are escaped (``%`` plus two hex digits for anything outside
    ``[A-Za-z0-9._-]``), so no two (saga, step) pairs share a key: saga ``a:b``
    step ``c`` and saga ``a`` step ``b:c`` differ. A checkpoint resume re-runs a
    step as a new effect, so every key of a re-run step carries
    ``#<generation>``: its action, and the compensation that undoes that action
    (a service answers a reused undo key as a replay and would undo nothing).
    Operations never build keys: they read them from the context.
    """
    key = f"rv:{_escape(saga_id)}:{_escape(step)}:{_escape(phase)}"
    return f"{key}#{generation}" if generation else key


def key_prefix(saga_id: str, step: str | None = None) -> str:
    """What every key of ``saga_id`` (or of its ``step``) starts with, and no other key does.

    For services that list effects by id prefix (a ledger's transfers of one saga,
    a safe-state action cancelling only this saga's payments). Built by the same
    escaping as :func:`idempotency_key`, so saga ``a`` never matches saga ``a:b``'s
    keys and step ``b`` never matches step ``b:c``'s.
    """
    prefix = f"rv:{_escape(saga_id)}:"
    return prefix if step is None else f"{prefix}{_escape(step)}:"


def _escape(component: str) -> str:
    # Per-step hot path: most ids and names need no escaping at all.
    if _PLAIN.fullmatch(component):
        return component
    return quote(component, safe="._-")


_PLAIN = re.compile(r"[A-Za-z0-9._\-]*")


def lookup_service(services: Mapping[str, Any], name: str, kind: type[T] | None,
                   *, where: str) -> T:
    """``services[name]`` checked against ``kind``; ConfigError naming the fix."""
    found = services.get(name)
    if found is None:
        known = ", ".join(sorted(services)) or "none"
        raise ConfigError(
            f"{where}: service {name!r} is missing (known: {known}); pass it to "
            f"Engine(services={{{name!r}: ...}}) or the worker's --services factory")
    if kind is not None and not isinstance(found, kind):
        raise ConfigError(
            f"{where}: service {name!r} is a {type(found).__name__}, not a {kind.__name__}; "
            "register the right client under that name")
    return found  # type: ignore[no-any-return]


def resolve_refs(value: Any, input: Mapping[str, Any], results: Mapping[str, Any],
                 *, where: str) -> Any:
    """Resolve the one reference dialect inside a parameter value.

    ``"$input.a.b"`` reads the saga input, ``"$results.<step>.a"`` an earlier
    step's result (the step must be among the dependencies: the plan validator
    checks it). Lists and dicts are resolved element by element; ``"$$..."`` is
    the literal string ``"$..."``.
    """
    if isinstance(value, str):
        if value.startswith("$$"):
            return value[1:]
        if not value.startswith("$"):
            return value
        root, path = parse_ref(value)
        if root == "input":
            current: Any = input
            parts = path
        else:
            if path[0] not in results:
                raise PermanentError(
                    f"step {where!r}: {value!r} refers to step {path[0]!r}, which has no "
                    "result in effect (has it run? does this step depend on it?)",
                    code="bad_param")
            current, parts = results[path[0]], path[1:]
        for part in parts:
            if isinstance(current, Mapping) and part in current:
                current = current[part]
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                raise PermanentError(
                    f"step {where!r}: {value!r}: {part!r} is missing; check the saga input or "
                    "the earlier step's result", code="bad_param")
        return current
    if isinstance(value, Mapping):
        return {k: resolve_refs(v, input, results, where=where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_refs(v, input, results, where=where) for v in value]
    return value


def parse_ref(text: str) -> tuple[str, list[str]]:
    """Split ``$input.a.b`` / ``$results.step.a`` into its root and path.

    Raises:
        PermanentError: Not a reference in the dialect.
    """
    root, _, rest = text[1:].partition(".")
    parts = rest.split(".") if rest else []
    if root not in ("input", "results") or (root == "results" and not parts):
        raise PermanentError(
            f"parameter reference {text!r}: use $input.<key> or $results.<step>.<key> "
            "(write $$ for a literal $)", code="bad_param")
    return root, parts


def iter_refs(value: Any) -> Iterator[str]:
    """Every reference string inside a parameter value (for plan validation)."""
    if isinstance(value, str):
        if value.startswith("$") and not value.startswith("$$"):
            yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from iter_refs(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from iter_refs(v)


class EffectJournal(Protocol):
    """Write-ahead records of what operations sent, kept in the saga store.

    An operation that must remember an effect before making it (a signed
    transaction before broadcast) writes it here; a probe, block or
    compensation in any process reads it back by key. Writes commit at once
    and are fenced: a process that lost the saga's lease cannot write, so it
    cannot go on to send what it would have journaled.
    """

    def get(self, key: str) -> JournalRecord | None:
        """The record stored under ``key``, if any."""
        ...

    def put(self, record: JournalRecord) -> None:
        """Insert or replace ``record`` (durable before returning).

        Raises:
            LeaseLost: This process no longer holds the saga's lease.
            Fenced: The key was blocked (tombstoned) by a rollback.
        """
        ...

    def max_seq(self, kind: str, ref: str) -> int | None:
        """Highest ``seq`` among active records of ``kind`` for ``ref`` (e.g. a nonce)."""
        ...

    def block(self, key: str) -> JournalRecord | None:
        """Atomically return the record under ``key``, or tombstone the key so that a
        later :meth:`put` under it fails (raises ``Fenced``)."""
        ...


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One journal entry.

    Attributes:
        key: Unique key (usually the call's idempotency key plus a label).
        kind: What it records (``"evm.tx"``...), for queries.
        ref: What it is about (a sender address...), for queries.
        seq: A number to query the maximum of per (kind, ref) (a nonce...).
        active: False once superseded or refused (excluded from ``max_seq``).
        data: The record itself, JSON-serialisable; never key material.
    """

    key: str
    kind: str
    ref: str
    seq: int | None
    active: bool
    data: Mapping[str, Any]

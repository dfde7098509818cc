"""Validate a saga definition into an immutable, hashed :class:`Plan`.

Validation runs before anything executes (AG-166 4.1, AG-384 4.1/4.11) and
rejects, with an error naming the step and the fix: unknown or duplicate step
names, a dependency cycle, an unregistered handler, a reversible step without a
compensation, an irreversible step with neither forward recovery nor escalation
policy, and a saga with no consistency predicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .canonical import canonical_json, sha256_hex
from .context import iter_refs, parse_ref
from .errors import PlanError, PlanTampered, StepError
from .model import Reversibility, Saga, Step
from .registry import HandlerKind, Registry
from .sensitive import Paths, compile_paths

__all__ = ["Plan", "validate", "verify_stored"]

PLAN_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated saga with its dependency order, canonical form and hash.

    Attributes:
        saga: The definition.
        order: Step names in a deterministic topological order (forward order).
        levels: Forward dependency levels; compensation runs them reversed,
            steps inside one level concurrently.
        canonical: Canonical JSON of the plan (what is stored).
        hash: SHA-256 of ``canonical``.
        redact_input: Declared-sensitive input paths (kept as digests when stored).
        redact_results: Declared-sensitive result paths, per step.
    """

    saga: Saga
    order: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    canonical: str
    hash: str
    closure: dict[str, frozenset[str]]
    steps_by_name: dict[str, Step]
    ancestors: dict[str, frozenset[str]]
    redact_input: Paths = ()
    redact_results: dict[str, Paths] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        """The step called ``name``."""
        return self.steps_by_name[name]

    def dependents(self, name: str) -> list[str]:
        """Steps that directly depend on ``name``."""
        return [s.name for s in self.saga.steps if name in s.depends_on]

    def descendants(self, name: str) -> frozenset[str]:
        """All steps that transitively depend on ``name``."""
        return self.closure[name]

    def upstream(self, name: str) -> frozenset[str]:
        """All steps ``name`` depends on, directly or not (whose results it may read)."""
        return self.ancestors[name]

    @classmethod
    def from_json(cls, text: str, registry: Registry | None = None) -> Plan:
        """Rebuild a plan from its stored canonical JSON.

        A registry, when given, is checked so a worker learns at once that it
        cannot run this plan. The plan's ``hash`` is that of ``text`` itself; use
        :func:`verify_stored` before executing a plan read from a database.
        """
        import json

        data = json.loads(text)
        if data.get("format") != PLAN_FORMAT:
            raise PlanError(
                f"stored plan has format {data.get('format')!r}; this Reversa reads format "
                f"{PLAN_FORMAT}. Upgrade Reversa on this worker."
            )
        saga = Saga.model_validate(data["saga"])
        plan = validate(saga, registry) if registry is not None else _build(saga)
        if plan.canonical != text:
            # Keep what was stored and hashed: the text is the record.
            from dataclasses import replace

            plan = replace(plan, canonical=text, hash=sha256_hex(text))
        return plan


def verify_stored(saga_id: str, text: str, stored_hash: str, chain_anchor: str | None) -> None:
    """Check a stored plan before anything executes it.

    The stored canonical JSON is re-hashed and compared with the hash stored
    beside it and with the hash the saga's audit chain starts from (entry 1
    chains to the plan hash recorded before step 1). Editing the plan, with or
    without recomputing ``plan_hash``, breaks one of the two.

    Raises:
        PlanTampered: Either comparison fails; nothing may run from this plan.
    """
    actual = sha256_hex(text)
    if actual != stored_hash:
        raise PlanTampered(
            f"saga {saga_id}: plan tampered: the stored plan hashes to {actual[:16]}… but its "
            f"recorded hash is {stored_hash[:16]}…; no handler runs from it",
            details={"saga": saga_id, "actual": actual, "stored": stored_hash})
    if chain_anchor is not None and chain_anchor != stored_hash:
        raise PlanTampered(
            f"saga {saga_id}: plan tampered: the audit chain starts from plan hash "
            f"{chain_anchor[:16]}… but the stored plan hashes to {actual[:16]}…; no handler "
            "runs from it", details={"saga": saga_id, "actual": actual, "anchor": chain_anchor})


def validate(saga: Saga, registry: Registry) -> Plan:
    """Validate ``saga`` against ``registry`` and return its :class:`Plan`.

    Raises:
        PlanError: The first problem found, naming the step and the fix. All
            problems are listed in ``error.details["problems"]``.
    """
    problems: list[str] = []
    names = [s.name for s in saga.steps]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f"step {name!r} is defined twice; step names must be unique")
        seen.add(name)
    for step in saga.steps:
        problems.extend(_check_step(step, seen, registry))
    if not problems:
        problems.extend(_check_refs(saga))
    problems.extend(_check_saga(saga, registry))
    if not problems:
        try:
            return _build(saga)
        except PlanError as exc:
            problems.append(exc.message)
    raise PlanError(
        f"saga {saga.workflow!r} is invalid: {problems[0]}"
        + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""),
        details={"problems": problems},
    )


def _check_step(step: Step, known: set[str], registry: Registry) -> Iterable[str]:
    where = f"step {step.name!r}"
    for dep in step.depends_on:
        if dep not in known:
            yield f"{where} depends on unknown step {dep!r}; fix the name or add that step"
        if dep == step.name:
            yield f"{where} depends on itself; remove it from depends_on"
    yield from _missing(registry, HandlerKind.ACTION, step.action, f"{where} action")
    if step.compensation is not None:
        yield from _missing(
            registry, HandlerKind.COMPENSATION, step.compensation, f"{where} compensation"
        )
    for pre in step.preconditions:
        yield from _missing(registry, HandlerKind.PRECONDITION, pre, f"{where} precondition")
    if step.probe is not None:
        yield from _missing(registry, HandlerKind.PROBE, step.probe, f"{where} probe")
    if step.block is not None:
        yield from _missing(registry, HandlerKind.BLOCK, step.block, f"{where} block")
    if step.cost is not None:
        yield from _missing(registry, HandlerKind.COST, step.cost, f"{where} cost estimator")
    if step.forward_recovery is not None:
        yield from _missing(
            registry, HandlerKind.ACTION, step.forward_recovery, f"{where} forward recovery"
        )
    if step.reversibility is Reversibility.IRREVERSIBLE:
        if step.forward_recovery is None and step.escalation is None:
            yield (
                f"{where} is irreversible but declares neither forward_recovery nor "
                "escalation; add forward_recovery='<registered action>' or "
                "escalation=Escalation(reason=...) (AG-384 4.7)"
            )
        if step.compensation is not None:
            yield (
                f"{where} is irreversible yet declares a compensation; mark it "
                "partially_reversible with a semantic compensation, or drop the compensation"
            )
    elif step.compensation is None:
        yield (
            f"{where} is {step.reversibility} but has no compensation; register one and set "
            "compensation='<name>', or declare reversibility=Reversibility.IRREVERSIBLE "
            "with forward_recovery or escalation"
        )


def _check_saga(saga: Saga, registry: Registry) -> Iterable[str]:
    where = f"saga {saga.workflow!r}"
    if saga.snapshot is None and saga.predicate is None:
        yield (
            f"{where} declares no consistency predicate; set predicate='<registered "
            "predicate>' and/or snapshot='<registered snapshot>' (AG-384 4.3)"
        )
    if saga.snapshot is not None:
        yield from _missing(registry, HandlerKind.SNAPSHOT, saga.snapshot, f"{where} snapshot")
    if saga.predicate is not None:
        yield from _missing(registry, HandlerKind.PREDICATE, saga.predicate, f"{where} predicate")
    if saga.safe_state is not None:
        yield from _missing(registry, HandlerKind.ACTION, saga.safe_state, f"{where} safe_state")
    names = {s.name for s in saga.steps}
    for path in saga.sensitive:
        if path.startswith("$results."):
            step = path[len("$results."):].partition(".")[0]
            if step not in names:
                yield (f"{where} declares sensitive path {path!r} of unknown step {step!r}; "
                       "fix the step name")
    for unit, limit in saga.max_rollback_cost.items():
        if limit < 0:
            yield f"{where} max_rollback_cost[{unit!r}] is negative; use a limit >= 0"


def _check_refs(saga: Saga) -> Iterable[str]:
    """A step may read only the results of steps it depends on (directly or not)."""
    try:
        ancestors = _ancestors(saga)
    except PlanError:
        return  # the cycle is reported by _build
    for step in saga.steps:
        for ref in iter_refs(step.params):
            try:
                root, path = parse_ref(ref)
            except StepError as exc:
                yield f"step {step.name!r}: {exc.message}"
                continue
            if root == "results" and path[0] not in ancestors[step.name]:
                yield (f"step {step.name!r} reads {ref!r} but does not depend on step "
                       f"{path[0]!r}; add it to depends_on (a step consumes only what it "
                       "depends on, so rollback order and recovery stay correct)")


def _ancestors(saga: Saga) -> dict[str, frozenset[str]]:
    """Transitive dependencies of every step."""
    deps = {s.name: set(s.depends_on) for s in saga.steps}
    out: dict[str, frozenset[str]] = {}

    def visit(name: str, trail: tuple[str, ...]) -> frozenset[str]:
        if name in out:
            return out[name]
        if name in trail:
            raise PlanError(f"steps {list(trail)} form a dependency cycle")
        found: set[str] = set()
        for dep in deps.get(name, ()):
            if dep in deps:
                found.add(dep)
                found |= visit(dep, (*trail, name))
        out[name] = frozenset(found)
        return out[name]

    for name in deps:
        visit(name, ())
    return out


def _missing(registry: Registry, kind: HandlerKind, name: str, what: str) -> Iterable[str]:
    if not registry.has(kind, name):
        yield (
            f"{what} {name!r} is not a registered {kind}; register it with "
            f"@registry.{kind}({name!r})"
        )


def _build(saga: Saga) -> Plan:
    order, levels = _toposort(saga)
    body: dict[str, Any] = {"format": PLAN_FORMAT, "saga": _dump(saga)}
    text = canonical_json(body)
    redact_input, redact_results = compile_paths(
        saga.sensitive, [(s.name, s.sensitive) for s in saga.steps])
    return Plan(saga=saga, order=order, levels=levels, canonical=text, hash=sha256_hex(text),
                closure=_closure(saga), steps_by_name={s.name: s for s in saga.steps},
                ancestors=_ancestors(saga), redact_input=redact_input,
                redact_results=redact_results)


def _dump(saga: Saga) -> dict[str, Any]:
    # An empty ``sensitive`` is left out, so plans that declare none keep the
    # hashes they had before the field existed.
    data = saga.model_dump(mode="json")
    if data.get("services") is None:
        # Added after plans were first stored: leaving it out when unset keeps
        # every earlier plan's canonical text, and so its hash, unchanged.
        data.pop("services", None)
    if not data["sensitive"]:
        del data["sensitive"]
    for step in data["steps"]:
        if not step["sensitive"]:
            del step["sensitive"]
    return data


def _closure(saga: Saga) -> dict[str, frozenset[str]]:
    """Transitive dependents of every step (who must be undone before it)."""
    children: dict[str, list[str]] = {s.name: [] for s in saga.steps}
    for s in saga.steps:
        for dep in s.depends_on:
            children[dep].append(s.name)
    out: dict[str, frozenset[str]] = {}
    for name in children:
        seen: set[str] = set()
        frontier = list(children[name])
        while frontier:
            child = frontier.pop()
            if child not in seen:
                seen.add(child)
                frontier.extend(children[child])
        out[name] = frozenset(seen)
    return out


def _toposort(saga: Saga) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Kahn's algorithm by levels; ties keep declaration order (deterministic)."""
    position = {s.name: i for i, s in enumerate(saga.steps)}
    deps = {s.name: set(s.depends_on) for s in saga.steps}
    levels: list[tuple[str, ...]] = []
    done: set[str] = set()
    while len(done) < len(deps):
        ready = sorted(
            (n for n, d in deps.items() if n not in done and d <= done), key=position.__getitem__
        )
        if not ready:
            stuck = sorted((n for n in deps if n not in done), key=position.__getitem__)
            raise PlanError(
                f"steps {stuck} form a dependency cycle; remove one depends_on edge "
                "so the steps form a DAG"
            )
        levels.append(tuple(ready))
        done.update(ready)
    # Forward order: the earliest-declared ready step first, so a saga runs in
    # the order its author wrote whenever the DAG allows it.
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(deps):
        nxt = min((n for n, d in deps.items() if n not in placed and d <= placed),
                  key=position.__getitem__)
        order.append(nxt)
        placed.add(nxt)
    return tuple(order), tuple(levels)

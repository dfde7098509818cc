"""Event-sourced saga state: the audit log alone rebuilds a saga, at any time.

Every commit of a saga's state (``Writer.write``) attaches to its last audit
entry, under the reserved detail key ``_state``, what that commit changed: the
saga's fields and each changed step's fields, as values. The first commit
carries the saga's identity (workflow, plan hash, input, creation time,
origin). The log is therefore the record and the ``reversa_sagas`` /
``reversa_steps`` rows a projection of it, written in the same transaction:

- :func:`rebuild` folds a saga's entries into its state, up to any moment
  (``reversa sagas show ID --at TIME``: the state as it was then, read-only);
- :func:`differences` compares a rebuilt state with the rows (the test suite
  does so for every saga its core tests create).

The chain hashes each entry with its ``_state``, so the history cannot be
rewritten without breaking ``reversa audit verify``. The stored plan is not
copied into the log: entry 1 chains to the plan's hash, which binds it.

This complements the chain's *state records* (``reversa.core.evidence.records``):
those hold digests, so an auditor can check the rows against the chain; this
holds the values, so the chain alone can rebuild them. Fields declared
sensitive are redacted here exactly as in the rows.

What is not state: the lease columns (owner, token, expiry, heartbeat) and
``updated_at`` are bookkeeping of who may write next, not of the saga.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from math import isfinite
from typing import TYPE_CHECKING, Any

from .canonical import to_jsonable

if TYPE_CHECKING:
    from .live import LiveSaga, LiveStep

__all__ = ["STATE_KEY", "adopt", "differences", "rebuild", "saga_values_of_row", "state_change"]

STATE_KEY = "_state"
"""Detail key of the state change an audit entry carries."""

SAGA_FIELDS = ("status", "failed_step", "error", "rollback_started_at", "checkpoint", "resumes",
               "pre_state")
IDENTITY_FIELDS = ("workflow", "plan_hash", "input", "created_at", "app", "services")
STEP_FIELDS = ("status", "attempts", "comp_attempts", "result", "comp_result", "state", "error",
               "outcome", "started_at", "finished_at", "comp_started_at", "comp_finished_at")
_PENDING: tuple[Any, ...] = ("pending", 0, 0, None, None, None, None, None, None, None, None,
                             None)


def _saga_values(live: LiveSaga) -> tuple[Any, ...]:
    return (live.status.value, live.failed_step, live.error, live.rollback_started_at,
            live.checkpoint, live.resumes, live.pre_state)


def _step_values(st: LiveStep) -> tuple[Any, ...]:
    return (st.status.value, st.attempts, st.comp_attempts, st.result, st.comp_result,
            st.state, st.error, st.outcome, st.started_at, st.finished_at, st.comp_started_at,
            st.comp_finished_at)


def state_change(
    live: LiveSaga,
    scrub: Callable[[str, Any], Any] | None = None,
    scrub_input: Callable[[Any], Any] | None = None,
) -> dict[str, Any] | None:
    """What the coming commit changes, as values, for its last audit entry.

    Called by the writer before it hashes the entries; it puts the answer under
    :data:`STATE_KEY` in the last entry's detail. What it returns is adopted as
    the persisted state only once the commit succeeded (:func:`adopt`), so a
    failed commit retried later carries it again.

    Args:
        live: The saga about to be written.
        scrub: ``(step, value) -> value`` redacting a step's result or
            compensation result exactly as its row is redacted.
        scrub_input: Redacts the saga's input as its row is (first commit only).

    Returns:
        ``{"saga": {...}, "steps": {...}}`` (either part may be absent), or
        None when the commit changes nothing of the state.
    """
    saga = _saga_values(live)
    previous = live.persisted
    change: dict[str, Any] = {}
    if previous is None:
        change.update(zip(SAGA_FIELDS, saga, strict=True))
        data = live.input if scrub_input is None else scrub_input(live.input)
        change.update(workflow=live.plan.saga.workflow, plan_hash=live.plan.hash,
                      input=data, created_at=live.created_at, app=live.app,
                      services=live.services)
    else:
        change.update((k, v) for k, v, old in zip(SAGA_FIELDS, saga, previous, strict=True)
                      if v != old)
    steps: dict[str, Any] = {}
    persisted: dict[str, tuple[Any, ...]] = {}
    for st in live.steps.values():
        if not st.dirty:
            continue
        values = _step_values(st)
        before = st.persisted or _PENDING
        diff = {k: v for k, v, old in zip(STEP_FIELDS, values, before, strict=True) if v != old}
        if scrub is not None:
            for key in ("result", "comp_result"):
                if key in diff:
                    diff[key] = scrub(st.name, diff[key])
        if diff:
            steps[st.name] = diff
        persisted[st.name] = values
    live.adopt = (saga, persisted)
    if not change and not steps:
        return None
    state: dict[str, Any] = {}
    if change:
        state["saga"] = _as_json(change)
    if steps:
        state["steps"] = {name: _as_json(diff) for name, diff in steps.items()}
    return state


_SCALARS = frozenset({str, int, bool, type(None)})


def _as_json(values: dict[str, Any]) -> dict[str, Any]:
    """``to_jsonable(values)`` for a flat dict of fields, skipping the plain scalars.

    Per commit, most changed fields are statuses, counters and timestamps; only
    results, snapshots and the input are structures worth converting. Exact
    types only (an enum member that is also a ``str`` is converted as before),
    and a non-finite float is left to ``to_jsonable`` to refuse.
    """
    return {k: v if type(v) in _SCALARS or (type(v) is float and isfinite(v))
            else to_jsonable(v) for k, v in values.items()}


def adopt(live: LiveSaga) -> None:
    """The commit that carried :func:`state_change`'s change succeeded: remember it."""
    if live.adopt is None:
        return
    saga, steps = live.adopt
    live.persisted = saga
    for name, values in steps.items():
        live.steps[name].persisted = values
    live.adopt = None


def remember_loaded(live: LiveSaga) -> None:
    """A saga rebuilt from its rows: what is stored is what was last attached."""
    live.persisted = _saga_values(live)
    for st in live.steps.values():
        st.persisted = _step_values(st)


def rebuild(entries: Iterable[Mapping[str, Any]], at: float | None = None) -> dict[str, Any]:
    """Fold a saga's audit entries (in order) into its state, up to time ``at``.

    Args:
        entries: Entries with ``seq``, ``ts``, ``event``, ``detail`` and ``hash``.
        at: Only entries written at or before this time count (None: all).

    Returns:
        ``{"saga": {...}, "steps": {name: {...}}, "entries": n, "as_of": ts}``;
        ``entries`` is 0 when the saga did not exist yet at ``at``.
    """
    saga: dict[str, Any] = {}
    steps: dict[str, dict[str, Any]] = {}
    count, as_of = 0, None
    for entry in entries:
        if at is not None and float(entry["ts"]) > at:
            break
        detail = entry["detail"]
        if entry["event"] == "plan_recorded" and not steps:
            steps = {name: {"position": i, **dict(zip(STEP_FIELDS, _PENDING, strict=True))}
                     for i, name in enumerate(detail.get("order", []))}
        state = detail.get(STATE_KEY)
        if state:
            saga.update(state.get("saga", {}))
            for name, change in state.get("steps", {}).items():
                steps.setdefault(name, {"position": len(steps),
                                        **dict(zip(STEP_FIELDS, _PENDING, strict=True))})
                steps[name].update(change)
        saga["audit_seq"], saga["audit_head"] = int(entry["seq"]), entry["hash"]
        count, as_of = count + 1, float(entry["ts"])
    return {"saga": saga, "steps": steps, "entries": count, "as_of": as_of}


def saga_values_of_row(row: Mapping[str, Any], step_rows: Iterable[Mapping[str, Any]],
                       decode: Any) -> dict[str, Any]:
    """The stored rows in :func:`rebuild`'s shape (``decode`` turns JSON text into data)."""
    saga = {k: row[k] for k in ("status", "failed_step", "error", "rollback_started_at",
                                "checkpoint", "resumes", "workflow", "plan_hash",
                                "created_at", "app", "services", "audit_seq", "audit_head")}
    saga["pre_state"] = decode(row["pre_state_json"])
    saga["input"] = decode(row["input_json"])
    steps = {}
    for r in step_rows:
        values = {k: r[k] for k in STEP_FIELDS if not k.endswith(("result", "state"))}
        values.update(result=decode(r["result_json"]), comp_result=decode(r["comp_result_json"]),
                      state=decode(r["state_json"]), position=r["position"])
        steps[r["name"]] = values
    return {"saga": saga, "steps": steps}


def differences(rebuilt: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """Where a rebuilt state and the stored rows disagree (empty: they agree)."""
    saga_a, saga_b = rebuilt["saga"], stored["saga"]
    out = [f"saga.{key}: log {saga_a.get(key)!r} != row {saga_b.get(key)!r}"
           for key in sorted(set(saga_a) | set(saga_b)) if saga_a.get(key) != saga_b.get(key)]
    for name in sorted(set(rebuilt["steps"]) | set(stored["steps"])):
        a, b = rebuilt["steps"].get(name, {}), stored["steps"].get(name, {})
        out.extend(f"step {name}.{key}: log {a.get(key)!r} != row {b.get(key)!r}"
                   for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key))
    return out

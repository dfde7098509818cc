"""Verify one saga as an auditor reads it: chain, tables against the chain, signed head.

Works on plain rows (dicts), so the same checks run on a live database and on
an export, offline.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..audit import AuditProblem, verify_chain
from ..canonical import sha256_hex
from ..states import TERMINAL_SAGA, SagaStatus
from .records import (
    escalation_digest,
    head_message,
    rollback_digest,
    saga_fields,
    step_digest,
)
from .signing import Verifier

AT_REST = TERMINAL_SAGA | {SagaStatus.ESCALATED}

__all__ = ["SagaRecord", "check_saga", "pending_step_digest"]


@dataclass
class SagaRecord:
    """Everything stored about one saga, as rows.

    Attributes:
        row: The ``reversa_sagas`` row.
        steps: Its ``reversa_steps`` rows.
        rollbacks: Its ``reversa_rollbacks`` rows, by id.
        escalations: Its ``reversa_escalations`` rows, by id.
        entries: Its ``reversa_audit`` rows, by id.
    """

    row: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Replay:
    created: dict[str, Any] | None = None
    saga: dict[str, Any] | None = None
    steps: dict[str, list[Any]] = field(default_factory=dict)
    rollbacks: list[str] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    resolutions: dict[int, dict[str, Any]] = field(default_factory=dict)
    records: int = 0


def pending_step_digest(position: int) -> str:
    """Digest of a step row as created (pending, never attempted)."""
    return step_digest({"position": position, "status": "pending", "attempts": 0,
                        "comp_attempts": 0, "result_json": None, "comp_result_json": None,
                        "state_json": None, "error": None, "outcome": None,
                        "started_at": None, "finished_at": None, "comp_started_at": None,
                        "comp_finished_at": None})


def check_saga(
    rec: SagaRecord,
    verifiers: Mapping[str, Verifier] | None,
    notes: list[str] | None = None,
) -> list[AuditProblem]:
    """Every problem of one saga: its chain, its tables, its head signature.

    Args:
        rec: The saga's rows.
        verifiers: Keys by key id; None skips the signature check.
        notes: Collects what could not be checked (older sagas without state records).
    """
    row = rec.row
    sid = row["id"]
    _, broken = verify_chain(sid, row["plan_hash"], sha256_hex(row["plan_json"]),
                             row["audit_head"], row["audit_seq"], rec.entries)
    problems = [broken] if broken is not None else []
    if broken is None:
        problems.extend(_tables(rec, notes))
    if verifiers is not None:
        problem = _signature(rec, verifiers, notes)
        if problem is not None:
            problems.append(problem)
    return problems


def _replay(entries: Sequence[Mapping[str, Any]]) -> _Replay:
    out = _Replay()
    for entry in entries:
        if entry["event"] == "escalation_resolved":
            detail = json.loads(entry["detail_json"])
            if "escalation" in detail:
                out.resolutions[int(detail["escalation"])] = {
                    "resolution": entry["outcome"], "resolved_by": detail.get("author"),
                    "note": detail.get("note"), "resolved_at": detail.get("resolved_at")}
        text = entry.get("state_json")
        if text is None:
            continue
        state = json.loads(text)
        out.records += 1
        if "created" in state:
            out.created = state["created"]
        out.saga = state["saga"]
        out.steps.update(state.get("steps", {}))
        if "rollback" in state:
            out.rollbacks.append(state["rollback"])
        if "escalation" in state:
            out.escalations.append(state["escalation"])
    return out


def _tables(rec: SagaRecord, notes: list[str] | None) -> list[AuditProblem]:
    row = rec.row
    sid = row["id"]
    replay = _replay(rec.entries)
    if replay.records == 0:
        if notes is not None and rec.entries:
            notes.append(f"saga {sid} predates state records (schema < 6): its tables are not "
                         "cross-checked with its chain")
        return []
    problems: list[AuditProblem] = []

    def bad(kind: str, message: str) -> None:
        problems.append(AuditProblem(sid, kind, None, None, message))

    expected_steps: dict[str, list[Any]] = {}
    created = replay.created
    if created is None:
        if notes is not None:
            notes.append(f"saga {sid} was created before state records (schema < 6): its "
                         "input and the steps untouched since are not cross-checked")
    else:
        if sha256_hex(row["input_json"]) != created["input"]:
            bad("input_edited", f"the stored input of saga {sid} is not the input recorded in "
                "its chain when it was created: input_json was edited")
        for name in ("workflow", "plan_hash", "app"):
            if row[name] != created[name]:
                bad("saga_edited", f"saga {sid}: {name} is {row[name]!r} but its chain "
                    f"records {created[name]!r}")
        if float(row["created_at"]) != float(created["created_at"]):
            bad("saga_edited", f"saga {sid}: created_at was changed from "
                f"{created['created_at']} to {row['created_at']}")
        expected_steps = {name: ["pending", pending_step_digest(int(pos))]
                          for name, pos in created["steps"].items()}
    expected_steps.update(replay.steps)
    if replay.saga is not None:
        actual = saga_fields(row)
        for name, recorded in replay.saga.items():
            if actual.get(name) != recorded:
                shown = "its pre-workflow snapshot" if name == "pre_state" else name
                bad("saga_edited", f"saga {sid}: {shown} is {actual.get(name)!r} but its "
                    f"chain's last record says {recorded!r}: the saga row was edited")
    problems.extend(_steps(sid, rec.steps, expected_steps, complete=created is not None))
    problems.extend(_series(sid, "rollback", [rollback_digest(r) for r in rec.rollbacks],
                            replay.rollbacks, [r["id"] for r in rec.rollbacks]))
    problems.extend(_series(sid, "escalation", [escalation_digest(r) for r in rec.escalations],
                            replay.escalations, [r["id"] for r in rec.escalations]))
    problems.extend(_resolutions(sid, rec.escalations, replay.resolutions))
    return problems


def _steps(
    sid: str, rows: Sequence[Mapping[str, Any]], expected: Mapping[str, list[Any]],
    *, complete: bool,
) -> list[AuditProblem]:
    out = []
    seen = set()
    for step in rows:
        name = step["name"]
        seen.add(name)
        want = expected.get(name)
        if want is None:
            if complete:
                out.append(AuditProblem(sid, "step_edited", None, None,
                                        f"saga {sid}: step row {name!r} is not in its chain: a "
                                        "step row was inserted"))
            continue
        if step_digest(step) != want[1]:
            if step["status"] != want[0]:
                how = f"status is {step['status']!r} but the chain records {want[0]!r}"
            else:
                how = "its result, error, attempts or times differ from the chain's record"
            out.append(AuditProblem(sid, "step_edited", None, None,
                                    f"saga {sid}: step {name!r}: {how}: the step row was "
                                    "edited"))
    out.extend(AuditProblem(sid, "step_edited", None, None,
                            f"saga {sid}: step {name!r} is in its chain but its row is gone: "
                            "a step row was deleted")
               for name in sorted(set(expected) - seen))
    return out


def _series(
    sid: str, what: str, actual: list[str], recorded: list[str], ids: list[Any]
) -> list[AuditProblem]:
    kind = f"{what}_edited"
    out = []
    for index, (have, want) in enumerate(zip(actual, recorded, strict=False)):
        if have != want:
            out.append(AuditProblem(sid, kind, None, None,
                                    f"saga {sid}: {what} record #{ids[index]} differs from the "
                                    f"one its chain records: it was edited (or replaced)"))
    if len(actual) > len(recorded):
        out.append(AuditProblem(sid, kind, None, None,
                                f"saga {sid}: {len(actual) - len(recorded)} {what} record(s) "
                                f"are not in its chain (ids {ids[len(recorded):]}): added"))
    elif len(actual) < len(recorded):
        out.append(AuditProblem(sid, kind, None, None,
                                f"saga {sid}: its chain records {len(recorded)} {what}(s) but "
                                f"{len(actual)} remain: {what} records were deleted"))
    return out


def _resolutions(
    sid: str, rows: Sequence[Mapping[str, Any]], recorded: Mapping[int, Mapping[str, Any]]
) -> list[AuditProblem]:
    out = []
    for esc in rows:
        chained = recorded.get(int(esc["id"]))
        if chained is None:
            if esc["status"] != "open" or esc["resolution"] is not None:
                out.append(AuditProblem(
                    sid, "escalation_edited", None, None,
                    f"saga {sid}: escalation #{esc['id']} is {esc['status']} "
                    f"({esc['resolution']}) but its chain records no resolution: the "
                    "escalation was edited (or a crash fell between its two writes)"))
            continue
        fields = {"status": "resolved", **{k: v for k, v in chained.items()
                                           if not (k == "resolved_at" and v is None)}}
        for name, want in fields.items():
            have = esc[name]
            if name == "resolved_at" and have is not None:
                have = float(have)
            if have != want:
                out.append(AuditProblem(
                    sid, "escalation_edited", None, None,
                    f"saga {sid}: escalation #{esc['id']}: {name} is {have!r} but its chain "
                    f"records {want!r}: the resolution was edited"))
    return out


def _signature(
    rec: SagaRecord, verifiers: Mapping[str, Verifier], notes: list[str] | None
) -> AuditProblem | None:
    row = rec.row
    sid = row["id"]
    count = int(row["audit_seq"])
    if count == 0:
        return None
    key, sig = row.get("audit_key"), row.get("audit_sig")
    at_rest = SagaStatus(row["status"]) in AT_REST
    if (not key or not sig) and not at_rest:
        if notes is not None:
            notes.append(f"saga {sid} is in flight and not signed yet (a running saga is "
                         "signed once per REVERSA_SIGN_INTERVAL, and when it comes to rest)")
        return None
    if not key or not sig:
        return AuditProblem(sid, "unsigned", None, None,
                            f"saga {sid}: its chain head carries no signature (written "
                            "without a signing key, or the signature was stripped)")
    verifier = verifiers.get(key)
    if verifier is None:
        return AuditProblem(sid, "unknown_key", None, None,
                            f"saga {sid}: its head is signed by key {key}, which is not "
                            "among the keys given (after a rotation, pass every public key)")
    seq_text, _, encoded = str(sig).partition(":")
    try:
        signed = int(seq_text)
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        signed, raw = 0, b""
    if signed > count:
        return AuditProblem(sid, "truncated", count + 1, None,
                            f"saga {sid}: its head was signed at entry #{signed} but the chain "
                            f"now ends at #{count}: entries were removed from the end")
    hashes = {int(e["seq"]): e["hash"] for e in rec.entries}
    head = hashes.get(signed, "")
    if not verifier.verify(head_message(sid, signed, head), raw):
        return AuditProblem(sid, "bad_signature", None, None,
                            f"saga {sid}: the signature of its entry #{signed} does not verify "
                            f"with key {key}: the chain or its head was rewritten after signing")
    if signed < count:
        if at_rest:
            return AuditProblem(sid, "unsigned", signed + 1, None,
                                f"saga {sid} is {row['status']} but its entries after #{signed} "
                                "carry no signature: appended after its last commit, or "
                                "written without the signing key")
        if notes is not None:
            notes.append(f"saga {sid} is in flight: its entries after #{signed} are not "
                         "signed yet (a running saga is signed once per REVERSA_SIGN_INTERVAL)")
    return None

"""What the chain says about the tables: state records, head messages, log leaves.

The writer appends, to the last audit entry of every commit, a *state record*:
the saga's fields as written, a digest of every step row written, and digests
of the rollback record and escalation inserted in that commit (the first commit
also records the input, plan hash and step list). The record is part of the
entry's hash, so the chain covers what a regulator reads in the tables, and the
verifier replays the records and compares the result with the rows.

Everything here is computed from the values exactly as they are stored, so the
writer and the verifier (which reads them back) agree byte for byte. Numbers
are normalised (a timestamp written as ``5`` reads back as ``5.0``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..canonical import canonical_json, sha256_hex

__all__ = [
    "HEAD_DOMAIN",
    "SAGA_FIELDS",
    "STEP_FIELDS",
    "created_record",
    "escalation_digest",
    "head_message",
    "leaf_data",
    "rollback_digest",
    "saga_fields",
    "step_digest",
]

HEAD_DOMAIN = b"reversa-head-v1\n"
LEAF_DOMAIN = "reversa-leaf-v1"

STEP_FIELDS = ("position", "status", "attempts", "comp_attempts", "result_json",
               "comp_result_json", "state_json", "error", "outcome", "started_at",
               "finished_at", "comp_started_at", "comp_finished_at")
"""Step row columns covered by the chain (in digest order)."""

SAGA_FIELDS = ("status", "failed_step", "error", "rollback_started_at", "checkpoint", "resumes")
"""Saga row columns recorded in clear in each state record (plus a pre-state digest)."""

_FLOATS = frozenset({"started_at", "finished_at", "comp_started_at", "comp_finished_at",
                     "rollback_started_at", "created_at", "detected_at", "duration_s"})
_INTS = frozenset({"position", "attempts", "comp_attempts", "resumes"})


def _norm(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _FLOATS:
        return float(value)
    if name in _INTS:
        return int(value)
    return value


def head_message(saga_id: str, seq: int, head: str) -> bytes:
    """What a head signature signs: the saga, its entry count and its chain head."""
    return HEAD_DOMAIN + canonical_json([saga_id, int(seq), head]).encode()


def step_digest(row: Mapping[str, Any]) -> str:
    """Digest of one step row's covered columns."""
    return sha256_hex(canonical_json([_norm(c, row[c]) for c in STEP_FIELDS]))


_STEP_FLOATS = tuple(i for i, c in enumerate(STEP_FIELDS) if c in _FLOATS)


def step_digest_values(values: Sequence[Any]) -> str:
    """:func:`step_digest` from values already in :data:`STEP_FIELDS` order (hot path).

    The writer passes ints as ints already; only timestamps need normalising.
    """
    row = list(values)
    for i in _STEP_FLOATS:
        if row[i] is not None:
            row[i] = float(row[i])
    return sha256_hex(canonical_json(row))


def saga_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The saga row's covered fields, as a state record holds them."""
    out = {c: _norm(c, row[c]) for c in SAGA_FIELDS}
    pre = row["pre_state_json"]
    out["pre_state"] = None if pre is None else sha256_hex(pre)
    return out


def rollback_digest(row: Mapping[str, Any]) -> str:
    """Digest of a rollback record row (everything but its id and saga)."""
    ok = row["predicate_ok"]
    return sha256_hex(canonical_json([
        row["failed_step"], row["scope"], row["outcome"], _norm("detected_at", row["detected_at"]),
        _norm("finished_at", row["finished_at"]), _norm("duration_s", row["duration_s"]),
        row["record_json"], None if ok is None else bool(ok)]))


def escalation_digest(row: Mapping[str, Any]) -> str:
    """Digest of an escalation as opened (its resolution is chained by its own event)."""
    return sha256_hex(canonical_json([_norm("created_at", row["created_at"]), row["reason"],
                                      row["report_json"]]))


def created_record(row: Mapping[str, Any], steps: Mapping[str, int]) -> dict[str, Any]:
    """The facts fixed when a saga is created: input, plan, workflow, steps."""
    return {"workflow": row["workflow"], "plan_hash": row["plan_hash"],
            "input": sha256_hex(row["input_json"]),
            "created_at": _norm("created_at", row["created_at"]), "app": row["app"],
            "steps": dict(steps)}


def leaf_data(saga_id: str, seq: int, head: str, plan_hash: str) -> bytes:
    """The bytes of one sealed head in the checkpoint log (hashed as an RFC 6962 leaf)."""
    return canonical_json([LEAF_DOMAIN, saga_id, int(seq), head, plan_hash]).encode()

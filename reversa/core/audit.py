"""The tamper-evident log: one SHA-256 hash chain per saga (AG-166 4.7, AG-384 4.5).

This module holds the chain itself; ``reversa.core.evidence`` adds what makes
it evidence: state records cross-checked with the tables, signed heads, and
witnessed checkpoints (see ``docs/audit.md``).

Entry ``n`` of a saga hashes its own fields together with the hash of entry
``n - 1``; entry 1 chains to the saga's plan hash, so the log is bound to the
plan recorded before step 1. The saga row keeps the head hash and the entry
count, so truncating the tail is caught too. Chains are per saga rather than
global so that many workers append without contending on one head row.

Verification names the first entry that was edited, deleted, inserted or
reordered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .canonical import canonical_json, sha256_hex

__all__ = ["KINDS", "AuditProblem", "AuditReport", "entry_hash", "verify_chain"]

HASHED_FIELDS = ("saga_id", "seq", "ts", "step", "phase", "attempt", "event", "outcome",
                 "detail_json")


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON.

    The details (and the state record, on the entry that ends a commit) are
    hashed as the exact canonical JSON text that is stored, so verification
    needs no decode/re-encode round trip. Entries written before state records
    existed have none and hash as they always did.
    """
    body = {k: entry[k] for k in HASHED_FIELDS}
    state = entry.get("state_json")
    if state is not None:
        body["state_json"] = state
    return sha256_hex(prev_hash + canonical_json(body))


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One thing that does not verify: a broken link, a table that disagrees
    with the chain, a bad signature, or a log that disagrees with its witness.

    Attributes:
        saga_id: The saga concerned ("" for the database as a whole).
        kind: What happened (see :data:`KINDS`).
        seq: Sequence number where the chain breaks (None when not about one entry).
        entry_id: Database id of the offending row, when there is one.
        message: Human-readable explanation.
    """

    saga_id: str
    kind: str
    seq: int | None
    entry_id: int | None
    message: str


KINDS = {
    "edited": "an entry's content no longer matches its hash",
    "deleted": "an entry (or a saga record with entries left) was deleted",
    "inserted": "an entry was inserted or replaced",
    "reordered": "entries were reordered",
    "truncated": "entries were removed from the end of a chain",
    "plan_edited": "the stored plan no longer matches its hash",
    "rechained": "entries were edited and the chain recomputed",
    "plan_replaced": "the plan and its hash were replaced and the chain recomputed",
    "input_edited": "the saga's input no longer matches the chain",
    "saga_edited": "a saga row field (status, error...) no longer matches the chain",
    "step_edited": "a step row no longer matches the chain",
    "rollback_edited": "a rollback record was edited, deleted or added",
    "escalation_edited": "an escalation or its resolution was edited, deleted or added",
    "saga_deleted": "a sealed saga was deleted with its entries",
    "restored": "the database was restored from an older copy",
    "log_edited": "the checkpoint log no longer matches its witnessed roots",
    "unsigned": "a chain head carries no signature",
    "bad_signature": "a chain head's signature does not verify",
    "unknown_key": "a signature is by a key not given to the verifier",
    "witness_invalid": "a witness statement is malformed, unsigned or out of order",
    "export_invalid": "an export was altered, or its proofs do not lead to its checkpoint",
}
"""Every problem kind a verification can name."""


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Outcome of verifying one or all chains.

    Attributes:
        ok: Nothing failed.
        sagas: Sagas verified.
        entries: Log entries verified.
        problems: What failed, chain problems first.
        checked: What was verified (chains, tables, signatures, witnesses).
        notes: What could not be verified, and why (never a failure by itself).
    """

    ok: bool
    sagas: int
    entries: int
    problems: list[AuditProblem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def first_bad(self) -> AuditProblem | None:
        """The first problem found, if any."""
        return self.problems[0] if self.problems else None


def verify_chain(
    saga_id: str,
    plan_hash: str,
    plan_json_hash: str,
    head: str,
    count: int,
    rows: Iterable[Mapping[str, Any]],
) -> tuple[int, AuditProblem | None]:
    """Verify one saga's chain; rows must come in database insertion order (id).

    Args:
        saga_id: The saga.
        plan_hash: Hash stored on the saga row.
        plan_json_hash: Hash recomputed from the stored plan JSON.
        head: Head hash stored on the saga row.
        count: Entry count stored on the saga row.
        rows: Entries with ``id``, ``prev_hash``, ``hash`` and the hashed fields.

    Returns:
        (entries checked, first problem or None).
    """
    if plan_hash != plan_json_hash:
        return 0, AuditProblem(
            saga_id, "plan_edited", None, None,
            "the stored plan no longer matches its recorded hash: the plan was edited",
        )
    prev = plan_hash
    expected_seq = 1
    checked = 0
    ordered = list(rows)
    seqs = [int(r["seq"]) for r in ordered]
    for index, row in enumerate(ordered):
        checked += 1
        seq = seqs[index]
        if seq != expected_seq:
            later = seqs[index + 1 :]
            if expected_seq in later:
                kind = "reordered"
            elif seq > expected_seq:
                kind = "deleted"
            else:
                kind = "inserted"
            return checked, AuditProblem(
                saga_id, kind, expected_seq, int(row["id"]),
                f"expected entry #{expected_seq} but found #{seq} (row id {row['id']}): "
                f"an entry was {kind}",
            )
        if row["prev_hash"] != prev:
            return checked, AuditProblem(
                saga_id, "inserted", seq, int(row["id"]),
                f"entry #{seq} (row id {row['id']}) does not chain to entry #{seq - 1}: "
                "an entry was inserted or replaced",
            )
        recomputed = entry_hash(prev, row)
        if recomputed != row["hash"]:
            return checked, AuditProblem(
                saga_id, "edited", seq, int(row["id"]),
                f"entry #{seq} (row id {row['id']}, event {row['event']!r}) hashes to "
                f"{recomputed[:12]}… but records {str(row['hash'])[:12]}…: it was edited",
            )
        prev = str(row["hash"])
        expected_seq += 1
    if expected_seq - 1 != count or prev != head:
        return checked, AuditProblem(
            saga_id, "truncated" if expected_seq - 1 < count else "inserted", expected_seq,
            None,
            f"the saga records {count} entries ending in {head[:12]}… but the log holds "
            f"{expected_seq - 1} ending in {prev[:12]}…: entries were removed or added at the end",
        )
    return checked, None

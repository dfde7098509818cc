"""Exports an auditor verifies offline: JSON Lines with chains, tables, proofs and a signature.

An export holds, one canonical JSON object per line:

1. ``header``: format, the database's log id, the time window, the saga count;
2. ``checkpoint``: the latest signed checkpoint (when there is one);
3. one ``saga`` line per saga: its row, step rows, rollback and escalation
   records, every audit entry, and the inclusion proof of its latest sealed
   head in that checkpoint;
4. ``end``: the SHA-256 of every byte before it, signed by the audit key.

:func:`check_export` needs only the file and the public key: it recomputes each
chain, cross-checks each saga's rows with its chain, checks each head
signature, each inclusion proof against the signed checkpoint root, and the
signature over the whole file, so changing any byte fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..audit import AuditProblem, AuditReport
from ..canonical import canonical_json
from ..errors import ConfigError
from ..store import schema as t
from .checkpoints import Leaf, load_leaves, log_id
from .crosscheck import SagaRecord, check_saga
from .merkle import Tree, verify_inclusion
from .signing import Signer, Verifier
from .verify import load_records, snapshot
from .witness import Checkpoint, Witness, WitnessError

__all__ = ["EXPORT_FORMAT", "check_export", "export"]

EXPORT_FORMAT = 1
_END_DOMAIN = b"reversa-export-v1\n"
_OPERATIONAL = ("lease_owner", "lease_token", "lease_expires_at", "heartbeat_at")


def export(store: Any, out: str | os.PathLike[str], *, since: float, signer: Signer) -> int:
    """Write every saga updated at or after ``since`` to ``out``; return the count.

    The file is created exclusively (an existing file is never overwritten).

    Raises:
        ConfigError: ``out`` exists or cannot be written.
    """
    target = Path(out)
    digest = hashlib.sha256()
    lines = 0
    try:
        handle = target.open("xb")
    except FileExistsError:
        raise ConfigError(f"{target} already exists; exports are never overwritten: choose "
                          "another --out") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {target}: {exc.strerror}") from None
    # The store clock first: on SQLite it needs a connection of its own.
    exported_at = float(store.now())
    with handle, snapshot(store) as conn:

        def emit(obj: Mapping[str, Any]) -> None:
            nonlocal lines
            data = (canonical_json(obj) + "\n").encode()
            digest.update(data)
            handle.write(data)
            lines += 1

        s = t.sagas.c
        sagas = [{k: v for k, v in dict(r).items() if k not in _OPERATIONAL}
                 for r in conn.execute(select(t.sagas).where(s.updated_at >= since)
                                       .order_by(s.created_at, s.id)).mappings()]
        last = conn.execute(select(t.checkpoints.c.statement_json).order_by(
            t.checkpoints.c.number.desc()).limit(1)).scalar()
        checkpoint = None if last is None else Checkpoint.from_json(last)
        leaves = load_leaves(conn, checkpoint.size) if checkpoint is not None else []
        latest: dict[str, Leaf] = {leaf.saga_id: leaf for leaf in leaves}
        tree = Tree([leaf.hash() for leaf in leaves])
        emit({"type": "header", "format": EXPORT_FORMAT, "log": log_id(conn),
              "since": float(since), "exported_at": exported_at, "sagas": len(sagas)})
        if checkpoint is not None:
            emit({"type": "checkpoint", "statement": json.loads(checkpoint.to_json())})
        for start in range(0, len(sagas), 200):
            for rec in load_records(conn, sagas[start:start + 200]):
                leaf = latest.get(rec.row["id"])
                proof = None
                if leaf is not None and checkpoint is not None:
                    proof = {"index": leaf.idx, "seq": leaf.seq, "head": leaf.head,
                             "plan_hash": leaf.plan_hash,
                             "path": [p.hex() for p in tree.proof(leaf.idx, checkpoint.size)]}
                emit({"type": "saga", "saga": rec.row, "steps": rec.steps,
                      "rollbacks": rec.rollbacks, "escalations": rec.escalations,
                      "entries": rec.entries, "proof": proof})
        end = digest.hexdigest()
        signature = signer.sign(_END_DOMAIN + end.encode())
        emit({"type": "end", "lines": lines + 1, "sha256": end, "key": signer.key_id,
              "alg": signer.algorithm, "sig": base64.b64encode(signature).decode()})
    return len(sagas)


def check_export(
    path: str | os.PathLike[str],
    verifiers: Iterable[Verifier],
    *,
    witnesses: Iterable[Witness] = (),
) -> AuditReport:
    """Verify an export offline (no database): every byte, chain, row, signature and proof.

    Args:
        path: The export file.
        verifiers: The public key(s) (HMAC keys for HMAC-signed records).
        witnesses: Optionally, a witness to compare the export's checkpoint with.

    Raises:
        ConfigError: The file cannot be read.
    """
    keys = {v.key_id: v for v in verifiers}
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read export {path}: {exc.strerror}") from None
    problems: list[AuditProblem] = []
    notes: list[str] = []

    def bad(message: str, saga: str = "") -> None:
        problems.append(AuditProblem(saga, "export_invalid", None, None, message))

    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    else:
        bad("the export does not end with a newline: it was cut or appended to")
    objects: list[dict[str, Any]] = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            bad(f"line {number} is not JSON: the file was edited")
            return _report(problems, notes, 0, 0)
        if not isinstance(obj, dict) or (canonical_json(obj).encode() != raw):
            bad(f"line {number} is not in canonical form: the file was edited")
            return _report(problems, notes, 0, 0)
        objects.append(obj)
    if not objects or objects[0].get("type") != "header" or objects[-1].get("type") != "end":
        bad("the export must start with a header line and end with an end line")
        return _report(problems, notes, 0, 0)
    end = objects[-1]
    body = data[:len(data) - len(raw_lines[-1]) - 1]
    if hashlib.sha256(body).hexdigest() != end.get("sha256") or end.get("lines") != len(objects):
        bad("the export's content does not match its end line: lines were edited, added or "
            "removed")
    verifier = keys.get(str(end.get("key")))
    if verifier is None:
        bad(f"the export is signed by key {end.get('key')}, which is not among the keys given")
    else:
        try:
            sig = base64.b64decode(str(end.get("sig")), validate=True)
        except ValueError:
            sig = b""
        if not verifier.verify(_END_DOMAIN + str(end.get("sha256")).encode(), sig):
            bad("the export's signature does not verify: it was altered after export")
    header = objects[0]
    checkpoint = None
    rest = objects[1:-1]
    if rest and rest[0].get("type") == "checkpoint":
        try:
            checkpoint = Checkpoint.from_json(canonical_json(rest[0].get("statement")))
        except WitnessError:
            bad("the export's checkpoint line is malformed: the file was edited")
            return _report(problems, notes, 0, 0)
        rest = rest[1:]
        signer = keys.get(checkpoint.key)
        if signer is None or not checkpoint.verify(signer):
            bad(f"checkpoint #{checkpoint.number} in the export is not signed by a given key")
        if checkpoint.log != header.get("log"):
            bad("the export's checkpoint belongs to another database")
        for witness in witnesses:
            held = {w.number: w for w in witness.read(checkpoint.log)}
            mine = held.get(checkpoint.number)
            if mine is None:
                notes.append(f"witness {witness.name} does not hold checkpoint "
                             f"#{checkpoint.number}")
            elif mine.digest != checkpoint.digest():
                bad(f"checkpoint #{checkpoint.number} differs from the one witness "
                    f"{witness.name} holds")
    if len(rest) != header.get("sagas"):
        bad(f"the header announces {header.get('sagas')} sagas but the export holds "
            f"{len(rest)}")
    entries = 0
    for obj in rest:
        if obj.get("type") != "saga":
            bad(f"unexpected line type {obj.get('type')!r}")
            continue
        try:
            rec = SagaRecord(row=obj["saga"], steps=obj["steps"], rollbacks=obj["rollbacks"],
                             escalations=obj["escalations"], entries=obj["entries"])
            entries += len(rec.entries)
            problems.extend(check_saga(rec, keys, notes))
            problems.extend(_proof(rec, obj.get("proof"), checkpoint, notes))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A field renamed or retyped: the line no longer is a saga record.
            bad(f"a saga line is malformed ({type(exc).__name__}: {exc}): the file was edited")
    return _report(problems, notes, len(rest), entries)


def _proof(
    rec: SagaRecord, proof: Mapping[str, Any] | None, checkpoint: Checkpoint | None,
    notes: list[str],
) -> list[AuditProblem]:
    sid = rec.row["id"]
    if proof is None or checkpoint is None:
        notes.append(f"saga {sid} is not in a checkpoint yet: its record is covered by its "
                     "head signature only")
        return []
    seq = int(proof["seq"])
    hashes = {int(e["seq"]): e["hash"] for e in rec.entries}
    leaf = Leaf(int(proof["index"]), sid, seq, str(proof["head"]), str(proof["plan_hash"]),
                checkpoint.number)
    path = [bytes.fromhex(p) for p in proof["path"]]
    if not verify_inclusion(leaf.hash(), leaf.idx, checkpoint.size, path,
                            bytes.fromhex(checkpoint.root)):
        return [AuditProblem(sid, "export_invalid", None, None,
                             f"saga {sid}: its inclusion proof does not lead to checkpoint "
                             f"#{checkpoint.number}'s root")]
    if hashes.get(seq) != leaf.head or rec.row["plan_hash"] != leaf.plan_hash:
        return [AuditProblem(sid, "rechained", seq, None,
                             f"saga {sid}: its entry #{seq} is not the head sealed in "
                             f"checkpoint #{checkpoint.number}")]
    return []


def _report(problems: list[AuditProblem], notes: list[str], sagas: int,
            entries: int) -> AuditReport:
    checked = ["every byte (canonical lines, signed digest)", "hash chains",
               "tables against the chains", "head signatures", "inclusion proofs"]
    return AuditReport(ok=not problems, sagas=sagas, entries=entries, problems=problems,
                       checked=checked, notes=notes)

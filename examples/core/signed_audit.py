"""A signed, witnessed audit record: verify it, prove a saga, export it, catch an edit.

Run: python examples/core/signed_audit.py
(writes ./keys, ./witness, ./export.jsonl and ./reversa.db, or $REVERSA_DB)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import text

from reversa import Engine, PermanentError, Registry, Saga, SagaStatus, Step, StepContext, Store
from reversa.core.evidence import (
    AuditConfig,
    DirWitness,
    generate_keys,
    load_signer,
    load_verifier,
)
from reversa.core.evidence.checkpoints import prove
from reversa.core.evidence.export import check_export, export

registry = Registry()
charged: dict[str, str] = {}


@registry.action("card.charge")
def charge(ctx: StepContext) -> dict[str, Any]:
    charged[ctx.idempotency_key] = ctx.input["card_number"]  # the clear value, in memory
    return {"charge_id": "ch_1", "card": ctx.input["card_number"]}


@registry.compensation("card.refund")
def refund(ctx: StepContext) -> dict[str, Any]:
    charged.pop(ctx.action_key, None)
    return {"refunded": ctx.result["charge_id"]}


@registry.action("payout.send")
def send(ctx: StepContext) -> None:
    raise PermanentError("beneficiary bank rejected the payout")


@registry.compensation("payout.cancel")
def cancel(ctx: StepContext) -> None:
    return None


@registry.predicate("nothing.charged")
def nothing_charged(ctx: Any) -> bool:
    return not charged


saga = Saga.chain("card-payout", [
    Step(name="charge", action="card.charge", compensation="card.refund", sensitive=("card",)),
    Step(name="payout", action="payout.send", compensation="payout.cancel"),
], predicate="nothing.charged", sensitive=("card_number",))


def main() -> int:
    keys, witness = Path("keys"), Path("witness")
    if not (keys / "reversa-audit.key").exists():
        generate_keys(keys)  # reversa audit keygen --out keys
    config = AuditConfig(signer=load_signer(str(keys / "reversa-audit.key")),
                         witnesses=(DirWitness(witness),))
    store = Store.open(audit=config)  # $REVERSA_DB or ./reversa.db
    engine = Engine(registry, store)
    result = engine.run(saga, {"card_number": "4111 1111 1111 1111", "amount": 25})
    engine.close()
    store.checkpoint()  # also taken by itself within a second of the saga's end
    (row,) = store.rows("sagas", id=result.saga_id)
    print(f"saga {result.saga_id}: {result.status}; stored input {row['input_json']}")

    public = load_verifier(keys / "reversa-audit.pub")
    report = store.verify_audit(verifiers=[public], witnesses=[DirWitness(witness)])
    print(f"verified: {report.ok}; checked: {'; '.join(report.checked)}")
    with store.engine.connect() as conn:
        proof = prove(conn, result.saga_id)
    assert proof is not None
    print(f"sealed as leaf {proof.leaf.idx} of checkpoint #{proof.checkpoint.number}, "
          f"path of {len(proof.path)} hash(es)")

    out = Path("export.jsonl")
    out.unlink(missing_ok=True)
    assert config.signer is not None
    export(store, out, since=0, signer=config.signer)  # reversa audit export --since 0 --out
    offline = check_export(out, [public])
    print(f"export checked offline: {offline.ok} ({offline.sagas} saga(s))")

    # Someone with write access raises the amount: the record names it.
    forged = json.loads(row["input_json"]) | {"amount": 2500}
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE reversa_sagas SET input_json = :j WHERE id = :s"),
                     {"j": json.dumps(forged), "s": result.saga_id})
    caught = store.verify_audit(verifiers=[public], witnesses=[DirWitness(witness)])
    for problem in caught.problems:
        print(f"caught [{problem.kind}]: {problem.message}")
    store.close()
    fine = result.status is SagaStatus.COMPENSATED and report.ok and offline.ok
    return 0 if fine and [p.kind for p in caught.problems] == ["input_edited"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

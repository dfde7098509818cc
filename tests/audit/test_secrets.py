"""Planted secrets never reach the database, the logs, the audit record or an export.

A saga carries a card number and IBANs in its input and results (declared
sensitive), and a failing call raises an exception quoting a private key, a
card number, an IBAN, a bearer token and a database password. Everything a
regulator or an attacker could read afterwards is scanned for them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reversa import (
    Engine,
    FakeClock,
    OnCrash,
    Registry,
    Saga,
    SagaStatus,
    Step,
    StepContext,
    Store,
)
from reversa.core.evidence import load_signer
from reversa.core.sensitive import redaction_marker
from tests.audit.kit import audit_config, cli, dump
from tests.core.kit import FAST

CARD = "4111 1111 1111 1111"
CARD_DIGITS = CARD.replace(" ", "")
IBAN = "GB82WEST12345698765432"
IBAN_2 = "DE89370400440532013000"
HEX_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu"
PASSWORD = "S3cretPassw0rd"


def _registry(seen: dict[str, Any]) -> Registry:
    reg = Registry()

    @reg.action("charge")
    def charge(ctx: StepContext) -> dict[str, Any]:
        seen["card"] = ctx.param("card", default=ctx.input["card_number"])
        return {"charge_id": "ch_1", "card": CARD_DIGITS, "beneficiary_iban": IBAN_2}

    @reg.compensation("refund")
    def refund(ctx: StepContext) -> dict[str, Any]:
        raise RuntimeError(f"refund of card {CARD} to {IBAN_2} refused")

    @reg.action("payout")
    def payout(ctx: StepContext) -> None:
        raise RuntimeError(
            f"gateway error for card {CARD} and IBAN {IBAN}: signing key 0x{HEX_KEY} "
            f"(Authorization: Bearer {TOKEN}) via postgresql://app:{PASSWORD}@db.internal/prod "
            f"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKey\n-----END PRIVATE KEY-----")

    @reg.compensation("payout.undo")
    def payout_undo(ctx: StepContext) -> None:
        return None

    @reg.predicate("ok")
    def ok(ctx: Any) -> bool:
        return True

    return reg


def _saga() -> Saga:
    return Saga.chain("card-payout", [
        Step(name="charge", action="charge", compensation="refund", retry=FAST,
             compensation_retry=FAST, sensitive=("card", "beneficiary_iban")),
        Step(name="payout", action="payout", compensation="payout.undo", retry=FAST,
             compensation_retry=FAST),
    ], predicate="ok", sensitive=("card_number", "payer.iban"))


@pytest.fixture
def planted(db_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from reversa.core.evidence import generate_keys

    generate_keys(tmp_path / "keys")
    clock = FakeClock()
    store = Store.open(db_url, clock=clock,
                       audit=audit_config(tmp_path / "keys", tmp_path / "witness"))
    seen: dict[str, Any] = {}
    engine = Engine(_registry(seen), store, clock=clock, heartbeat=False)
    result = engine.run(_saga(), {"card_number": CARD, "amount": 10,
                                  "payer": {"name": "Acme", "iban": IBAN}})
    engine.close()
    store.checkpoint()
    yield {"store": store, "result": result, "seen": seen, "tmp": tmp_path, "url": db_url}
    store.close()


def _secrets(tmp: Path) -> list[str]:
    pem = (tmp / "keys" / "reversa-audit.key").read_text().splitlines()
    return [CARD, CARD_DIGITS, IBAN, IBAN_2, HEX_KEY, TOKEN, PASSWORD, "MC4CAQAwBQYDK2VwBCIEIKey",
            *[line for line in pem if "-----" not in line]]


def test_no_planted_secret_survives_anywhere(
    planted: dict[str, Any], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, result, tmp = planted["store"], planted["result"], planted["tmp"]
    assert planted["seen"]["card"] == CARD  # the handler still got the clear value
    # The payout is in doubt (no block, no probe): a human decides, with a full report.
    assert result.status is SagaStatus.ESCALATED
    caplog.set_level(logging.DEBUG)
    url = planted["url"]
    outputs = []
    for args in (["sagas", "show", result.saga_id, "--json"], ["sagas", "list", "--json"],
                 ["escalations", "list", "--all", "--json"],
                 ["escalations", "show", str(result.escalation_id), "--json"],
                 ["audit", "verify", "--json"], ["audit", "proof", result.saga_id, "--json"]):
        code, out, err = cli(*args, "--db", url)
        assert code == 0, out + err
        outputs.append(out + err)
    monkeypatch.setenv("REVERSA_SIGNING_KEY", str(tmp / "keys" / "reversa-audit.key"))
    code, out, err = cli("audit", "export", "--db", url, "--since", "0", "--out",
                         str(tmp / "export.jsonl"))
    assert code == 0, out + err
    outputs.append(out + err)
    places = {
        "database": json.dumps(dump(store), default=str),
        "witness": "".join(p.read_text() for p in (tmp / "witness").rglob("*.json")),
        "export": (tmp / "export.jsonl").read_text(),
        "cli output": "".join(outputs),
        "logs": caplog.text,
        "audit": json.dumps([e.model_dump() for e in Engine(Registry(), store).audit(
            result.saga_id)], default=str),
    }
    assert "[redacted:" in places["database"] and "[card ****1111]" in places["database"]
    for place, content in places.items():
        for secret in _secrets(tmp):
            assert secret not in content, f"{secret[:6]}… found in the {place}"
    report = store.verify_audit()
    assert report.ok, report.problems


def test_digests_are_salted_per_saga_and_checkable_with_the_key(
    planted: dict[str, Any]
) -> None:
    store, result, tmp = planted["store"], planted["result"], planted["tmp"]
    (row,) = store.rows("sagas", id=result.saga_id)
    stored = json.loads(row["input_json"])
    key = load_signer(str(tmp / "keys" / "reversa-audit.key")).derive(b"reversa-redaction-v1")
    # Whoever holds the key can check a claimed value; nobody can read it back.
    assert stored["card_number"] == redaction_marker(key, result.saga_id)("card_number", CARD)
    assert stored["payer"] == {"name": "Acme", "iban": redaction_marker(
        key, result.saga_id)("payer.iban", IBAN)}
    assert stored["card_number"] != redaction_marker(key, "another-saga")("card_number", CARD)
    assert stored["amount"] == 10


def test_a_recovered_saga_keeps_redacting(db_url: str, tmp_path: Path) -> None:
    from reversa.core.evidence import generate_keys

    generate_keys(tmp_path / "keys")
    clock = FakeClock()
    config = audit_config(tmp_path / "keys", tmp_path / "witness")
    store = Store.open(db_url, clock=clock, audit=config)
    first = Engine(_registry({}), store, clock=clock, heartbeat=False)
    first.shutdown()  # the owner stops at the first step boundary and hands the saga over
    resumable = _saga().model_copy(update={"on_crash": OnCrash.RESUME})
    orphan = first.run(resumable, {"card_number": CARD, "payer": {"iban": IBAN}})
    first.close()
    assert orphan.status is SagaStatus.RUNNING
    # Another process resumes it from the stored (redacted) record and the stored plan: the
    # charge runs there, and its result is redacted by the paths the stored plan declares.
    seen: dict[str, Any] = {}
    result = Engine(_registry(seen), store, clock=clock, heartbeat=False).recover(
        orphan.saga_id)
    assert seen["card"].startswith("[redacted:")  # the secret was never stored to recover
    assert result.status is SagaStatus.ESCALATED
    text = json.dumps(dump(store), default=str)
    store.close()
    for secret in (CARD, CARD_DIGITS, IBAN, IBAN_2):
        assert secret not in text

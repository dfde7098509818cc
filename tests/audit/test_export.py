"""Exports verify offline, without the database; any one-byte change fails them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reversa.core.evidence import DirWitness, load_verifier
from reversa.core.evidence.export import check_export
from tests.audit.kit import Evidence, cli, evidence_store


@pytest.fixture
def ev(db_url: str, tmp_path: Path) -> Iterator[Evidence]:
    with evidence_store(db_url, tmp_path) as built:
        yield built


def _export(ev: Evidence, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVERSA_SIGNING_KEY", str(ev.key))
    code, stdout, err = cli("audit", "export", "--db", ev.url, "--since", "0", "--out", str(out))
    monkeypatch.delenv("REVERSA_SIGNING_KEY")
    assert code == 0, stdout + err
    assert "exported 4 saga(s)" in stdout


def test_export_verifies_offline_and_one_changed_byte_fails(
    ev: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export.jsonl"
    _export(ev, out, monkeypatch)
    ev.store.close()  # offline: no database from here on
    lines = out.read_text().splitlines()
    kinds = [json.loads(line)["type"] for line in lines]
    assert kinds == ["header", "checkpoint", "saga", "saga", "saga", "saga", "end"]
    assert all(json.loads(line)["proof"] for line in lines if '"type":"saga"' in line)
    code, stdout, _ = cli("audit", "check-export", str(out), "--pubkey", str(ev.pub),
                          "--witness", str(ev.witness))
    assert code == 0, stdout
    data = out.read_bytes()
    verifier = load_verifier(ev.pub)
    # Change one byte at a time, at spread positions covering every line.
    positions = sorted({*range(0, len(data), max(1, len(data) // 97)), len(data) - 2})
    for pos in positions:
        original = data[pos]
        changed = (original + 1) % 256 if chr(original) not in '"\\' else ord("x")
        mutated = data[:pos] + bytes([changed]) + data[pos + 1:]
        out.write_bytes(mutated)
        report = check_export(out, [verifier])
        assert not report.ok, f"a change at byte {pos} ({chr(original)!r}) went unnoticed"
    out.write_bytes(data[:1000] + b" " + data[1001:])
    code, stdout, _ = cli("audit", "check-export", str(out), "--pubkey", str(ev.pub))
    assert code == 1 and "TAMPERED" in stdout


def test_a_consistent_forgery_inside_the_export_is_named(
    ev: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attacker edits a saga's input and re-signs nothing: the canonical form
    # holds, the file digest is recomputed, but the key is not theirs.
    out = tmp_path / "export.jsonl"
    _export(ev, out, monkeypatch)
    lines = out.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if '"type":"saga"' in line)
    saga = json.loads(lines[index])
    saga["saga"]["input_json"] = json.dumps({"amount": 999})
    from reversa.core.canonical import canonical_json

    lines[index] = canonical_json(saga)
    out.write_text("\n".join(lines) + "\n")
    report = check_export(out, [load_verifier(ev.pub)])
    kinds = {p.kind for p in report.problems}
    assert "input_edited" in kinds and "export_invalid" in kinds


def test_export_needs_the_key_and_never_overwrites(ev: Evidence, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "e.jsonl"
    code, _, err = cli("audit", "export", "--db", ev.url, "--since", "1d", "--out", str(out))
    assert code == 2 and err.startswith("error: an export is signed") and err.count("\n") == 1
    _export(ev, out, monkeypatch)
    monkeypatch.setenv("REVERSA_SIGNING_KEY", str(ev.key))
    code, _, err = cli("audit", "export", "--db", ev.url, "--since", "2024-01-01", "--out",
                       str(out))
    assert code == 2 and "already exists" in err
    code, _, err = cli("audit", "export", "--db", ev.url, "--since", "yesterday", "--out",
                       str(tmp_path / "x.jsonl"))
    assert code == 2 and "--since" in err and err.count("\n") == 1
    code, _, err = cli("audit", "check-export", str(out))
    assert code == 2 and "--pubkey" in err


def test_export_of_a_window_and_with_a_witness(
    ev: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "later.jsonl"
    monkeypatch.setenv("REVERSA_SIGNING_KEY", str(ev.key))
    code, stdout, _ = cli("audit", "export", "--db", ev.url, "--since", "2100-01-01", "--out",
                          str(out))
    assert code == 0 and "exported 0 saga(s)" in stdout
    report = check_export(out, [load_verifier(ev.pub)], witnesses=[DirWitness(ev.witness)])
    assert report.ok and report.sagas == 0

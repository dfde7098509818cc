"""Every writing command honours REVERSA_SIGNING_KEY / REVERSA_WITNESS_DIR (or the options)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reversa import Engine, Store
from reversa.benchkit.workload import bench_registry, bench_saga
from reversa.core.evidence import AuditConfig, generate_keys
from tests.audit.kit import cli


def _reversa(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("REVERSA_")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "reversa", *args], capture_output=True,
                          text=True, timeout=300, env=full)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate_keys(tmp_path / "keys")
    return tmp_path / "keys"


def _verified(db: str, keys: Path, witness: Path) -> None:
    done = _reversa("audit", "verify", "--db", db, "--pubkey", str(keys / "reversa-audit.pub"),
                    "--witness", str(witness))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checkpoint(s) held by" in done.stdout and "head signatures" in done.stdout


def test_demo_signs_and_witnesses_from_the_environment(keys: Path, tmp_path: Path) -> None:
    db, witness = str(tmp_path / "demo.db"), tmp_path / "witness"
    done = _reversa("demo", "--db", db, env={
        "REVERSA_SIGNING_KEY": str(keys / "reversa-audit.key"),
        "REVERSA_WITNESS_DIR": str(witness)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert list(witness.rglob("*.json")), "the demo left no checkpoint in the witness"
    _verified(db, keys, witness)


def test_bench_honours_the_root_options(keys: Path, tmp_path: Path) -> None:
    db, witness = str(tmp_path / "bench.db"), tmp_path / "witness"
    done = _reversa("--signing-key", str(keys / "reversa-audit.key"), "--witness-dir",
                    str(witness), "bench", "--sagas", "3", "--steps", "2", "--db", db, "--json")
    assert done.returncode == 0, done.stderr
    _verified(db, keys, witness)


def test_a_worker_signs_what_it_finishes(keys: Path, tmp_path: Path) -> None:
    db, witness = str(tmp_path / "w.db"), tmp_path / "witness"
    # An orphan: its owner shut down at the first step boundary and handed it over.
    store = Store.open(db, audit=AuditConfig())
    engine = Engine(bench_registry(), store, heartbeat=False)
    engine.shutdown()
    orphan = engine.run(bench_saga(3, fail_last=False))
    engine.close()
    store.close()
    done = _reversa("worker", "--once", "--db", db, env={
        "REVERSA_SIGNING_KEY": str(keys / "reversa-audit.key"),
        "REVERSA_WITNESS_DIR": str(witness)})
    assert done.returncode == 0, done.stderr
    assert "round done: 1 saga(s) ended" in done.stderr  # worker logs go to stderr
    (row,) = Store.open(db).rows("sagas", id=orphan.saga_id)
    assert row["status"] in {"completed", "compensated", "failed"} and row["audit_sig"]
    _verified(db, keys, witness)


def test_bad_settings_are_one_line_errors(keys: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    done = _reversa("demo", "--db", db, env={"REVERSA_SIGNING_KEY": str(tmp_path / "no.key")})
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "key file" in done.stderr and "reversa audit keygen" in done.stderr
    assert not Path(db).exists()  # nothing ran, nothing was recorded
    done = _reversa("demo", "--db", db, env={"REVERSA_WITNESS_DIR": str(tmp_path / "w")})
    assert done.returncode == 2 and "needs a signing key" in done.stderr
    code, _, err = cli("audit", "keygen", "--out", str(keys))
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    code, _, err = cli("audit", "verify", "--db", db, "--pubkey", str(tmp_path / "none.pub"))
    assert code == 2 and "does not exist" in err
    code, _, err = cli("audit", "verify", "--db", db, "--witness", str(tmp_path / "nowhere"))
    assert code == 2 and "witness directory" in err
    code, _, err = cli("audit", "verify", "--db", db, "--pubkey",
                       str(keys / "reversa-audit.key"))
    assert code == 2 and "is a private key" in err
    assert (keys / "reversa-audit.key").read_text().splitlines()[1] not in err

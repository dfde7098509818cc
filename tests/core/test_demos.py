"""Every `reversa demo` scenario runs end to end through the CLI and leaves a verified log.

All scenarios run twice on ONE database, as several users or CI jobs sharing a
store would: each run reports exactly the sagas it started, and no saga id is
ever reused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from reversa import Store
from reversa.cli.demo import scenarios

NAMES = sorted(scenarios()[0])


def demo_json(name: str, db: Path) -> dict[str, Any]:
    tmp = db.parent / f"tmp-{name}"  # the demo's TMPDIR: empty again when it ends
    tmp.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "reversa", "demo", name, "--db", str(db),
                           "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert list(tmp.iterdir()) == [], "the demo left files in TMPDIR"
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_every_adapter_contributes_scenarios() -> None:
    found, missing = scenarios()
    assert missing == {}
    for prefix in ("onboarding", "payments-", "evm-", "robot-"):
        assert any(name.startswith(prefix) for name in found), prefix


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demos") / "shared.db"


SEEN: set[str] = set()  # every saga id reported so far on the shared database


@pytest.mark.parametrize("name", NAMES)
def test_demo_scenario_twice_on_a_shared_database(name: str, shared_db: Path) -> None:
    for _ in range(2):
        before = {r["id"] for r in Store.open(str(shared_db)).list_sagas(limit=10_000)} \
            if shared_db.exists() else set()
        out = demo_json(name, shared_db)
        assert out["audit_ok"] is True
        ids = [s["id"] for s in out["sagas"]]
        assert ids, "the demo recorded no saga"
        assert all(s["status"] in {"completed", "compensated", "escalated", "failed"}
                   for s in out["sagas"])
        after = {r["id"] for r in Store.open(str(shared_db)).list_sagas(limit=10_000)}
        assert set(ids) == after - before  # exactly what this run created
        assert not SEEN & set(ids), f"saga id reused: {SEEN & set(ids)}"
        SEEN.update(ids)
        # Random 128-bit ids, like every saga's (no memory address, counter or
        # name that another run could produce again).
        assert all(uuid.UUID(hex=i).hex == i and uuid.UUID(hex=i).version == 4 for i in ids)


def test_concurrent_demos_report_only_their_own_sagas(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    Store.open(str(db)).close()  # created up front: both runs only add to it
    procs = [subprocess.Popen([sys.executable, "-m", "reversa", "demo", "onboarding",
                               "--db", str(db), "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        outs.append(json.loads(stdout))
    (first,), (second,) = (o["sagas"] for o in outs)
    assert first["id"] != second["id"]
    stored = {r["id"] for r in Store.open(str(db)).list_sagas()}
    assert stored == {first["id"], second["id"]}

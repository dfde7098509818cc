"""Every `reversa demo` scenario runs end to end through the CLI and leaves a verified log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reversa.cli.demo import scenarios

NAMES = sorted(scenarios()[0])


def test_every_adapter_contributes_scenarios() -> None:
    found, missing = scenarios()
    assert missing == {}
    for prefix in ("onboarding", "payments-", "evm-", "robot-"):
        assert any(name.startswith(prefix) for name in found), prefix


@pytest.mark.parametrize("name", NAMES)
def test_demo_scenario(name: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "reversa", "demo", name, "--db",
                           str(tmp_path / "demo.db"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["audit_ok"] is True
    assert out["sagas"], "the demo recorded no saga"
    assert all(s["status"] in {"completed", "compensated", "escalated", "failed"}
               for s in out["sagas"])

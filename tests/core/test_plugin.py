"""The pytest plugin as a user meets it: a fresh project, its own workflow, a few lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFTEST = '''
import pytest
from reversa import Registry, Saga, Step

BOOKED = {}

def make_registry():
    reg = Registry()
    reg.add("action", "book", lambda ctx: BOOKED.setdefault(ctx.idempotency_key, ctx.step))
    reg.add("compensation", "unbook", lambda ctx: BOOKED.pop(ctx.action_key, None))
    reg.add("block", "hold",
            lambda ctx: "happened" if ctx.action_key in BOOKED else "not_happened")
    reg.add("snapshot", "booked", lambda ctx: {"booked": sorted(BOOKED)})
    return reg

SAGA = Saga.chain("trip", [Step(name="hotel", action="book", compensation="unbook",
                                block="hold"),
                           Step(name="flight", action="book", compensation="unbook",
                                block="hold")], snapshot="booked")

@pytest.fixture
def reversa_registry():
    return make_registry()
'''

TESTS = '''
import pytest
from reversa.testing import expected_status, run_failure_point
from conftest import SAGA

@pytest.mark.failure_points(SAGA, kinds=["permanent", "crash_after"])
def test_trip(reversa_engine, failure_point):
    result = run_failure_point(reversa_engine, SAGA, failure_point)
    assert result.status is expected_status(SAGA, failure_point)

def test_store_and_clock(reversa_store, fake_clock):
    assert reversa_store.count() == 0
    fake_clock.advance(5)
'''


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "REVERSA_REQUIRE_POSTGRES")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_user_project_gets_one_test_per_failure_point(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_trip.py").write_text(TESTS)
    proc = _pytest(tmp_path, "--reversa-backend", "sqlite")
    # 2 actions + 1 compensation, each permanent and crash_after, plus the fixture test.
    assert "7 passed" in proc.stdout, proc.stdout + proc.stderr
    listed = _pytest(tmp_path, "--reversa-backend", "sqlite", "--collect-only")
    assert "test_trip[sqlite-compensation:hotel:crash_after]" in listed.stdout, listed.stdout


def test_a_missing_marker_or_registry_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "test_bad.py").write_text(
        "def test_no_marker(failure_point):\n    pass\n")
    proc = _pytest(tmp_path, "--reversa-backend", "sqlite")
    assert proc.returncode != 0
    assert "@pytest.mark.failure_points(your_saga)" in proc.stdout + proc.stderr
    (tmp_path / "test_bad.py").write_text(
        "def test_no_registry(reversa_engine):\n    pass\n")
    proc = _pytest(tmp_path, "--reversa-backend", "sqlite")
    assert proc.returncode != 0
    assert "define a fixture named reversa_registry" in proc.stdout + proc.stderr

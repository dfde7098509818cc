"""A paused owner's motion reaches the robot controller after a worker took the saga over.

Three processes besides the test: the rosbridge cell simulator, the saga's owner
(SIGSTOPped inside a motion step after its intent was recorded, before the goal
left) and a recovery worker. The worker blocks the in-doubt step at the
controller and compensates; then the owner resumes and its goal arrives. The
controller refuses it by epoch, and its own log and motion list prove that the
stale goal moved nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("roslibpy")
pytest.importorskip("fcl")

from reversa import Store
from reversa.adapters.robot import RosLink
from reversa.core.context import idempotency_key

pytestmark = pytest.mark.chaos
ROOT = Path(__file__).resolve().parents[2]
SAGA = "paused-owner-1"


def _child(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.chaos.robot_cell", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def cell_url() -> Iterator[str]:
    """The rosbridge simulator in a process of its own; its ws:// address."""
    sim = _child("sim", "20")
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline()
        found = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
        assert found, f"simulator did not start: {line!r} {sim.stderr.read() if sim.stderr else ''}"
        yield found.group(0)
    finally:
        sim.kill()
        sim.wait(10)


def test_a_paused_owners_goal_is_refused_by_epoch_after_a_takeover(
    db_url: str, cell_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "paused.json"
    owner = _child("owner", db_url, cell_url, SAGA, str(marker))
    host, port = cell_url.removeprefix("ws://").rsplit(":", 1)
    probe = RosLink(host, int(port), call_timeout=5.0)
    try:
        _until(marker.exists, "the owner to pause inside step 'over'")
        paused = json.loads(marker.read_text())
        assert paused["key"] == idempotency_key(SAGA, "over", "action")

        worker = subprocess.run(
            [sys.executable, "-m", "tests.chaos.robot_cell", "worker", db_url, cell_url, "90"],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert worker.stdout.strip() == "compensated", worker.stdout + worker.stderr
        taken_over = _world(probe)
        assert taken_over["pose"] == "home"  # the worker undid step 'out'

        os.kill(owner.pid, signal.SIGCONT)  # the owner resumes; its goal goes out now
        _until(lambda: _stale(_world(probe), paused), "the stale goal to reach the controller")
        out, err = owner.communicate(timeout=60)
        world = _world(probe)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        probe.close()

    (stale,) = _stale(world, paused)
    assert stale["outcome"] == "refused:fenced", (stale, out, err)
    mine = [c for c in world["commands"] if c["key"] == paused["key"]]
    assert [(c["command"], c["outcome"]) for c in mine] == [
        ("block", "tombstoned"), ("motion", "refused:fenced")]
    assert mine[0]["epoch"] > paused["epoch"]  # the worker's epoch reached the controller first
    # At the controller: the stale goal started no motion and the arm did not move.
    assert world["motions"] == taken_over["motions"]
    assert world["pose"] == "home" and world["q"] == taken_over["q"]
    assert world["refused"] >= 1
    store = Store.open(db_url)
    try:
        row, steps = store.load(SAGA)
    finally:
        store.close()
    assert row["status"] == "compensated"
    assert {s["name"]: s["status"] for s in steps} == {"out": "compensated", "over": "skipped"}


def _stale(world: dict[str, Any], paused: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in world["commands"]
            if c["key"] == paused["key"] and c["epoch"] == paused["epoch"]]


def _world(probe: RosLink) -> dict[str, Any]:
    """The controller's ground truth: pose, motions, command log, refusals."""
    return dict(probe.call("/sim/world", {}, mutating=False)["world"])

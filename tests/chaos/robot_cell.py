"""Child processes for the robot fencing test: the cell, a saga owner that pauses itself
inside a motion step, and a recovery worker.

Usage:
    python -m tests.chaos.robot_cell sim TIME_SCALE
    python -m tests.chaos.robot_cell owner DB URL SAGA_ID MARKER
    python -m tests.chaos.robot_cell worker DB URL SECONDS

``sim`` serves the simulated cell over rosbridge and prints its address. ``owner``
runs a two-motion saga; inside step ``over``, after the engine recorded the
step's intent and before the trajectory goal leaves, it writes MARKER (the
goal's key and epoch) and SIGSTOPs itself, as a GC or VM pause would stop it.
On SIGCONT the goal goes out as the paused process built it. ``worker`` claims
the saga once the owner's lease lapsed and finishes it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from reversa import Engine, Saga, Store, Worker
from reversa.adapters.robot import (
    BlockOutcome,
    MotionOutcome,
    RobotCell,
    RosLink,
    RosTooling,
    Stamp,
    connect_cell,
    pcb_cell,
    robot_registry,
)
from reversa.safety import Joints

TERMINAL = {"completed", "compensated", "failed", "escalated"}


def saga() -> Saga:
    r = robot_registry()
    return Saga.chain("paused-owner", [
        r.step("out", "robot.move", params={"to": "tray_above", "back": "home"}),
        r.step("over", "robot.move", params={"to": "inspection", "back": "tray_above"}),
    ], snapshot="robot.snapshot", predicate="robot.predicate")


class PausingArm:
    """The owner's arm port: stops the whole process just before one goal is sent."""

    def __init__(self, link: RosLink, pause_before: Joints, marker: Path) -> None:
        self.link, self.pause_before, self.marker = link, pause_before, marker
        self.paused = False
        self.delivered = threading.Event()

    def joints(self) -> Joints:
        return self.link.joints()

    def block(self, stamp: Stamp) -> BlockOutcome:
        return self.link.block(stamp)

    def execute(self, path: Sequence[Joints], times: Sequence[float], *, stamp: Stamp,
                timeout: float, abort: Callable[[], bool]) -> MotionOutcome:
        pause = not self.paused and tuple(path[-1]) == tuple(self.pause_before)
        if not pause:
            return self.link.execute(path, times, stamp=stamp, timeout=timeout, abort=abort)
        self.paused = True
        # Written whole, then renamed: the test polls for the file and reads it at once.
        part = self.marker.with_suffix(".part")
        part.write_text(json.dumps({"key": stamp.key, "epoch": stamp.fence.epoch}))
        os.replace(part, self.marker)
        os.kill(os.getpid(), signal.SIGSTOP)
        try:
            return self.link.execute(path, times, stamp=stamp, timeout=timeout, abort=abort)
        finally:
            self.delivered.set()


def _link(url: str) -> RosLink:
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    return RosLink(host, int(port), call_timeout=5.0)


def owner(db: str, url: str, saga_id: str, marker: Path) -> int:
    layout = pcb_cell()
    link = _link(url)
    arm = PausingArm(link, layout.pose("inspection"), marker)
    cell = RobotCell(layout, arm=arm, sensors=link, tooling=RosTooling(link), camera=link,
                     conveyor=link)
    store = Store.open(db)
    engine = Engine(robot_registry(), store, services={"robot": cell}, lease_s=1.0)
    try:
        result = engine.run(saga(), saga_id=saga_id)
        print(f"owner finished: {result.status.value} {result.error}", flush=True)
    except Exception as exc:  # the owner lost the saga; the test reads the controller
        print(f"owner stopped: {type(exc).__name__}: {exc}", flush=True)
    arm.delivered.wait(30)  # the stale goal has been answered before the link closes
    engine.close()
    cell.close()
    store.close()
    return 0


def worker(db: str, url: str, seconds: float) -> int:
    cell = connect_cell(url, call_timeout=5.0)
    store = Store.open(db)
    recovery = Worker(robot_registry(), store, services={"robot": cell}, lease_s=10,
                      poll_s=0.05, batch=1)
    deadline = time.monotonic() + seconds
    status = "unclaimed"
    while time.monotonic() < deadline:
        for result in recovery.run_once():
            status = result.status.value
        if status in TERMINAL:
            break
        time.sleep(0.05)
    print(status, flush=True)
    recovery.engine.close()
    cell.close()
    store.close()
    return 0


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "sim":
        from reversa.simulators.robot.rosbridge import serve

        serve(0, time_scale=float(argv[1]))
        return 0
    if mode == "owner":
        return owner(argv[1], argv[2], argv[3], Path(argv[4]))
    return worker(argv[1], argv[2], float(argv[3]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

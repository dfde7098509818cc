"""Fixtures for the robot adapter tests.

roslibpy's Twisted reactor runs once per process and cannot be restarted, so
the session shares one rosbridge simulator (the physics cell) and one roslibpy
connection; every test resets the simulated world (and its armed faults) and
builds a fresh RobotCell on the shared link. The Modbus tooling is a pty in the
same world.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("roslibpy")
pytest.importorskip("fcl")
pytest.importorskip("pymodbus")
pytest.importorskip("pybullet")
pytest.importorskip("ompl")


from reversa import Engine, FakeClock, Store
from reversa.adapters.robot import (
    CellLayout,
    ModbusTooling,
    RobotCell,
    RosLink,
    pcb_cell,
    robot_registry,
)
from reversa.simulators.robot import (
    CellWorld,
    ModbusGripperSim,
    RosbridgeSim,
    start_gripper,
    start_rosbridge,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (physics sweeps) run only when asked for: ``-m slow`` or
    ``REVERSA_SLOW=1``; the suite stays fast without them."""
    if os.environ.get("REVERSA_SLOW") == "1" or "slow" in str(config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow sweep: run with -m slow or REVERSA_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for an asynchronous fact (a topic update) to become true; fail if it never does."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., None]:
    """:func:`wait_until` for tests (conftest modules cannot be imported by name)."""
    return wait_until


@pytest.fixture(scope="session")
def rosbridge() -> Iterator[RosbridgeSim]:
    sim = start_rosbridge(time_scale=40.0)
    yield sim
    sim.stop()


@pytest.fixture
def slow_motion(rosbridge: RosbridgeSim) -> Iterator[None]:
    """Motions at 5x instead of 40x real time, for tests where the *adapter* must react
    mid-motion: its reaction then lands mid-path even on a loaded machine."""
    rosbridge.time_scale = 5.0
    yield
    rosbridge.time_scale = 40.0


@pytest.fixture(scope="session")
def gripper_device(rosbridge: RosbridgeSim) -> Iterator[ModbusGripperSim]:
    device = start_gripper(rosbridge.world)
    yield device
    device.stop()


@pytest.fixture(scope="session")
def link(rosbridge: RosbridgeSim) -> Iterator[RosLink]:
    ros = RosLink("127.0.0.1", rosbridge.port, call_timeout=2.0)
    yield ros
    ros.close()


@pytest.fixture(scope="session")
def tooling(gripper_device: ModbusGripperSim) -> Iterator[ModbusTooling]:
    tooling = ModbusTooling(gripper_device.path, timeout=1.5)
    yield tooling
    tooling.close()


@pytest.fixture
def reset_world(rosbridge: RosbridgeSim, link: RosLink) -> Callable[[], CellWorld]:
    """Reset the simulated cell and wait until the link's cached sensor state caught up."""

    def reset() -> CellWorld:
        rosbridge.reset()
        home = rosbridge.world.q
        wait_until(lambda: not link.estop_active() and not link.zone().occupied
                   and max(abs(a - b) for a, b in zip(link.joints(), home, strict=True)) < 1e-9)
        return rosbridge.world

    return reset


@pytest.fixture
def world(reset_world: Callable[[], CellWorld]) -> CellWorld:
    """The simulated cell, freshly reset."""
    return reset_world()


@pytest.fixture
def layout() -> CellLayout:
    return pcb_cell()


@pytest.fixture
def make_cell(
    world: CellWorld, link: RosLink, tooling: ModbusTooling
) -> Iterator[Callable[..., RobotCell]]:
    cells: list[RobotCell] = []

    def make(layout: CellLayout | None = None, *, motion_timeout_s: float | None = None,
             clock: FakeClock | None = None) -> RobotCell:
        chosen = layout or pcb_cell()
        if motion_timeout_s is not None:
            policy = chosen.policy.model_copy(update={"motion_timeout_s": motion_timeout_s})
            chosen = dataclasses.replace(chosen, policy=policy)
        cell = RobotCell(chosen, arm=link, sensors=link, tooling=tooling, camera=link,
                         conveyor=link, clock=clock)
        cells.append(cell)
        return cell

    yield make
    for cell in cells:
        cell.detach()


@pytest.fixture
def cell(make_cell: Callable[..., RobotCell]) -> RobotCell:
    return make_cell()


@pytest.fixture
def engine(cell: RobotCell, tmp_path: Path) -> Iterator[Engine]:
    store = Store.open(f"sqlite:///{tmp_path / 'robot.db'}")
    eng = Engine(robot_registry(), store, clock=FakeClock(), services={"robot": cell},
                 heartbeat=False)
    yield eng
    eng.close()
    store.close()

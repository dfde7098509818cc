"""``reversa demo`` scenarios of the robot adapter, on in-process simulators.

Each scenario starts the rosbridge simulator (the PyBullet physics cell) and the
Modbus RTU gripper and dispenser in background threads (motions run 20x faster
than real time), connects a :class:`~reversa.adapters.robot.RobotCell` through
roslibpy and pymodbus exactly as it would connect to a real cell, runs a saga on
the given store and tells the story.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from reversa.adapters.robot import RobotCell, Stamp, connect_cell, robot_registry
from reversa.core.context import Fence
from reversa.core.engine import Engine
from reversa.core.model import OnInfeasible, Saga
from reversa.core.states import SagaStatus
from reversa.core.store import Store
from reversa.core.views import SagaResult
from reversa.demos.narrate import tell
from reversa.demos.outcome import Demo, DemoRun
from reversa.safety import interpolate, motion_duration
from reversa.simulators.robot import CellWorld, start_gripper, start_rosbridge

from .workflows import APP, scenario_b_saga, transfer_saga

__all__ = ["DEMOS", "SERVICES", "STAND", "services"]

SERVICES = "reversa.demos.robot.scenarios:services"
"""Import path of :func:`services`, recorded with every demo saga next to its ``app``."""

CAMERA_FAULT = {"kind": "camera_error", "message": "inspection camera returned error E42"}


@dataclass
class _Rig:
    world: CellWorld
    cell: RobotCell
    engine: Engine


@contextlib.contextmanager
def _rig(db_url: str) -> Iterator[_Rig]:
    sim = start_rosbridge(time_scale=20.0)
    device = start_gripper(sim.world)
    store = Store.open(db_url)
    cell = engine = None
    try:
        cell = connect_cell(sim.url, serial_port=device.path, serial_timeout=1.0,
                            name=_cell_name())
        engine = Engine(robot_registry(), store, services={"robot": cell})
        yield _Rig(sim.world, cell, engine)
    finally:
        if engine is not None:
            engine.close()
        if cell is not None:
            cell.close()
        device.stop()
        sim.stop()
        store.close()


def services() -> dict[str, Any]:
    """A fresh simulated cell, for reviewing a demo's sagas from the CLI later.

    The demo's own simulators stopped with it, so a reviewer's retry or dry-run
    (which imports this through the saga's recorded ``services``) runs against a
    new cell: arm at home, parts on the tray. Its simulator threads end with
    the process.
    """
    sim = start_rosbridge(time_scale=20.0)
    device = start_gripper(sim.world)
    return {"robot": connect_cell(sim.url, serial_port=device.path, serial_timeout=1.0,
                                  name=_cell_name())}


def _cell_name() -> str:
    # Every demo run simulates a cell of its own: on a shared database the cells must not
    # share a name, or one run's escalated saga would hold the next run's cell.
    return f"demo-cell-{uuid.uuid4().hex[:8]}"


def _transfer() -> Saga:
    return transfer_saga(app=APP, services=SERVICES)


def _dry_run(result: SagaResult, console: Console) -> None:
    record = result.rollback or {}
    dry = record.get("dry_run")
    if not dry:
        return
    verdict = "[green]feasible[/]" if dry["feasible"] else "[red]INFEASIBLE[/]"
    console.print(f"\n[bold]rollback dry-run[/] (before any motion): {verdict}")
    for finding in dry["steps"]:
        mark = "[green]ok[/]" if finding["feasible"] else "[red]NO[/]"
        failing = [p["reason"] for p in finding["preconditions"] if not p["ok"]]
        passing = [p["reason"] for p in finding["preconditions"] if p["ok"]]
        why = "; ".join(failing or passing) or "-"
        if finding["action"] in {"forward_recovery", "escalate"}:
            why = f"irreversible: no compensation exists; {finding['action'].replace('_', ' ')}"
        console.print(f"  {mark} {finding['step']:<16} {finding['action']:<17} {why}")


def _safe_state(result: SagaResult, console: Console) -> None:
    safe = (result.rollback or {}).get("safe_state")
    if not safe:
        return
    if not safe["ok"]:
        console.print(f"[yellow]safe state not reached[/]: {safe['error'][:200]}")
        return
    report = safe["result"]
    tried = ", ".join(f"{t['state']}/{t['route']}={'ok' if t['ok'] else 'blocked'}"
                      for t in report["tried"])
    console.print(f"safe state: drove to [bold]{report['reached']}[/] along a collision-checked "
                  f"path at {report['recovery_speed']} rad/s, checked continuously to "
                  f"{report['collision_tolerance_m'] * 1000:g} mm clearance (candidates: {tried}); "
                  f"tooling {report['tooling']}")


def _truth(world: CellWorld, console: Console) -> None:
    t = world.snapshot()
    console.print(f"simulator ground truth: arm at {t['pose'] or 'an intermediate pose'}, "
                  f"gripper {t['gripper']} holding {t['holding']}, tool {t['tool']}, "
                  f"parts {t['parts']}, boards {t['boards']}, collisions {len(t['collisions'])}, "
                  f"damaged assemblies {t['damaged_assemblies']}, stop {t['stop']}")
    impacts = ", ".join(f"{i['part']} hit {i['hit']} at {i['force_n']} N" for i in t["impacts"])
    console.print(f"physics log (Bullet): {len(t['contacts'])} arm contact(s), impacts: "
                  f"{impacts or 'none'}")


def _story(rig: _Rig, saga: Saga, console: Console) -> tuple[SagaResult, bool]:
    result = rig.engine.run(saga)
    _dry_run(result, console)
    _safe_state(result, console)
    verified = tell(rig.engine, result, console)
    _truth(rig.world, console)
    return result, verified


def run_scenario_b(db_url: str, console: Console) -> DemoRun:
    """AG-384 scenario B: inspection fails after paste; dry-run refuses the mirror rollback."""
    console.print("[bold]PCB assembly[/] (AG-384 scenario B): pick U1 from tray A -> apply "
                  "solder paste to B1 -> place U1 -> move to inspection -> inspect")
    console.print("injected failure: the inspection camera returns an error\n")
    with _rig(db_url) as rig:
        rig.world.inject(CAMERA_FAULT)
        result, verified = _story(rig, scenario_b_saga(app=APP, services=SERVICES), console)
        console.print("\n[bold]for comparison, the naive mirror rollback[/] sent straight to "
                      "the robot (reverse move, re-grip the pasted part, carry it back):")
        _naive_mirror(rig)
        _truth(rig.world, console)
        truth = rig.world.snapshot()
        dropped = truth["parts"]["U1"]["location"] == "dropped"
        # Physics-measured damage: the falling part's impact on a finished assembly.
        hit = any(i["hit"].startswith("assembly:") for i in truth["impacts"])
    ok = result.status is SagaStatus.ESCALATED and verified and dropped and hit
    return DemoRun.of(ok, result.saga_id)


def _naive_mirror(rig: _Rig) -> None:
    # A job of its own (its own saga id and epoch), so the controller admits it.
    world, link, stamp = rig.world, rig.cell.arm, Stamp("naive-mirror", Fence("naive-mirror", 1))
    for goal in ("board_above", "board"):
        path = interpolate(tuple(world.q), world.layout.pose(goal), 0.02)
        link.execute(path[1:], motion_duration(path, 1.0)[1:], stamp=stamp, timeout=10,
                     abort=lambda: False)
    rig.cell.tooling.grip(stamp)
    for goal in ("board_above", "tray_above"):
        path = interpolate(tuple(world.q), world.layout.pose(goal), 0.02)
        link.execute(path[1:], motion_duration(path, 1.0)[1:], stamp=stamp, timeout=10,
                     abort=lambda: False)


def run_forward_recovery(db_url: str, console: Console) -> DemoRun:
    """Scenario B with on_infeasible=forward_recovery: retreat, then send the board to rework."""
    console.print("[bold]PCB assembly[/] with a declared forward recovery: the pasted board "
                  "goes to the rework station")
    console.print("injected failure: the inspection camera returns an error\n")
    with _rig(db_url) as rig:
        rig.world.inject(CAMERA_FAULT)
        saga = scenario_b_saga(on_infeasible=OnInfeasible.FORWARD_RECOVERY, app=APP,
                               services=SERVICES)
        result, verified = _story(rig, saga, console)
    return DemoRun.of(result.status is SagaStatus.COMPENSATED and verified, result.saga_id)


def run_estop(db_url: str, console: Console) -> DemoRun:
    """An e-stop during the rollback's first motion: motion halts, saga escalates, lock-out."""
    console.print("[bold]Part transfer[/]: pick U1 -> carry to inspection -> inspect (fails); "
                  "the rollback carries U1 back")
    console.print("injected: camera error, then an e-stop (category 0) 40% into the rollback's "
                  "first motion\n")
    with _rig(db_url) as rig:
        rig.world.inject(CAMERA_FAULT)
        rig.world.inject({"kind": "estop", "motion": 5, "fraction": 0.4, "category": 0})
        result, verified = _story(rig, _transfer(), console)
        retry = rig.engine.resolve(result.escalation_id or 0, action="retry", author="demo")
        console.print(f"a retry before the human reset: [bold]{retry.status}[/] "
                      "(nothing moved: the stop is latched)")
        rig.world.reset_stop()
        _wait(lambda: not rig.cell.sensors.estop_active())
        rig.cell.reset_stop("operator-7", note="e-stop released after inspecting the cell")
        last = rig.engine.inspect(result.saga_id).escalations[-1].id
        final = rig.engine.resolve(last, action="retry", author="operator-7")
        console.print(f"after operator-7 reset the stop at the machine: [bold]{final.status}[/]")
        _truth(rig.world, console)
    ok = result.status is SagaStatus.ESCALATED and final.status is SagaStatus.COMPENSATED
    return DemoRun.of(ok and verified, result.saga_id)


def run_person(db_url: str, console: Console) -> DemoRun:
    """A person walks into the reach zone during the rollback: protective stop, escalation."""
    console.print("[bold]Part transfer[/] rollback; a person enters the reach zone mid-motion "
                  "(no hardware interlock: the adapter cancels the goal itself)\n")
    with _rig(db_url) as rig:
        rig.world.inject(CAMERA_FAULT)
        rig.world.inject({"kind": "zone_interlock", "on": False})
        rig.world.inject({"kind": "person", "motion": 5, "fraction": 0.3,
                          "position": [0.6, 0.6], "id": "visitor"})
        result, verified = _story(rig, _transfer(), console)
    return DemoRun.of(result.status is SagaStatus.ESCALATED and verified, result.saga_id)


def run_gripper_timeout(db_url: str, console: Console) -> DemoRun:
    """The Modbus gripper never answers the release during compensation: escalation."""
    console.print("[bold]Part transfer[/] rollback; the Modbus RTU gripper stops "
                  "answering RELEASE (Modbus RTU: no reply within the 1 s timeout)\n")
    with _rig(db_url) as rig:
        rig.world.inject(CAMERA_FAULT)
        rig.world.inject({"kind": "no_reply", "count": 99, "executes": False,
                          "commands": ["RELEASE"]})
        result, verified = _story(rig, _transfer(), console)
    return DemoRun.of(result.status is SagaStatus.ESCALATED and verified, result.saga_id)


# A lamp stand set down on the table after the part reached the inspection pose,
# right across the straight joint-space line back to the tray (43% along it).
STAND = {"kind": "obstacle", "id": "stand", "position": [0.47, -0.17, 0.21],
         "size": [0.04, 0.04, 0.42]}


def run_physics_replan(db_url: str, console: Console) -> DemoRun:
    """An obstacle lands on the straight reverse path: the rollback plans around it (OMPL)."""
    console.print("[bold]Part transfer[/] on the physics cell (PyBullet, Panda URDF): pick U1 "
                  "-> carry it to inspection -> inspect (fails)")
    console.print("injected: a lamp stand is set down across the straight way back once the "
                  "arm reaches the inspection pose; then the camera errors\n")
    with _rig(db_url) as rig:
        rig.world.inject(CAMERA_FAULT)
        # Motion 4 is move_inspection's forward motion (after the pick's three).
        rig.world.inject({**STAND, "motion": 4, "fraction": 1.0})
        result, verified = _story(rig, _transfer(), console)
        reverse: dict[str, Any] = next((c for c in (result.rollback or {}).get("compensations", [])
                        if c.get("step") == "move_inspection"), {})
        route = str((reverse.get("result") or {}).get("route", ""))
        console.print(f"reverse of move_inspection: [bold]{route or 'not run'}[/]")
        contacts = rig.world.contact_log
        console.print(f"physics contact log (Bullet, arm and held part): {len(contacts)} "
                      f"contact(s); obstacles in the cell: {sorted(rig.world.obstacles)}")
        planned = "RRTConnect" in route
    ok = result.status is SagaStatus.COMPENSATED and verified and planned and not contacts
    return DemoRun.of(ok, result.saga_id)


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)


DEMOS: dict[str, Demo] = {
    "robot-scenario-b": run_scenario_b,
    "robot-forward-recovery": run_forward_recovery,
    "robot-estop": run_estop,
    "robot-person-in-zone": run_person,
    "robot-gripper-timeout": run_gripper_timeout,
    "robot-physics-replan": run_physics_replan,
}

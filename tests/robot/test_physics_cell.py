"""The physics cell (PyBullet): determinism, the shipped arm description, and the
rollback that plans around an obstacle, judged by the physics engine's own contacts."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from reversa import Engine, SagaStatus
from reversa.adapters.robot import Box, CellLayout, CollisionChecker, plan_path
from reversa.adapters.robot.urdf import panda_description
from reversa.demos.robot import transfer_saga
from reversa.demos.robot.scenarios import STAND
from reversa.safety import interpolate, motion_duration
from reversa.simulators.robot import CellWorld
from reversa.simulators.robot.motion import advance, start_motion

CAMERA_FAULT = {"kind": "camera_error", "message": "inspection camera returned error E42"}


def _drive(world: CellWorld, path: Sequence[Sequence[float]], speed: float = 1.0) -> str:
    """Follow ``path`` on the physics arm (no adapter, no checks); the motion's outcome."""
    times = motion_duration([tuple(q) for q in path], speed)
    points = [{"positions": list(q), "time_from_start": {"sec": int(t),
                                                         "nanosec": round((t % 1) * 1e9)}}
              for q, t in zip(path[1:], times[1:], strict=True)]
    motion = start_motion(world, {"joint_names": list(world.joint_names), "points": points})
    while not advance(world, motion, 0.25):
        pass
    return motion.status


def _transfer_and_back(world: CellWorld) -> dict[str, Any]:
    layout = world.layout
    for pose in ("tray_above", "tray"):
        _drive(world, [world.q, layout.pose(pose)])
    world.command("grip", None)
    for pose in ("tray_above", "inspection", "tray_above", "tray"):
        _drive(world, [world.q, layout.pose(pose)])
    world.command("release", None)
    return {"trace": list(world.trace), "part": world.physics.position("part:U1"),
            "steps": world.physics.steps, "location": world.parts["U1"].location}


def test_same_seed_same_trajectory() -> None:
    # Two cells built apart, driven by the same commands: the same trajectory to the
    # last bit, step by step; another seed lays the part down elsewhere in its tray.
    runs = []
    for seed in (7, 7, 8):
        world = CellWorld(seed=seed)
        try:
            runs.append(_transfer_and_back(world))
        finally:
            world.physics.close()
    first, again, other = runs
    assert first["location"] == "tray" and first["steps"] > 1000
    assert first["trace"] == again["trace"]
    assert first["part"] == again["part"]
    assert other["part"] != first["part"]


def _joints(urdf: Path) -> dict[str, str]:
    root = ET.parse(urdf).getroot()
    return {j.get("name", ""): ET.tostring(j).decode() for j in root.iter("joint")}


def test_the_arm_is_pybullet_datas_panda() -> None:
    # The adapter ships the Panda description pybullet_data bundles (the adapter may
    # not depend on pybullet): same joints, origins, axes and limits, same collision
    # meshes byte for byte; only the visual meshes are left out.
    pybullet_data = pytest.importorskip("pybullet_data")
    shipped = Path(pybullet_data.getDataPath()) / "franka_panda"
    ours = panda_description()
    assert _joints(ours) == _joints(shipped / "panda.urdf")
    meshes = sorted((ours.parent / "meshes" / "collision").glob("*.obj"))
    assert len(meshes) == 10
    for mesh in meshes:
        assert mesh.read_bytes() == (shipped / "meshes" / "collision" / mesh.name).read_bytes()


def test_an_obstacle_on_the_way_back_is_planned_around_without_contact(
    engine: Engine, world: CellWorld
) -> None:
    # The stand lands on the straight line back to the tray once the part reaches
    # the inspection pose (motion 4); the camera then fails.
    world.inject({**STAND, "motion": 4, "fraction": 1.0})
    world.inject(CAMERA_FAULT)
    result = engine.run(transfer_saga())
    assert result.status is SagaStatus.COMPENSATED, result.error
    assert "stand" in world.obstacles
    reverse = next(c for c in result.rollback["compensations"]
                   if c["step"] == "move_inspection")
    assert "RRTConnect" in reverse["result"]["route"]
    # What the controller executed: the reverse went through planned waypoints, not
    # the one-segment straight line.
    back = next(m for m in world.motions if m["number"] == 5)
    assert back["to"] == pytest.approx(list(world.layout.pose("tray_above")))
    assert back["waypoints"] >= 2 and back["outcome"] == "succeeded"
    # The physics engine saw no contact of the arm or the held part with anything,
    # and the part is back in its tray, undamaged.
    assert world.contact_log == [] and world.events_of("collision") == []
    truth = world.snapshot()
    assert truth["parts"]["U1"] == {"location": "tray", "pasted": False, "damaged": False}
    assert truth["impacts"] == []


def test_the_straight_way_back_through_the_stand_hits_it() -> None:
    # Ground truth for the test above: the straight reverse does touch the stand in
    # the physics engine (whose contacts are independent of the adapter's checker).
    world = CellWorld()
    try:
        world.q = list(world.layout.pose("inspection"))
        world.add_obstacle(Box(str(STAND["id"]), tuple(STAND["position"]),  # type: ignore[arg-type]
                               tuple(STAND["size"]), "obstacle"))  # type: ignore[arg-type]
        path = interpolate(tuple(world.q), world.layout.pose("tray_above"), 0.02)
        assert _drive(world, path, speed=0.5) == "aborted"
        assert world.contact_log and {c["b"] for c in world.contact_log} == {"stand"}
        assert world.stop is not None and world.stop.source == "collision:stand"
    finally:
        world.physics.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sweep_planned_paths_touch_nothing_in_physics(seed: int, layout: CellLayout) -> None:
    # Slow sweep (marker `slow`): obstacles at several points of the straight reverse
    # inspection -> tray_above; every planned path, driven on the physics arm, must
    # leave Bullet's contact log empty.
    import random

    rng = random.Random(seed)
    checker = CollisionChecker(layout.arm, layout.limits, grasp_links=layout.grasp_links)
    start, goal = layout.pose("inspection"), layout.pose("tray_above")
    driven = 0
    for _ in range(3):
        world = CellWorld(layout, seed=seed)
        try:
            f = rng.uniform(0.3, 0.6)
            world.physics.set_joints([a + (b - a) * f for a, b in zip(start, goal, strict=True)])
            x, y, z = world.physics.tcp()
            post = Box("post", (x, y, z / 2), (0.04, 0.04, z - 0.02), "obstacle")
            world.q = list(start)
            world.add_obstacle(post)
            scene = world.scene()
            if checker.check_path(start, goal, scene).ok:
                continue  # the post missed the arm's sweep: nothing to plan around
            planned = plan_path(checker.prepared(scene), start, goal, time_s=10.0)
            assert planned.ok, planned.reason
            assert _drive(world, planned.path, speed=0.5) == "succeeded"
            assert world.contact_log == []
            assert math.dist(world.q, goal) < 1e-2
            driven += 1
        finally:
            world.physics.close()
    assert driven >= 1  # the sweep did plan and drive around something


def test_no_path_back_escalates_with_the_planners_reason(engine: Engine,
                                                         world: CellWorld) -> None:
    # A crate lands where the arm would have to be at tray_above: neither the straight
    # reverse nor any planned path reaches that goal, so the dry-run refuses the
    # rollback with the planner's reason and the arm goes to a safe state instead.
    world.inject({"kind": "obstacle", "id": "crate", "position": [0.45, 0.30, 0.20],
                  "size": [0.12, 0.12, 0.12], "motion": 4, "fraction": 1.0})
    world.inject(CAMERA_FAULT)
    result = engine.run(transfer_saga())
    assert result.status is SagaStatus.ESCALATED, result.error
    by_step = {f["step"]: f for f in result.rollback["dry_run"]["steps"]}
    reverse = by_step["move_inspection"]
    assert reverse["feasible"] is False
    (finding,) = reverse["preconditions"]
    assert "collision with crate" in finding["reason"] and "no plan:" in finding["reason"]
    assert result.rollback["compensations"] == []  # nothing moved along the way back
    safe = result.rollback["safe_state"]
    assert safe["ok"] and safe["result"]["reached"] in {"home", "service"}
    assert engine.inspect(result.saga_id).escalations
    assert world.contact_log == [] and world.events_of("collision") == []

"""Collision checking with python-fcl against the planning scene."""

from __future__ import annotations

import itertools

from reversa.adapters.robot import (
    Attached,
    Box,
    CellLayout,
    CollisionChecker,
    Person,
    PlanningScene,
)
from reversa.simulators.robot import CellWorld

TOTE = Box("tote", (-0.36, -0.30, 0.13), (0.14, 0.14, 0.26), "obstacle")


def _scene(world: CellWorld, *extra: Box) -> PlanningScene:
    base = world.scene()
    return PlanningScene(boxes=base.boxes + extra, persons=base.persons,
                         attached=base.attached, parts=base.parts, boards=base.boards,
                         allowed=base.allowed)


def test_every_declared_pose_and_production_path_is_clear(layout: CellLayout) -> None:
    world = CellWorld(layout)
    checker = CollisionChecker(layout.arm, layout.limits)
    scene = world.scene()
    for name, q in layout.poses.items():
        assert checker.contacts(q, scene) == [], name
    route = ["home", "tray_above", "tray", "tray_above", "board_above", "board", "board_above",
             "inspection", "service", "home"]
    for a, b in itertools.pairwise(route):
        report = checker.check_path(layout.pose(a), layout.pose(b), scene, 0.02)
        assert report.ok, (a, b, report.reason)
        assert report.resolution == 0.02


def test_a_new_obstacle_blocks_the_reverse_path_but_not_the_retreat(layout: CellLayout) -> None:
    world = CellWorld(layout)
    checker = CollisionChecker(layout.arm, layout.limits)
    scene = _scene(world, TOTE)
    reverse = checker.check_path(layout.pose("inspection"), layout.pose("board_above"), scene, 0.02)
    assert not reverse.ok
    assert {c.obstacle for c in reverse.contacts} == {"tote"}
    assert reverse.first_bad is not None and 0 < reverse.first_bad < reverse.waypoints - 1
    assert "collision with tote" in reverse.as_check("reverse").reason
    retreat = checker.check_path(layout.pose("inspection"), layout.pose("service"), scene, 0.02)
    assert retreat.ok


def test_a_person_is_an_obstacle(layout: CellLayout) -> None:
    world = CellWorld(layout)
    checker = CollisionChecker(layout.arm, layout.limits)
    base = world.scene()
    near = PlanningScene(boxes=base.boxes, persons=(Person("p1", -0.45, -0.05, 0.2),),
                         allowed=base.allowed)
    report = checker.check_path(layout.pose("home"), layout.pose("board_above"), near, 0.02)
    assert not report.ok
    assert any(c.obstacle == "person:p1" for c in report.contacts)


def test_the_held_object_is_checked_too(layout: CellLayout) -> None:
    world = CellWorld(layout)
    checker = CollisionChecker(layout.arm, layout.limits)
    # A low box right under the tray approach: the bare gripper clears it, a held part does not.
    low = Box("fixture_clamp", (-0.35, 0.35, 0.12), (0.05, 0.05, 0.02), "obstacle")
    base = world.scene()
    empty = PlanningScene(boxes=(*base.boxes, low), allowed=base.allowed)
    holding = PlanningScene(boxes=(*base.boxes, low), allowed=base.allowed,
                            attached=Attached("U1", (0.03, 0.03, 0.012)))
    q = list(layout.pose("tray_above"))
    assert checker.contacts(q, empty) == []
    lowered = checker.check_path(layout.pose("tray_above"), layout.pose("tray"), holding, 0.02)
    bare = checker.check_path(layout.pose("tray_above"), layout.pose("tray"), empty, 0.02)
    assert not lowered.ok and any(c.link == "held:U1" for c in lowered.contacts)
    assert not bare.ok  # the gripper body hits it further down as well
    assert lowered.first_bad is not None and bare.first_bad is not None
    assert lowered.first_bad < bare.first_bad  # the part hits first, it hangs lower


def test_joint_limits_fail_before_any_collision_check(layout: CellLayout) -> None:
    checker = CollisionChecker(layout.arm, layout.limits)
    beyond = (3.5, *layout.pose("home")[1:])
    report = checker.check_path(layout.pose("home"), beyond, PlanningScene(), 0.02)
    assert not report.ok
    assert "joint 1" in report.reason

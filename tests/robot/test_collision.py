"""Continuous collision checking (python-fcl, conservative advancement) and planning (OMPL)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from reversa.adapters.robot import (
    Attached,
    Box,
    CellLayout,
    CollisionChecker,
    Person,
    PlanningScene,
    plan_path,
)
from reversa.safety import interpolate
from reversa.simulators.robot import CellWorld

TOTE = Box("tote", (0.33, -0.37, 0.16), (0.12, 0.12, 0.32), "obstacle")


@pytest.fixture(scope="module")
def base_scene() -> PlanningScene:
    """The cell's scene at rest, as the simulated cell reports it."""
    world = CellWorld()
    try:
        return world.scene()
    finally:
        world.physics.close()


def _with(scene: PlanningScene, *extra: Box, attached: Attached | None = None) -> PlanningScene:
    return PlanningScene(boxes=scene.boxes + extra, persons=scene.persons,
                         attached=attached or scene.attached, parts=scene.parts,
                         boards=scene.boards, allowed=scene.allowed)


def _checker(layout: CellLayout) -> CollisionChecker:
    return CollisionChecker(layout.arm, layout.limits, grasp_links=layout.grasp_links)


def test_every_declared_pose_and_production_path_is_clear(layout: CellLayout,
                                                          base_scene: PlanningScene) -> None:
    checker = _checker(layout)
    for name, q in layout.poses.items():
        assert checker.contacts(q, base_scene) == [], name
    route = ["home", "tray_above", "tray", "tray_above", "board_above", "board", "board_above",
             "inspection", "service", "home"]
    for a, b in itertools.pairwise(route):
        report = checker.check_path(layout.pose(a), layout.pose(b), base_scene)
        assert report.ok, (a, b, report.reason)
        assert report.detail()["check"] == "continuous" and report.iterations >= 2


def test_a_new_obstacle_blocks_the_reverse_path_but_not_the_retreat(
    layout: CellLayout, base_scene: PlanningScene
) -> None:
    checker = _checker(layout)
    scene = _with(base_scene, TOTE)
    reverse = checker.check_path(layout.pose("inspection"), layout.pose("board_above"), scene)
    assert not reverse.ok
    assert {c.obstacle for c in reverse.contacts} == {"tote"}
    assert reverse.at is not None and 0 < reverse.at < 1
    assert "collision with tote" in reverse.as_check("reverse").reason
    retreat = checker.check_path(layout.pose("inspection"), layout.pose("service"), scene)
    assert retreat.ok


def _thin_rod_between_samples(layout: CellLayout, checker: CollisionChecker,
                              scene: PlanningScene, samples: list[tuple[float, ...]]) -> Box:
    """A 1 mm rod that a fingertip passes through halfway between two configurations
    sampled 0.02 rad apart, and that no sampled configuration comes near."""
    finger = layout.arm.links.index("panda_rightfinger")
    hull = next(h for i, h in layout.arm.hulls if i == finger)
    centre = hull.vertices.mean(axis=0)
    for k in range(len(samples) // 2, len(samples) - 1):
        middle = tuple((a + b) / 2 for a, b in zip(samples[k], samples[k + 1], strict=True))
        frame = layout.arm.frames(middle)[finger]
        for vertex in hull.vertices:
            inward = vertex + (centre - vertex) * 0.001 / np.linalg.norm(centre - vertex)
            x, y, z, _ = frame @ np.array([*inward, 1.0])
            rod = Box("rod", (float(x), float(y), float(z)), (0.001, 0.001, 0.001), "obstacle")
            prepared = checker.prepared(_with(scene, rod))
            if not prepared.contacts(middle) or prepared.contacts(samples[k]) \
                    or prepared.contacts(samples[k + 1]):
                continue
            if not any(prepared.contacts(q) for q in samples):
                return rod
    raise AssertionError("no thin obstacle between two samples on this path")


def test_a_thin_obstacle_between_two_sample_points_is_caught(
    layout: CellLayout, base_scene: PlanningScene
) -> None:
    # A 1 mm wire strung where a fingertip passes halfway between two configurations
    # the old check sampled (0.02 rad apart): every sample misses it, continuous
    # checking does not.
    checker = _checker(layout)
    start, goal = layout.pose("home"), layout.pose("service")
    samples = interpolate(start, goal, 0.02)
    rod = _thin_rod_between_samples(layout, checker, base_scene, samples)
    report = checker.check_path(start, goal, _with(base_scene, rod))
    assert not report.ok
    assert {c.obstacle for c in report.contacts} == {"rod"}
    assert {c.link for c in report.contacts} == {"panda_rightfinger"}
    assert checker.check_path(start, goal, base_scene).ok  # without the wire: free


def test_a_person_is_an_obstacle(layout: CellLayout, base_scene: PlanningScene) -> None:
    checker = _checker(layout)
    near = PlanningScene(boxes=base_scene.boxes, persons=(Person("p1", 0.4, -0.3, 0.2),),
                         allowed=base_scene.allowed)
    report = checker.check_path(layout.pose("home"), layout.pose("board_above"), near)
    assert not report.ok
    assert any(c.obstacle == "person:p1" for c in report.contacts)


def test_the_held_object_is_checked_too(layout: CellLayout, base_scene: PlanningScene) -> None:
    checker = _checker(layout)
    # A low clamp right under the tray approach, beside the part: the bare fingers
    # pass it, a held part (hanging 1 cm below the fingertips' centre) does not.
    clamp = Box("clamp", (0.45, 0.30, 0.115), (0.05, 0.015, 0.01), "obstacle")
    empty = _with(base_scene, clamp)
    held = Attached("U1", layout.part_size, layout.grasp_offset)
    holding = PlanningScene(boxes=tuple(b for b in empty.boxes if b.id != "part:U1"),
                            allowed=empty.allowed, attached=held)
    lowered = checker.check_path(layout.pose("tray_above"), layout.pose("tray"), holding)
    assert not lowered.ok and any(c.link == "held:U1" for c in lowered.contacts)


def test_joint_limits_fail_before_any_collision_check(layout: CellLayout) -> None:
    checker = _checker(layout)
    beyond = (3.5, *layout.pose("home")[1:])
    report = checker.check_path(layout.pose("home"), beyond, PlanningScene())
    assert not report.ok
    assert "joint 1" in report.reason


def test_a_planned_path_goes_around_the_obstacle(layout: CellLayout,
                                                 base_scene: PlanningScene) -> None:
    checker = _checker(layout)
    scene = _with(base_scene, TOTE)
    start, goal = layout.pose("inspection"), layout.pose("board_above")
    planned = plan_path(checker.prepared(scene), start, goal, time_s=10.0)
    assert planned.ok, planned.reason
    assert "RRTConnect" in planned.planner
    assert planned.path[0] == start and planned.path[-1] == goal
    assert len(planned.path) >= 3  # not the straight line: it goes around
    # The planned path passes the same continuous check on its own.
    assert checker.check_waypoints(planned.path, scene).ok


def test_no_plan_is_an_answer_with_the_reason(layout: CellLayout,
                                              base_scene: PlanningScene) -> None:
    checker = _checker(layout)
    # A wall around the goal: nothing reaches it.
    cage = Box("cage", (0.45, -0.25, 0.2), (0.3, 0.3, 0.06), "obstacle")
    planned = plan_path(checker.prepared(_with(base_scene, cage)), layout.pose("inspection"),
                        layout.pose("board_above"), time_s=0.5)
    assert not planned.ok
    assert planned.reason.startswith("no plan:")

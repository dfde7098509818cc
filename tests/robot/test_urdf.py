"""The arm from its URDF: forward kinematics agrees with the physics engine's, poses with
the cell's stations, limits with the description."""

from __future__ import annotations

import math
import random

import pytest

from reversa.adapters.robot import CellLayout, UrdfArm
from reversa.adapters.robot.urdf import panda_description
from reversa.simulators.robot import CellWorld
from reversa.simulators.robot.physics import pb


def test_forward_kinematics_matches_bullet_for_every_link(layout: CellLayout) -> None:
    # Bullet computes its own link poses from the same URDF: an independent check
    # of the adapter's joint table, origins and axes.
    world = CellWorld(layout)
    physics = world.physics
    rng = random.Random(3)
    try:
        for _ in range(5):
            q = [rng.uniform(lo, hi) for lo, hi in zip(layout.limits.lower, layout.limits.upper,
                                                          strict=True)]
            world.q = q
            frames = layout.arm.frames(q)
            for link, name in physics.link_names.items():
                if name not in layout.arm.links or link < 0:
                    continue
                state = pb.getLinkState(physics.arm, link, computeForwardKinematics=True,
                                                physicsClientId=physics.client)
                ours = frames[layout.arm.links.index(name)]
                assert math.dist(state[4], ours[:3, 3]) < 1e-6, name
    finally:
        physics.close()


def test_named_poses_put_the_fingers_at_the_stations(layout: CellLayout) -> None:
    offset = layout.grasp_offset[2]  # the part hangs this far below the tool centre point
    for name, station in layout.stations.items():
        x, y, z = layout.arm.tcp(layout.pose(station.grasp_pose))
        cx, cy, _ = station.surface.center
        assert math.dist((x, y), (cx, cy)) < 1e-3, name
        assert z - offset == pytest.approx(station.rest_z, abs=0.003), name
        pose = layout.arm.tcp_pose(layout.pose(station.grasp_pose))
        assert pose[2, 2] == pytest.approx(-1.0, abs=1e-3)  # tool pointing down


def test_limits_come_from_the_urdf(layout: CellLayout) -> None:
    arm = UrdfArm(panda_description(), base_link="panda_link0", tip_link="panda_grasptarget")
    assert arm.joint_names == tuple(f"panda_joint{i}" for i in range(1, 8))
    assert layout.limits.lower == arm.lower and layout.limits.upper == arm.upper
    assert arm.upper[3] == 0.0  # the Panda's elbow only bends one way
    assert {hull.link for _, hull in arm.hulls} >= {"panda_link1", "panda_hand",
                                                    "panda_leftfinger"}


def test_a_tip_outside_the_chain_is_refused() -> None:
    with pytest.raises(ValueError, match="not below"):
        UrdfArm(panda_description(), base_link="panda_link3", tip_link="panda_link1")

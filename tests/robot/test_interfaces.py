"""The shipped cell-bridge interface definitions (ROS 2 .msg/.srv/.action) agree with what
the adapter sends and reads, and with what the simulated cell bridge publishes."""

from __future__ import annotations

import re
from pathlib import Path

from reversa import Fence
from reversa.adapters.robot import Attached, PlanningScene, Stamp
from reversa.adapters.robot.ros import INTERFACES, RosNames, _stamped
from reversa.simulators.robot import CellWorld

_STANDARD = {"trajectory_msgs", "sensor_msgs"}
_PRIMITIVES = {"bool", "int8", "int32", "int64", "float64", "string"}


def _sections(path: Path) -> list[dict[str, str]]:
    """Each section (request/response/feedback) of an interface file: field -> type."""
    sections: list[dict[str, str]] = [{}]
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line == "---":
            sections.append({})
            continue
        kind, name = line.split()
        sections[-1][name] = kind
    return sections


def _fields(name: str) -> dict[str, str]:
    return _sections(INTERFACES / "msg" / f"{name}.msg")[0]


def test_every_referenced_type_is_defined() -> None:
    files = sorted(INTERFACES.glob("*/*.*"))
    assert {f.suffix for f in files} == {".msg", ".srv", ".action"}
    messages = {f.stem for f in INTERFACES.glob("msg/*.msg")}
    for path in files:
        for section in _sections(path):
            for kind in section.values():
                base = re.sub(r"\[.*\]$", "", kind)
                if base in _PRIMITIVES:
                    continue
                if "/" in base:
                    assert base.split("/")[0] in _STANDARD, (path.name, kind)
                else:
                    assert base in messages, (path.name, kind)


def test_messages_match_the_adapters_scene_and_the_bridges_topics() -> None:
    world = CellWorld()
    try:
        world.q = list(world.layout.pose("tray"))
        world.command("grip", None)
        world.add_person("p1", 0.4, -0.3)  # walks in: the zone trips a stop
        scene = world.scene().as_dict()
        assert set(_fields("PlanningScene")) == set(scene)
        assert set(_fields("Box")) == set(scene["boxes"][0])
        assert set(_fields("Person")) == set(scene["persons"][0])
        assert set(_fields("Attached")) == set(scene["attached"])
        assert set(_fields("PartStatus")) == set(scene["parts"][0])
        assert set(_fields("BoardStatus")) == set(scene["boards"][0])
        assert set(_fields("SafetyStop")) == set(world.estop_msg())
        assert set(_fields("ZoneStatus")) == set(world.zone_msg())
    finally:
        world.physics.close()


def test_every_command_carries_the_key_and_the_fence() -> None:
    stamped = _stamped(Stamp("rv:s:step:action", Fence("s", 3)))
    assert set(_fields("Fence")) == set(stamped["fence"])
    for name in ("Block", "GripperCommand", "ToolCommand", "Inspect", "RouteBoard"):
        request = _sections(INTERFACES / "srv" / f"{name}.srv")[0]
        assert request["fence"] == "Fence" and request["key"] == "string", name
    goal, result, _feedback = _sections(INTERFACES / "action" /
                                        "FencedFollowJointTrajectory.action")
    assert set(goal) == {"trajectory", *stamped}
    assert set(result) == {"error_code", "error_string"}
    assert RosNames().trajectory_type.endswith("/FencedFollowJointTrajectory")


def test_a_scene_in_message_shape_reads_as_the_same_scene() -> None:
    # A real bridge serialises Attached[<=1] as a list and AllowedContact as objects.
    world = CellWorld()
    try:
        scene = world.scene()
        held = Attached("U1", (0.03, 0.03, 0.03), (0.0, 0.0, 0.01))
        data = scene.as_dict()
        as_msg = {**data, "attached": [held.as_dict()],
                  "allowed": [{"link": a, "object": b} for a, b in data["allowed"]]}
        read = PlanningScene.from_dict(as_msg)
        assert read.attached == held
        assert read.allowed == scene.allowed and read.boxes == scene.boxes
        assert PlanningScene.from_dict({**data, "attached": []}).attached is None
    finally:
        world.physics.close()

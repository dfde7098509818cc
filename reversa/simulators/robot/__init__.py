"""Simulators of a robot cell: a rosbridge v2 server and a serial gripper/tool controller.

Both front one :class:`CellWorld` (the ground truth tests assert on). Start
them in-process with :func:`start_rosbridge` / :func:`start_gripper`, or as
services with ``reversa sim rosbridge`` / ``reversa sim gripper``.
"""

from __future__ import annotations

from .faults import FaultPlan, MotionTrigger, SerialFault
from .rosbridge import RosbridgeSim, start_rosbridge
from .serial_gripper import SerialGripperSim, start_gripper
from .world import CellWorld, DeviceError

__all__ = [
    "CellWorld",
    "DeviceError",
    "FaultPlan",
    "MotionTrigger",
    "SerialFault",
    "RosbridgeSim",
    "SerialGripperSim",
    "start_gripper",
    "start_rosbridge",
]

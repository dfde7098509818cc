"""Simulators of a robot cell: a physics cell served over rosbridge, and Modbus RTU tooling.

Both front one :class:`CellWorld` (the ground truth tests assert on): a PyBullet
world with the arm from its URDF, fixtures, trays, a conveyor and parts as rigid
bodies. Start them in-process with :func:`start_rosbridge` / :func:`start_gripper`,
or as services with ``reversa sim rosbridge`` / ``reversa sim gripper``.
"""

from __future__ import annotations

from .faults import FaultPlan, MotionTrigger, SerialFault
from .modbus_gripper import ModbusGripperSim, start_gripper
from .rosbridge import RosbridgeSim, start_rosbridge
from .world import CellWorld, DeviceError

__all__ = [
    "CellWorld",
    "DeviceError",
    "FaultPlan",
    "MotionTrigger",
    "SerialFault",
    "RosbridgeSim",
    "ModbusGripperSim",
    "start_gripper",
    "start_rosbridge",
]

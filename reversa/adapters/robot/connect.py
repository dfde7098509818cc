"""Build a :class:`~.cell.RobotCell` from transport addresses."""

from __future__ import annotations

from urllib.parse import urlparse

from reversa.core.clock import Clock
from reversa.core.errors import ConfigError

from .cell import RobotCell
from .layout import CellLayout, pcb_cell
from .modbus_tooling import ModbusTooling
from .ports import ToolingPort
from .ros import RosLink, RosNames, RosTooling

__all__ = ["connect_cell"]


def connect_cell(
    rosbridge: str,
    *,
    serial_port: str | None = None,
    layout: CellLayout | None = None,
    names: RosNames | None = None,
    clock: Clock | None = None,
    production_speed: float = 1.0,
    serial_timeout: float = 0.5,
    call_timeout: float = 3.0,
    name: str = "cell",
) -> RobotCell:
    """Connect to a cell: arm, sensors, camera and conveyor over rosbridge; tooling
    over Modbus RTU (gripper and dispenser) when ``serial_port`` is given, else over
    rosbridge.

    Args:
        rosbridge: ``ws://host:port`` of a rosbridge_server (or the simulator).
        serial_port: Serial device of the tooling's Modbus RTU line.
        layout: Cell description (default: the scenario B PCB cell).
        names: ROS interface names.
        clock: The engine's clock (stamps stop records).
        production_speed: Joint speed of forward motions (rad/s).
        serial_timeout: Reply timeout on the Modbus line.
        call_timeout: ROS service call timeout.
        name: The cell's identity in resource holds (give each physical cell
            sharing a store its own).

    Raises:
        ConfigError: ``rosbridge`` is not a ``ws://host:port`` URL.
        TransientError: A transport cannot be reached.
    """
    url = urlparse(rosbridge)
    if url.scheme not in {"ws", "wss"} or not url.hostname:
        raise ConfigError(f"rosbridge address {rosbridge!r} must look like ws://host:9090")
    link = RosLink(url.hostname, url.port or 9090, names=names, call_timeout=call_timeout)
    tooling: ToolingPort
    if serial_port:
        modbus = ModbusTooling(serial_port, timeout=serial_timeout)
        modbus.activate()
        tooling = modbus
    else:
        tooling = RosTooling(link)
    return RobotCell(layout or pcb_cell(), arm=link, sensors=link, tooling=tooling,
                     camera=link, conveyor=link, clock=clock,
                     production_speed=production_speed, name=name)

"""Gripper and paste dispenser over Modbus RTU (pymodbus), with the register map of
:mod:`.robotiq`.

Every command is one function-16 write carrying the command and the fence block
(key, saga, epoch), so the device checks the fence atomically with the effect.
Translation at this boundary:

* exception 6 (server device busy): the device did not act --
  :class:`~reversa.core.errors.TransientError`, retried;
* exception 4 (server device failure): the device refused; input register 2003
  says why: ``FENCED`` / ``KEY_BLOCKED`` -> :class:`~reversa.core.errors.Fenced`,
  ``STOPPED`` (its safety input) -> :class:`~reversa.core.errors.EmergencyStop`,
  anything else (a jam, the nozzle not over a board) ->
  :class:`~reversa.core.errors.PermanentError`;
* no reply, or a reply failing its CRC, to a command: the effect may have
  happened -- :class:`~reversa.core.errors.OutcomeUnknown`; the retry carries the
  same key, which the device deduplicates; to a read, a block or a query:
  :class:`~reversa.core.errors.TransientError` (asking again answers the same).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

from reversa.core.context import Fence
from reversa.core.errors import (
    EmergencyStop,
    Fenced,
    OutcomeUnknown,
    PermanentError,
    TransientError,
)

from . import robotiq as rq
from .ports import BlockOutcome, Stamp

__all__ = ["ModbusTooling"]

# Every failure is raised as a Reversa error at this boundary; pymodbus's own error
# log (with hex dumps of the frames) would report each one a second time.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_BUSY = 6
_FAILURE = 4
_POLL_S = 0.005
_READ_ATTEMPTS = 2  # a status read whose reply is lost or garbled is asked once more


class ModbusTooling:
    """Gripper (unit 9) and dispenser (unit 10) on one Modbus RTU line (a ToolingPort).

    Args:
        port: Serial device of the RS-485 adapter (or the simulator's pty).
        baudrate: Line speed.
        timeout: Seconds to wait for a reply.
        stroke_timeout: Seconds a gripper stroke may take to report its end.
        gripper: Unit id of the gripper.
        dispenser: Unit id of the dispenser.

    Raises:
        TransientError: The port cannot be opened or the gripper does not answer.
    """

    def __init__(self, port: str, *, baudrate: int = 115200, timeout: float = 0.3,
                 stroke_timeout: float = 3.0, gripper: int = rq.GRIPPER,
                 dispenser: int = rq.DISPENSER) -> None:
        self.port = port
        self.timeout = timeout
        self.stroke_timeout = stroke_timeout
        self.units = {"gripper": gripper, "dispenser": dispenser}
        self._lock = threading.Lock()
        self._client = ModbusSerialClient(port, framer=FramerType.RTU, baudrate=baudrate,
                                          timeout=timeout, retries=0)
        if not self._client.connect():
            raise TransientError(f"cannot open the Modbus RTU line at {port}")

    def close(self) -> None:
        """Close the line."""
        self._client.close()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated

    def activate(self) -> None:
        """Activate the gripper (rACT) if it is not yet; Robotiq grippers refuse motion
        before that. Not fenced: activation changes nothing in the cell."""
        if self._status("gripper")[0] >> 8 & 0x30 == 0x30:
            return
        self._write("gripper", "activate", [rq.R_ACT << 8, 0, 0xFFFF], None, rq.OP_COMMAND)
        self._await_stroke(lambda regs: regs[0] >> 8 & 0x30 == 0x30, "activation")

    # -- ToolingPort --------------------------------------------------------------------
    def grip(self, stamp: Stamp) -> dict[str, Any]:
        """Close the fingers; ``object`` tells whether they stopped on one."""
        return self._stroke(stamp, 255, "grip")

    def release(self, stamp: Stamp) -> dict[str, Any]:
        """Open the fingers."""
        return self._stroke(stamp, 0, "release")

    def dispense(self, stamp: Stamp, volume_ul: float) -> dict[str, Any]:
        """Dispense solder paste."""
        self._write("dispenser", "dispense", [1, round(volume_ul * 10), 0], stamp,
                    rq.OP_COMMAND)
        return {**self.status(), "volume_ul": volume_ul}

    def tool_off(self, stamp: Stamp) -> dict[str, Any]:
        """Switch the dispenser off."""
        self._write("dispenser", "tool_off", [2, 0, 0], stamp, rq.OP_COMMAND)
        return self.status()

    def block(self, stamp: Stamp) -> BlockOutcome:
        """Tombstone ``stamp.key`` at both devices unless a command under it ran there."""
        executed: list[str] = []
        for unit in ("gripper", "dispenser"):
            self._write(unit, "block", [0, 0, 0], stamp, rq.OP_BLOCK)
            executed += rq.commands_of(self._status(unit)[4])
        return BlockOutcome(tuple(executed))

    def status(self) -> dict[str, Any]:
        """``{"gripper": "open"|"closed", "object": bool, "tool": "on"|"off", ...}``."""
        grip = self._status("gripper")
        tool = self._status("dispenser")
        obj = grip[0] >> 14 & 0x3
        return {"gripper": "closed" if (grip[1] & 0xFF) >= 128 else "open",
                "object": obj in (1, 2), "position": grip[2] >> 8,
                "fault": grip[1] >> 8 & 0x0F, "tool": "on" if tool[0] & 1 else "off"}

    def query(self, key: str) -> dict[str, Any] | None:
        """What ran under ``key`` at either device (``commands``), or None."""
        commands: list[str] = []
        for unit in ("gripper", "dispenser"):
            self._write(unit, "query", [0, 0, 0], Stamp(key, Fence("", 0)), rq.OP_QUERY)
            commands += rq.commands_of(self._status(unit)[4])
        return {"commands": commands} if commands else None

    # -- protocol ---------------------------------------------------------------------
    def _stroke(self, stamp: Stamp, position: int, command: str) -> dict[str, Any]:
        self._write("gripper", command, [(rq.R_ACT | rq.R_GTO) << 8, position, 0xFFFF], stamp,
                    rq.OP_COMMAND)
        regs = self._await_stroke(lambda r: r[0] >> 14 & 0x3 != 0, command)
        obj = regs[0] >> 14 & 0x3
        return {"gripper": "closed" if position >= 128 else "open", "object": obj in (1, 2),
                "position": regs[2] >> 8}

    def _await_stroke(self, done: Any, what: str) -> list[int]:
        end = time.monotonic() + self.stroke_timeout
        while True:
            try:
                regs = self._status("gripper")
            except TransientError as exc:
                raise OutcomeUnknown(f"gripper {what}: status unreadable after the command "
                                     f"({exc.message})") from exc
            if done(regs):
                return regs
            if time.monotonic() > end:
                raise OutcomeUnknown(f"gripper {what} did not finish within "
                                     f"{self.stroke_timeout:g}s")
            time.sleep(_POLL_S)

    def _status(self, unit: str) -> list[int]:
        with self._lock:
            # A read changes nothing, so a lost or garbled reply is asked again once at
            # once (a busy line drops a frame now and then); twice in a row is the
            # caller's TransientError.
            for attempt in range(_READ_ATTEMPTS):
                try:
                    reply = self._client.read_input_registers(
                        rq.INPUT, count=rq.INPUT_COUNT, device_id=self.units[unit])
                    break
                except ModbusException as exc:
                    if attempt + 1 == _READ_ATTEMPTS:
                        raise TransientError(f"Modbus {unit} status on {self.port}: no valid "
                                             f"reply ({exc})") from exc
        if reply.isError():
            raise TransientError(f"Modbus {unit} status on {self.port}: exception "
                                 f"{getattr(reply, 'exception_code', '?')}")
        return list(reply.registers)

    def _write(self, unit: str, command: str, registers: list[int], stamp: Stamp | None,
               op: int) -> None:
        fence = rq.fence_block(stamp.key if stamp else None,
                               stamp.fence.saga_id if stamp and stamp.fence.epoch else None,
                               stamp.fence.epoch if stamp else 0, op)
        mutating = op == rq.OP_COMMAND
        with self._lock:
            try:
                reply = self._client.write_registers(rq.OUTPUT, [*registers, *fence],
                                                     device_id=self.units[unit])
            except ModbusException as exc:
                message = f"Modbus {unit} {command} on {self.port}: no valid reply ({exc})"
                if mutating:
                    raise OutcomeUnknown(message + "; the command may have taken effect") \
                        from exc
                raise TransientError(message) from exc
        if not reply.isError():
            return
        code = int(getattr(reply, "exception_code", 0))
        if code == _BUSY:
            raise TransientError(f"Modbus {unit} refused {command}: BUSY (did not act)")
        reason = rq.REFUSALS.get(self._status(unit)[3], f"exception {code}")
        message = f"Modbus {unit} refused {command}: {reason}"
        if reason == "STOPPED":
            raise EmergencyStop(message, category=2, source=f"device:{unit}")
        if reason in {"FENCED", "KEY_BLOCKED"}:
            raise Fenced(message, code=reason.lower())
        raise PermanentError(message, code=f"device_{reason.lower().replace(' ', '_')}")

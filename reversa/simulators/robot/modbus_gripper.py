"""The tooling's Modbus RTU devices on a pseudo-terminal: a Robotiq-style gripper and a
paste dispenser, served by pymodbus and wired to the physics cell.

Two pty pairs joined by a relay thread make a null-modem cable: pymodbus's RTU
server opens one end, ``serial.Serial(sim.path)`` (or the adapter's
:class:`~reversa.adapters.robot.ModbusTooling`) opens the other, like any
``/dev/tty*``. The register map is :mod:`reversa.adapters.robot.robotiq`.

The devices act on a :class:`~.world.CellWorld` (the rosbridge simulator's, when
both run in one process): closing the gripper closes the physics arm's fingers
and grips whatever part is between them. Each device keeps its own fence, like
the cell bridge: the highest epoch per (hashed) saga and the tombstoned keys; a
stale epoch or a blocked key is refused with exception 4 and the reason in
input register 2003. Faults armed on the world's :class:`~.faults.FaultPlan`
act on the cable (``no_reply``: the reply is lost, after the device acted or,
with ``executes=False``, the request is lost before it; ``bad_checksum``: the
reply is corrupted) or in the device (``busy``: exception 6; ``jam``: the
fingers do not move, exception 4 with reason JAM).

Run it with ``reversa sim gripper`` (blocking :func:`serve` prints the device
path), or in tests with :func:`start_gripper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import time
import tty

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from reversa.adapters.robot import robotiq as rq
from reversa.core.context import Fence
from reversa.core.errors import Fenced

from .faults import SerialFault
from .world import CellWorld, DeviceError

__all__ = ["ModbusGripperSim", "serve", "start_gripper"]

_REFUSAL_CODES = {v: k for k, v in rq.REFUSALS.items()}


class _Device:
    """One unit on the line: its registers' meaning, its fence, its commands."""

    def __init__(self, sim: ModbusGripperSim, unit: int) -> None:
        self.sim = sim
        self.unit = unit
        self.refusal = 0
        self.executed_mask = 0
        self.requested = 0  # gPR echo

    @property
    def world(self) -> CellWorld:
        return self.sim.world

    async def action(self, function_code: int, start_address: int, address: int, count: int,
                     registers: list[int], values: list[int] | list[bool] | None
                     ) -> ExcCodes | None:
        """pymodbus calls this before every access; writes act, reads refresh."""
        del count
        if values is None:
            self._refresh(registers, start_address)
            return None
        if address != rq.OUTPUT or len(values) < rq.OUTPUT_COUNT:
            return ExcCodes.ILLEGAL_ADDRESS
        return self._write([int(v) for v in values])

    def _refresh(self, registers: list[int], start: int) -> None:
        w = self.world
        with w.lock:
            if self.unit == rq.GRIPPER:
                fingers = w.physics.fingers()
                position = round(255 * (1 - fingers / 0.04))
                obj = 2 if w.holding else (3 if self.sim.activated else 0)
                status = (0x01 | 0x08 | 0x30 if self.sim.activated else 0) | obj << 6
                # The echo is the last request, unless the cell was reset (or the fingers
                # moved by hand) since: then it follows the fingers, as after a power cycle.
                if (self.requested >= 128) != (w.gripper == "closed"):
                    self.requested = 255 if w.gripper == "closed" else 0
                regs = [status << 8, (self.sim.fault & 0x0F) << 8 | self.requested,
                        max(0, min(255, position)) << 8]
            else:
                regs = [1 if w.tool == "on" else 0, 0, 0]
        base = rq.INPUT - start
        registers[base:base + rq.INPUT_COUNT] = [*regs, self.refusal, self.executed_mask,
                                                 int(self.executed_mask != 0)]

    def _write(self, values: list[int]) -> ExcCodes | None:
        command_regs, fence = values[:3], values[3:rq.OUTPUT_COUNT]
        key = rq.join64(fence[0:4])
        saga = rq.join64(fence[4:8])
        epoch = rq.join64(fence[8:12])
        op = fence[12]
        self.refusal = 0
        stamp_key = f"modbus:{self.unit}:{key:016x}" if key else None
        stamp_fence = Fence(f"modbus:{saga:016x}", epoch) if saga else None
        w = self.world
        try:
            if op == rq.OP_QUERY:
                found = w.query(stamp_key or "")
                self.executed_mask = _mask(found["commands"] if found else [])
                return None
            if op == rq.OP_BLOCK:
                self.executed_mask = _mask(w.block(stamp_key or "", stamp_fence))
                return None
            command = self._command(command_regs, apply=False)
            if command is None:
                self._command(command_regs, apply=True)
                return None
            fault = self.sim.device_fault(command)
            if fault == "busy":
                return ExcCodes.DEVICE_BUSY
            if fault == "jam":
                self.refusal = _REFUSAL_CODES["JAM"]
                self.sim.fault = 0x0E  # overcurrent: the fingers are blocked
                return ExcCodes.DEVICE_FAILURE
            extra = {"volume_ul": command_regs[1] / 10} if command == "dispense" else {}
            w.command(command, stamp_key, stamp_fence, **extra)
            self._command(command_regs, apply=True)
            self.sim.fault = 0
            return None
        except Fenced as exc:
            self.refusal = _REFUSAL_CODES["KEY_BLOCKED" if exc.code == "key_blocked"
                                          else "FENCED"]
        except DeviceError as exc:
            self.refusal = _REFUSAL_CODES.get(exc.code, _REFUSAL_CODES["JAM"])
        return ExcCodes.DEVICE_FAILURE

    def _command(self, regs: list[int], *, apply: bool) -> str | None:
        """The command a write asks for; with ``apply``, its effect on the device's own
        registers (activation, the position request echo)."""
        if self.unit == rq.DISPENSER:
            return {1: "dispense", 2: "tool_off"}.get(regs[0])
        action = regs[0] >> 8
        if not action & rq.R_GTO or not self.sim.activated:
            if apply:
                self.sim.activated = bool(action & rq.R_ACT)  # (de)activation only
            return None
        if apply:
            self.requested = regs[1] & 0xFF
        return "grip" if (regs[1] & 0xFF) >= 128 else "release"


def _mask(commands: list[str]) -> int:
    mask = 0
    for name in commands:
        mask |= rq.COMMAND_BITS.get(name, 0)
    return mask


class ModbusGripperSim:
    """The simulated RS-485 line with its two devices.

    Args:
        world: The simulated cell it belongs to (a fresh one by default).
        baudrate: Line speed both ends use.
    """

    def __init__(self, world: CellWorld | None = None, *, baudrate: int = 115200) -> None:
        self.world = world or CellWorld()
        self.baudrate = baudrate
        self.path = ""
        self.activated = True  # powered up and activated, as a cell leaves it
        self.fault = 0
        self.frames: list[bytes] = []  # every request frame that reached the devices
        self._fds: list[int] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusSerialServer | None = None
        self._stopped: asyncio.Event | None = None
        self.devices = {unit: _Device(self, unit) for unit in (rq.GRIPPER, rq.DISPENSER)}

    def start(self) -> str:
        """Open the cable, start the devices; returns the path the client opens."""
        device_master, device_slave = os.openpty()
        client_master, client_slave = os.openpty()
        for fd in (device_slave, client_slave):
            tty.setraw(fd)  # no echo, no line editing: a serial line, not a terminal
        self._fds = [device_master, device_slave, client_master, client_slave]
        self.path = os.ttyname(client_slave)
        device_path = os.ttyname(device_slave)
        ready = threading.Event()
        server = threading.Thread(target=self._serve, args=(device_path, ready),
                                  name="modbus-devices", daemon=True)
        relay = threading.Thread(target=self._relay, args=(client_master, device_master),
                                 name="modbus-cable", daemon=True)
        self._threads = [server, relay]
        server.start()
        relay.start()
        ready.wait(10)
        return self.path

    def stop(self) -> None:
        """Stop the devices and close the cable."""
        self._stop.set()
        if self._loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
        for thread in self._threads:
            thread.join(5)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def device_fault(self, command: str) -> str | None:
        """Consume an armed device fault (busy, jam) for ``command``, if any."""
        fault = self._take(_WORDS.get(command, command.upper()), {"busy", "jam"})
        return fault.kind if fault else None

    def _take(self, word: str, kinds: set[str]) -> SerialFault | None:
        with self.world.lock:
            for fault in list(self.world.faults.serial):
                if fault.kind not in kinds:
                    continue
                applies = word in fault.commands if fault.commands else word in _WORDS.values()
                if applies:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.world.faults.serial.remove(fault)
                    return fault
        return None

    # -- the devices ------------------------------------------------------------------
    def _serve(self, device_path: str, ready: threading.Event) -> None:
        devices = [
            SimDevice(unit, simdata=[SimData(rq.OUTPUT, count=rq.OUTPUT_COUNT, values=0,
                                             datatype=DataType.REGISTERS),
                                     SimData(rq.INPUT, count=rq.INPUT_COUNT, values=0,
                                             datatype=DataType.REGISTERS)],
                      action=device.action)
            for unit, device in self.devices.items()
        ]

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            stopped = asyncio.Event()
            self._stopped = stopped
            self._server = ModbusSerialServer(devices, framer=FramerType.RTU, port=device_path,
                                              baudrate=self.baudrate, timeout=1)
            await self._server.serve_forever(background=True)
            ready.set()
            await stopped.wait()
            await self._server.shutdown()  # type: ignore[no-untyped-call]  # unannotated upstream

        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(main())

    # -- the cable --------------------------------------------------------------------
    def _relay(self, client: int, device: int) -> None:
        pending = {client: b"", device: b""}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([client, device], [], [], 0.05)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    time.sleep(0.01)  # no reader on the slave side yet
                    continue
                pending[fd] += data
                while True:
                    frame, pending[fd] = _split(pending[fd], request=fd == client)
                    if frame is None:
                        break
                    out = self._carry(frame, request=fd == client)
                    if out:
                        with contextlib.suppress(OSError):
                            os.write(device if fd == client else client, out)

    def _carry(self, frame: bytes, *, request: bool) -> bytes | None:
        if request:
            word = _word(frame)
            fault = self._take(word, {"no_reply", "bad_checksum"}) if word else None
            self._in_flight = fault
            if fault is not None and fault.kind == "no_reply" and not fault.executes:
                return None  # lost on the way to the device: it never acts
            self.frames.append(frame)
            return frame
        fault, self._in_flight = getattr(self, "_in_flight", None), None
        if fault is None:
            return frame
        if fault.kind == "no_reply":
            return None  # the device acted; its reply is lost
        return frame[:-2] + bytes([frame[-2] ^ 0xFF, frame[-1]])  # CRC no longer matches


_WORDS = {"grip": "GRIP", "release": "RELEASE", "dispense": "DISPENSE", "tool_off": "TOOLOFF"}


def _word(frame: bytes) -> str | None:
    """What a request frame asks, in the fault plan's words."""
    unit, function = frame[0], frame[1]
    if function == 4:
        return "STATUS"
    if function != 16 or len(frame) < 9 + 2 * rq.OUTPUT_COUNT:
        return None
    regs = [int.from_bytes(frame[7 + 2 * i:9 + 2 * i], "big") for i in range(rq.OUTPUT_COUNT)]
    op = regs[15]
    if op == rq.OP_BLOCK:
        return "BLOCK"
    if op == rq.OP_QUERY:
        return "QUERY"
    if unit == rq.DISPENSER:
        return {1: "DISPENSE", 2: "TOOLOFF"}.get(regs[0])
    if not regs[0] >> 8 & rq.R_GTO:
        return "ACTIVATE"
    return "GRIP" if (regs[1] & 0xFF) >= 128 else "RELEASE"


def _split(buffer: bytes, *, request: bool) -> tuple[bytes | None, bytes]:
    """One complete RTU frame off the front of ``buffer``, by the length its function
    code implies (only the functions the tooling uses: 4 and 16, and exceptions)."""
    if len(buffer) < 2:
        return None, buffer
    function = buffer[1]
    if function & 0x80:
        size = 5
    elif function == 4:
        size = 8 if request else (5 + buffer[2] if len(buffer) > 2 else 1 << 16)
    elif function == 16:
        size = (9 + buffer[6] if len(buffer) > 6 else 1 << 16) if request else 8
    else:
        return buffer, b""  # not ours: pass it on whole
    if len(buffer) < size:
        return None, buffer
    return buffer[:size], buffer[size:]


def start_gripper(world: CellWorld | None = None) -> ModbusGripperSim:
    """Start the simulated devices on a new pty (tests and demos); ``stop()`` them after."""
    sim = ModbusGripperSim(world)
    sim.start()
    return sim


def serve(port: int | None = None) -> None:
    """Serve standalone devices until interrupted (``reversa sim gripper``).

    Args:
        port: Ignored (a pty has no port number); accepted so the CLI can pass one.
    """
    del port
    sim = start_gripper()
    print(f"Modbus RTU gripper (unit 9) and dispenser (unit 10) on {sim.path} "
          "(open it with the adapter's ModbusTooling or any Modbus RTU client)", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


"""A serial gripper/tool controller on a pseudo-terminal that pyserial opens as a real port.

The device end is the pty master; ``serial.Serial(sim.path)`` opens the slave
like any ``/dev/tty*``. Commands act on a :class:`~.world.CellWorld` (shared
with the rosbridge simulator when both run in one process). Faults armed on the
world's :class:`~.faults.FaultPlan` (``no_reply``, ``bad_checksum``, ``busy``,
``jam``) make the device drop or corrupt replies, or refuse commands.

The controller is fenced like the arm's: every command carries the (hashed)
saga id and epoch, a stale epoch or a blocked key is answered ``ERR FENCED`` /
``ERR KEY_BLOCKED``, and ``BLOCK`` tombstones a key that has not run. It is a
second device: its keys and saga ids arrive hashed, so its fencing memory is
its own even though it shares the world's state.

Run it with ``reversa sim gripper`` (blocking :func:`serve` prints the device
path), or in tests with :func:`start_gripper`.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty

from reversa.adapters.robot.lineproto import FrameError, decode, encode
from reversa.core.context import Fence
from reversa.core.errors import Fenced

from .faults import SerialFault
from .world import CellWorld, DeviceError

__all__ = ["SerialGripperSim", "serve", "start_gripper"]

_COMMANDS = {"GRIP": "grip", "RELEASE": "release", "DISPENSE": "dispense", "TOOLOFF": "tool_off"}


class SerialGripperSim:
    """The simulated controller.

    Args:
        world: The simulated cell it belongs to (a fresh one by default).
    """

    def __init__(self, world: CellWorld | None = None) -> None:
        self.world = world or CellWorld()
        self.path = ""
        self.received: list[bytes] = []
        self._master = -1
        self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Open the pty and serve it from a thread; returns the device path."""
        self._master, self._slave = os.openpty()
        # Raw mode before any client opens it: no echo, no line editing.
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._run, name="serial-gripper-sim", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        """Stop serving and close the pty."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                time.sleep(0.01)  # no reader on the slave side yet
                continue
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                line = line.strip(b"\r")
                if not line:
                    continue
                self.received.append(line)
                reply = self.handle(line)
                if reply:
                    with contextlib.suppress(OSError):
                        os.write(self._master, reply)

    def handle(self, line: bytes) -> bytes | None:
        """Answer one request line (None: the injected fault swallows the reply)."""
        try:
            frame = decode(line)
        except FrameError:
            seq = line.split(b" ", 1)[0]
            return encode(int(seq) if seq.isdigit() else 0, "ERR", "CHECKSUM", "bad", "request")
        fault = self._fault(frame.word)
        if fault is not None and fault.kind in {"busy", "jam"}:
            return encode(frame.seq, "ERR", fault.kind.upper(), "injected", "fault")
        execute = fault is None or fault.executes
        reply = self._execute(frame.seq, frame.word, frame.args) if execute else None
        if fault is None:
            return reply
        if fault.kind == "no_reply":
            return None
        # bad_checksum: the device acted (or not) but the reply is garbled on the wire.
        body = (reply or encode(frame.seq, "OK")).rstrip(b"\n")
        return body[:-2] + (b"00" if body[-2:] != b"00" else b"FF") + b"\n"

    def _fault(self, word: str) -> SerialFault | None:
        with self.world.lock:
            for fault in list(self.world.faults.serial):
                applies = word in fault.commands if fault.commands else word in _COMMANDS
                if applies:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.world.faults.serial.remove(fault)
                    return fault
        return None

    def _execute(self, seq: int, word: str, args: tuple[str, ...]) -> bytes:
        w = self.world
        try:
            if word == "PING":
                return encode(seq, "OK", "pong=1")
            if word == "STATUS":
                return encode(seq, "OK", *_fields(w.tooling()))
            if word == "QUERY":
                found = w.query("serial:" + args[0])
                if found is None:
                    return encode(seq, "OK", "found=0")
                return encode(seq, "OK", "found=1", *_fields(found))
            if word == "BLOCK":
                executed = w.block("serial:" + args[0], _fence(args))
                return encode(seq, "OK", "executed=" + (",".join(executed) or "-"))
            if word in _COMMANDS:
                key = "serial:" + args[0]
                extra = {"volume_ul": float(args[3])} if word == "DISPENSE" else {}
                result = w.command(_COMMANDS[word], key, _fence(args), **extra)
                return encode(seq, "OK", *_fields({**w.tooling(), **result}))
        except Fenced as exc:
            code = "KEY_BLOCKED" if exc.code == "key_blocked" else "FENCED"
            return encode(seq, "ERR", code, *exc.message.split())
        except DeviceError as exc:
            return encode(seq, "ERR", exc.code, *exc.message.split())
        except (IndexError, ValueError):
            return encode(seq, "ERR", "BAD_REQUEST", "missing", "or", "bad", "arguments")
        return encode(seq, "ERR", "UNKNOWN", "unknown", "command", word)


def _fence(args: tuple[str, ...]) -> Fence:
    """``<key> <saga> <epoch> ...``: the fence of a keyed command (ValueError if absent)."""
    if len(args) < 3 or not args[2].isdigit():
        raise ValueError("a command needs <key> <saga> <epoch>")
    return Fence("serial:" + args[1], int(args[2]))


def _fields(values: dict[str, object]) -> list[str]:
    out = []
    for key, value in values.items():
        if key in {"ok", "duplicate", "grip"}:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        text = "-" if value in ("", None) else str(value).replace(" ", "_")
        out.append(f"{key}={text}")
    return out


def start_gripper(world: CellWorld | None = None) -> SerialGripperSim:
    """Start a simulated controller on a new pty (tests and demos); ``stop()`` it after."""
    sim = SerialGripperSim(world)
    sim.start()
    return sim


def serve(port: int | None = None) -> None:
    """Serve a standalone controller until interrupted (``reversa sim gripper``).

    Args:
        port: Ignored (a pty has no port number); accepted so the CLI can pass one.
    """
    del port
    sim = start_gripper()
    print(f"serial gripper/tool controller on {sim.path} (open it with serial.Serial)",
          flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()

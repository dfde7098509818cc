"""The serial gripper/tool controller transport (pyserial).

A request/response line protocol (:mod:`.lineproto`) with checksums, sequence
numbers and per-command timeouts. Translation at this boundary:

* a request the device refused (``ERR BUSY``, ``ERR CHECKSUM``) did not act:
  :class:`~reversa.core.errors.TransientError`, retried;
* a refusal that will not change (``ERR JAM``, ``ERR NOT_OVER_BOARD``):
  :class:`~reversa.core.errors.PermanentError`;
* no reply, or a corrupted reply, to a command that moves something: the
  effect may have happened -- :class:`~reversa.core.errors.OutcomeUnknown`;
  the retry carries the same key, which the device deduplicates;
* ``ERR STOPPED`` (the device's safety input is active):
  :class:`~reversa.core.errors.EmergencyStop`;
* ``ERR FENCED`` / ``ERR KEY_BLOCKED`` (a newer owner of the saga has spoken to
  the device, or a rollback blocked the key): :class:`~reversa.core.errors.Fenced`.
"""

from __future__ import annotations

import threading
from typing import Any

import serial

from reversa.core.errors import (
    EmergencyStop,
    Fenced,
    OutcomeUnknown,
    PermanentError,
    TransientError,
)

from .lineproto import FrameError, decode, device_key, encode
from .ports import BlockOutcome, Stamp

__all__ = ["SerialTooling"]

_RETRYABLE = {"BUSY", "CHECKSUM"}


class SerialTooling:
    """Gripper and paste dispenser on a serial controller (a ToolingPort).

    Args:
        port: Device path (``/dev/ttyUSB0``, or the simulator's pty).
        baudrate: Line speed.
        timeout: Seconds to wait for a complete reply.

    Raises:
        TransientError: The port cannot be opened.
    """

    def __init__(self, port: str, *, baudrate: int = 115200, timeout: float = 0.5) -> None:
        self.port = port
        self.timeout = timeout
        self._lock = threading.Lock()
        self._seq = 0
        try:
            self._serial = serial.Serial(port, baudrate=baudrate, timeout=timeout,
                                         write_timeout=timeout)
        except (serial.SerialException, OSError) as exc:
            raise TransientError(f"cannot open serial tooling controller at {port}: {exc}") \
                from exc

    def close(self) -> None:
        """Close the port."""
        self._serial.close()

    # -- ToolingPort --------------------------------------------------------------------
    def grip(self, stamp: Stamp) -> dict[str, Any]:
        """Close the fingers."""
        return _tooling(self._transact("GRIP", *_stamped(stamp), mutating=True))

    def release(self, stamp: Stamp) -> dict[str, Any]:
        """Open the fingers."""
        return _tooling(self._transact("RELEASE", *_stamped(stamp), mutating=True))

    def dispense(self, stamp: Stamp, volume_ul: float) -> dict[str, Any]:
        """Dispense solder paste."""
        return _tooling(self._transact("DISPENSE", *_stamped(stamp), f"{volume_ul:g}",
                                       mutating=True))

    def tool_off(self, stamp: Stamp) -> dict[str, Any]:
        """Switch the dispenser off."""
        return _tooling(self._transact("TOOLOFF", *_stamped(stamp), mutating=True))

    def block(self, stamp: Stamp) -> BlockOutcome:
        """Tombstone ``stamp.key`` at the device unless a command under it ran there.

        A lost reply is :class:`TransientError`: blocking again is harmless (the
        device answers the same), so the engine's caller may retry.
        """
        fields = self._transact("BLOCK", *_stamped(stamp), mutating=False)
        executed = fields.get("executed", "-")
        return BlockOutcome(tuple(executed.split(",")) if executed != "-" else ())

    def status(self) -> dict[str, Any]:
        """Gripper and tool state."""
        return _tooling(self._transact("STATUS", mutating=False))

    def query(self, key: str) -> dict[str, Any] | None:
        """What ran under ``key`` at the device (``commands`` and the last reply), or None."""
        fields = self._transact("QUERY", device_key(key), mutating=False)
        if fields.get("found") != "1":
            return None
        out = _tooling(fields)
        out["commands"] = str(fields.get("commands", "")).split(",")
        return out

    def ping(self) -> bool:
        """Whether the controller answers."""
        self._transact("PING", mutating=False)
        return True

    # -- protocol ---------------------------------------------------------------------
    def _transact(self, word: str, *args: str, mutating: bool) -> dict[str, str]:
        with self._lock:
            self._seq = self._seq % 999_999 + 1
            seq = self._seq
            try:
                # Stale replies of an earlier timed-out request must not be read as ours.
                self._serial.reset_input_buffer()
                self._serial.write(encode(seq, word, *args))
                self._serial.flush()
            except (serial.SerialException, OSError) as exc:
                # A frame that did not go out completely fails the device's checksum.
                raise TransientError(f"serial write of {word} to {self.port} failed: {exc}") \
                    from exc
            while True:
                try:
                    line = self._serial.readline()
                except (serial.SerialException, OSError) as exc:
                    raise self._lost(word, mutating, f"read failed: {exc}") from exc
                if not line.endswith(b"\n"):
                    raise self._lost(word, mutating, f"no reply within {self.timeout:g}s")
                try:
                    frame = decode(line)
                except FrameError as exc:
                    raise self._lost(word, mutating, f"corrupted reply ({exc})") from exc
                if frame.seq != seq:
                    continue  # an answer to an earlier request that arrived late
                if frame.word == "OK":
                    return frame.fields()
                code = frame.args[0] if frame.args else "UNKNOWN"
                raise _device_error(word, code, " ".join(frame.args[1:]))

    def _lost(self, word: str, mutating: bool, why: str) -> Exception:
        message = f"serial tooling {word} on {self.port}: {why}"
        if mutating:
            return OutcomeUnknown(message + "; the command may have taken effect")
        return TransientError(message)


def _device_error(word: str, code: str, text: str) -> BaseException:
    message = f"serial tooling refused {word}: {code} {text}".strip()
    if code == "STOPPED":
        return EmergencyStop(message, category=2, source="device:serial-tooling")
    if code in {"FENCED", "KEY_BLOCKED"}:
        return Fenced(message, code=code.lower())
    if code in _RETRYABLE:
        return TransientError(message)
    return PermanentError(message, code=f"device_{code.lower()}")


def _stamped(stamp: Stamp) -> tuple[str, str, str]:
    return device_key(stamp.key), device_key(stamp.fence.saga_id), str(stamp.fence.epoch)


def _tooling(fields: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(fields)
    if "holding" in out:
        out["holding"] = "" if out["holding"] == "-" else out["holding"]
    return out

"""The serial gripper/tool controller's line protocol (shared by adapter and simulator).

One ASCII line per frame, NMEA-style checksum::

    <seq> <WORD> [<arg> ...]*<CS>\\n

``CS`` is the XOR of every byte before ``*``, as two upper-case hex digits.
Requests: ``PING``, ``STATUS``, ``GRIP <key> <saga> <epoch>``,
``RELEASE <key> <saga> <epoch>``, ``DISPENSE <key> <saga> <epoch> <volume_ul>``,
``TOOLOFF <key> <saga> <epoch>``, ``BLOCK <key> <saga> <epoch>``, ``QUERY <key>``.
Replies: ``<seq> OK k=v ...`` or ``<seq> ERR <CODE> <message>``. The device
remembers the reply of every keyed command, so a retry of the same command with
the same key is answered without acting twice, and ``QUERY`` tells which
commands ran under a key. ``<saga> <epoch>`` is the fencing token: the device
refuses (``ERR FENCED``) an epoch older than one it has seen for the saga, and
(``ERR KEY_BLOCKED``) any command under a key that ``BLOCK`` tombstoned; ``BLOCK``
answers ``executed=<commands>`` (``-``: none had run, the key is now blocked).
Keys and saga ids travel as :func:`device_key` digests (no separators).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["Frame", "FrameError", "checksum", "decode", "device_key", "encode"]


class FrameError(ValueError):
    """A line that is not a valid frame (bad checksum, bad layout)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame."""

    seq: int
    word: str
    args: tuple[str, ...]

    def fields(self) -> dict[str, str]:
        """``k=v`` arguments of an OK reply as a dict."""
        out: dict[str, str] = {}
        for arg in self.args:
            if "=" in arg:
                key, value = arg.split("=", 1)
                out[key] = value
        return out


def checksum(body: bytes) -> str:
    """XOR of ``body``'s bytes as two hex digits."""
    value = 0
    for byte in body:
        value ^= byte
    return f"{value:02X}"


def encode(seq: int, word: str, *args: str) -> bytes:
    """Build one frame, newline included."""
    body = " ".join([str(seq), word, *args]).encode("ascii")
    return body + b"*" + checksum(body).encode("ascii") + b"\n"


def decode(line: bytes) -> Frame:
    """Parse and verify one frame.

    Raises:
        FrameError: Missing or wrong checksum, or not ``<seq> <WORD> ...``.
    """
    text = line.strip()
    if b"*" not in text:
        raise FrameError("frame has no checksum")
    body, _, cs = text.rpartition(b"*")
    if checksum(body) != cs.decode("ascii", "replace").upper():
        raise FrameError("checksum mismatch")
    parts = body.decode("ascii", "replace").split()
    if len(parts) < 2 or not parts[0].isdigit():
        raise FrameError("frame must start with a sequence number and a word")
    return Frame(int(parts[0]), parts[1], tuple(parts[2:]))


def device_key(text: str) -> str:
    """A short, separator-free device form of an idempotency key or a saga id."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

"""The Modbus RTU register map of the tooling: a Robotiq-style gripper and a paste dispenser.

Shared by the adapter (:mod:`.modbus_tooling`) and the simulated devices. Both
devices sit on one RS-485 line (Modbus RTU), each with its unit id.

Gripper (unit 9), as Robotiq's 2F grippers lay it out: the robot writes the
*output* registers with function 16 (write multiple registers) at 1000, and
reads the *input* registers with function 4 at 2000. Each register holds two
bytes, high byte first.

==========  =====================================  ===============================
register    high byte                              low byte
==========  =====================================  ===============================
1000        ACTION REQUEST: rACT (bit 0),          reserved
            rGTO (bit 3), rATR (bit 4)
1001        reserved                               POSITION REQUEST rPR (0 open,
                                                   255 closed)
1002        SPEED rSP                              FORCE rFR
2000        GRIPPER STATUS: gACT (bit 0),          reserved
            gGTO (bit 3), gSTA (bits 4-5),
            gOBJ (bits 6-7)
2001        FAULT STATUS gFLT (low nibble)         POSITION REQUEST ECHO gPR
2002        POSITION gPO                           CURRENT gCU
==========  =====================================  ===============================

gOBJ: 0 fingers moving, 1 stopped on an object while opening, 2 stopped on an
object while closing (a part is held), 3 at the requested position (no object).

Dispenser (unit 10): register 1000 is the command (1 dispense, 2 tool off), 1001
the volume in tenths of a microlitre; input register 2000 is the tool state
(0 off, 1 on).

The **fence block** (vendor registers, both units) travels in the same function-16
write as the command, so the device checks it atomically with the effect:
1003-1006 the command key, 1007-1010 the saga id (each the first 64 bits of its
SHA-256, :func:`device_key`), 1011-1014 the epoch (64 bits), 1015 the operation
(0 command, 1 block, 2 query). A write with an all-zero saga comes from outside
Reversa (activation, a teach pendant) and is not fenced. A refused write answers
Modbus exception 4 (server device failure) and sets input register 2003 to the
reason (:data:`REFUSALS`); exception 6 (server device busy) means the device did
not act and the write may be repeated. After a block or query, input register
2004 holds the commands that ran under the key as a bit mask (:data:`COMMAND_BITS`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "COMMAND_BITS",
    "DISPENSER",
    "FENCE_BLOCK",
    "GRIPPER",
    "INPUT",
    "INPUT_COUNT",
    "OP_BLOCK",
    "OP_COMMAND",
    "OP_QUERY",
    "OUTPUT",
    "OUTPUT_COUNT",
    "R_ACT",
    "R_GTO",
    "REFUSALS",
    "commands_of",
    "device_key",
    "fence_block",
    "join64",
    "split64",
]

GRIPPER = 9
"""Unit id of the gripper (Robotiq's default)."""
DISPENSER = 10
"""Unit id of the paste dispenser."""

OUTPUT = 1000
"""First output register (written by the robot)."""
INPUT = 2000
"""First input register (read by the robot)."""
FENCE_BLOCK = 1003
"""First register of the fence block (key, saga, epoch, operation)."""
OUTPUT_COUNT = 16
"""Registers of one command write: three command registers and the fence block."""
INPUT_COUNT = 6
"""Registers of one status read: three status registers, refusal, executed, found."""

OP_COMMAND, OP_BLOCK, OP_QUERY = 0, 1, 2

# Action request bits (register 1000, high byte).
R_ACT, R_GTO = 0x01, 0x08

REFUSALS = {1: "FENCED", 2: "KEY_BLOCKED", 3: "STOPPED", 4: "JAM", 5: "NOT_OVER_BOARD",
            6: "NOT_ACTIVATED"}
"""Input register 2003 after a refused write: the reason."""

COMMAND_BITS = {"grip": 0x1, "release": 0x2, "dispense": 0x4, "tool_off": 0x8}
"""Input register 2004 after a block or query: which commands ran under the key."""


def device_key(text: str) -> int:
    """The 64-bit device form of an idempotency key or a saga id (0 is reserved for
    "no key")."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") or 1


def split64(value: int) -> list[int]:
    """Four registers, most significant first."""
    return [(value >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]


def join64(registers: Sequence[int]) -> int:
    """The inverse of :func:`split64`."""
    value = 0
    for register in registers:
        value = (value << 16) | (register & 0xFFFF)
    return value


def fence_block(key: str | None, saga_id: str | None, epoch: int, op: int) -> list[int]:
    """Registers 1003-1015 for a command under ``key`` in ``saga_id`` at ``epoch``."""
    return [*split64(device_key(key) if key else 0),
            *split64(device_key(saga_id) if saga_id else 0), *split64(epoch), op]


def commands_of(mask: int) -> tuple[str, ...]:
    """The command names in a :data:`COMMAND_BITS` mask."""
    return tuple(name for name, bit in COMMAND_BITS.items() if mask & bit)

"""The serial gripper/tool controller: line protocol, pty simulator, error translation."""

from __future__ import annotations

import pytest
import serial

from reversa import EmergencyStop, Fence, OutcomeUnknown, PermanentError, TransientError
from reversa.adapters.robot import SerialTooling, Stamp
from reversa.adapters.robot.lineproto import FrameError, checksum, decode, device_key, encode
from reversa.simulators.robot import CellWorld, SerialGripperSim


def test_frames_round_trip_and_reject_corruption() -> None:
    frame = encode(7, "DISPENSE", "abc", "5")
    assert frame.endswith(b"\n")
    decoded = decode(frame)
    assert (decoded.seq, decoded.word, decoded.args) == (7, "DISPENSE", ("abc", "5"))
    body = frame.split(b"*")[0]
    assert frame.split(b"*")[1].strip() == checksum(body).encode()
    with pytest.raises(FrameError, match="checksum"):
        decode(frame.replace(b"abc", b"abd"))
    with pytest.raises(FrameError):
        decode(b"7 OK no checksum\n")
    assert decode(encode(1, "OK", "gripper=open", "holding=-")).fields() == {
        "gripper": "open", "holding": "-"}
    key = device_key("rv:saga:pick:action")
    assert len(key) == 16 and key == device_key("rv:saga:pick:action")


def test_pyserial_opens_the_pty_as_a_real_port(gripper_device: SerialGripperSim) -> None:
    port = serial.Serial(gripper_device.path, baudrate=115200, timeout=0.5)
    try:
        port.write(encode(1, "PING"))
        reply = decode(port.readline())
    finally:
        port.close()
    assert (reply.seq, reply.word, reply.fields()) == (1, "OK", {"pong": "1"})


def _stamp(key: str, epoch: int = 1) -> Stamp:
    return Stamp(key, Fence("s1", epoch))


def _at(world: CellWorld, pose: str) -> None:
    with world.lock:
        world.q = list(world.layout.pose(pose))


def test_commands_act_once_per_key(world: CellWorld, serial_tooling: SerialTooling) -> None:
    _at(world, "tray")
    first = serial_tooling.grip(_stamp("rv:s1:pick:action"))
    again = serial_tooling.grip(_stamp("rv:s1:pick:action"))
    assert first["holding"] == again["holding"] == "U1"
    assert world.executions["grip"] == 1
    assert serial_tooling.status() == {"gripper": "closed", "holding": "U1", "tool": "off"}
    assert serial_tooling.query("rv:s1:pick:action") == {
        "found": "1", "commands": ["grip"], "state": "closed", "holding": "U1"}
    assert serial_tooling.query("rv:never:sent:action") is None


def test_a_lost_reply_is_in_doubt_and_the_retry_is_deduplicated(
    world: CellWorld, serial_tooling: SerialTooling
) -> None:
    _at(world, "tray")
    serial_tooling.grip(_stamp("k-grip"))
    world.inject({"kind": "no_reply", "count": 1, "executes": True})
    with pytest.raises(OutcomeUnknown, match="no reply"):
        serial_tooling.release(_stamp("k-release"))
    assert world.gripper == "open"  # it did act: the reply was lost after the fact
    assert serial_tooling.query("k-release") is not None
    serial_tooling.release(_stamp("k-release"))
    assert world.executions["release"] == 1


def test_a_command_that_never_ran_probes_as_not_happened(
    world: CellWorld, serial_tooling: SerialTooling
) -> None:
    world.inject({"kind": "no_reply", "count": 1, "executes": False})
    with pytest.raises(OutcomeUnknown):
        serial_tooling.grip(_stamp("k-lost"))
    assert serial_tooling.query("k-lost") is None
    assert world.executions["grip"] == 0


def test_a_corrupted_reply_is_in_doubt(world: CellWorld, serial_tooling: SerialTooling) -> None:
    world.inject({"kind": "bad_checksum", "count": 1})
    with pytest.raises(OutcomeUnknown, match="corrupted"):
        serial_tooling.grip(_stamp("k-garbled"))
    # A read with a corrupted reply is simply retried.
    world.inject({"kind": "bad_checksum", "count": 1, "commands": ["STATUS"]})
    with pytest.raises(TransientError, match="corrupted"):
        serial_tooling.status()
    assert serial_tooling.status()["gripper"] == "closed"


def test_refusals_are_translated(world: CellWorld, serial_tooling: SerialTooling) -> None:
    world.inject({"kind": "busy", "count": 1})
    with pytest.raises(TransientError, match="BUSY"):
        serial_tooling.grip(_stamp("k-busy"))
    world.inject({"kind": "jam", "count": 1})
    with pytest.raises(PermanentError, match="JAM"):
        serial_tooling.grip(_stamp("k-jam"))
    assert world.executions["grip"] == 0
    with pytest.raises(PermanentError, match="NOT_OVER_BOARD"):
        serial_tooling.dispense(_stamp("k-paste"), 5.0)
    world.press_estop(0)
    with pytest.raises(EmergencyStop):
        serial_tooling.grip(_stamp("k-stopped"))
    # Switching off is always allowed.
    assert serial_tooling.tool_off(_stamp("k-off"))["tool"] == "off"


def test_a_read_timeout_is_transient(world: CellWorld, serial_tooling: SerialTooling) -> None:
    world.inject({"kind": "no_reply", "count": 1, "commands": ["STATUS"]})
    with pytest.raises(TransientError, match="no reply"):
        serial_tooling.status()
    assert serial_tooling.status()["gripper"] == "open"  # the next read is answered normally


def test_a_missing_port_is_transient() -> None:
    with pytest.raises(TransientError, match="cannot open"):
        SerialTooling("/dev/does-not-exist-reversa")

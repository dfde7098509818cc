"""The tooling on Modbus RTU: register map, pymodbus devices on a pty, error translation."""

from __future__ import annotations

import pytest
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient

from reversa import EmergencyStop, Fence, OutcomeUnknown, PermanentError, TransientError
from reversa.adapters.robot import ModbusTooling, Stamp
from reversa.adapters.robot import robotiq as rq
from reversa.simulators.robot import CellWorld, ModbusGripperSim, start_gripper


def test_the_register_map_round_trips() -> None:
    key = rq.device_key("rv:saga:pick:action")
    assert key == rq.device_key("rv:saga:pick:action") and 0 < key < 2**64
    assert rq.join64(rq.split64(key)) == key
    block = rq.fence_block("rv:saga:pick:action", "saga", 7, rq.OP_BLOCK)
    assert len(block) == rq.OUTPUT_COUNT - 3
    assert rq.join64(block[0:4]) == key and rq.join64(block[8:12]) == 7
    assert block[-1] == rq.OP_BLOCK
    assert rq.fence_block(None, None, 0, rq.OP_COMMAND)[:8] == [0] * 8  # unfenced
    assert rq.commands_of(rq.COMMAND_BITS["grip"] | rq.COMMAND_BITS["dispense"]) == (
        "grip", "dispense")


def test_a_plain_modbus_client_reads_the_robotiq_status(world: CellWorld) -> None:
    # Any Modbus RTU master can talk to it: function 4 at 2000, unit 9. A line of its
    # own (the session's line already has its master, which holds the port exclusively).
    device = start_gripper(world)
    client = ModbusSerialClient(device.path, framer=FramerType.RTU, baudrate=115200,
                                timeout=2.0, retries=0)
    try:
        assert client.connect()
        reply = client.read_input_registers(rq.INPUT, count=3, device_id=rq.GRIPPER)
    finally:
        client.close()
        device.stop()
    assert [f[1] for f in device.frames] == [4]  # the one request reached the device
    assert not reply.isError()
    status = reply.registers[0] >> 8
    assert status & 0x01 and status >> 4 & 0x3 == 3  # gACT, gSTA = activation complete
    assert status >> 6 == 3  # gOBJ: at the requested position, no object
    assert world.executions == {}


def _stamp(key: str, epoch: int = 1) -> Stamp:
    return Stamp(key, Fence("s1", epoch))


def _at(world: CellWorld, pose: str) -> None:
    with world.lock:
        world.q = list(world.layout.pose(pose))


def test_commands_act_once_per_key_and_grip_the_physics_part(
    world: CellWorld, tooling: ModbusTooling
) -> None:
    _at(world, "tray")
    first = tooling.grip(_stamp("rv:s1:pick:action"))
    again = tooling.grip(_stamp("rv:s1:pick:action"))
    assert first["object"] and again["object"]
    assert world.executions["grip"] == 1  # the repeat was answered without acting
    assert world.holding == "U1"  # the physics fingers closed on the part
    assert tooling.status()["gripper"] == "closed" and tooling.status()["object"]
    assert tooling.query("rv:s1:pick:action") == {"commands": ["grip"]}
    assert tooling.query("rv:never:sent:action") is None


def test_closing_on_nothing_reports_no_object(world: CellWorld,
                                              tooling: ModbusTooling) -> None:
    reply = tooling.grip(_stamp("k-empty"))  # at home: nothing between the fingers
    assert reply["object"] is False
    assert world.holding is None and world.gripper == "closed"


def test_a_lost_reply_is_in_doubt_and_the_retry_is_deduplicated(
    world: CellWorld, tooling: ModbusTooling
) -> None:
    _at(world, "tray")
    tooling.grip(_stamp("k-grip"))
    world.inject({"kind": "no_reply", "count": 1, "executes": True, "commands": ["RELEASE"]})
    with pytest.raises(OutcomeUnknown, match="no valid reply"):
        tooling.release(_stamp("k-release"))
    assert world.gripper == "open"  # it did act: the reply was lost after the fact
    assert tooling.query("k-release") == {"commands": ["release"]}
    tooling.release(_stamp("k-release"))
    assert world.executions["release"] == 1


def test_a_command_that_never_arrived_probes_as_not_happened(
    world: CellWorld, tooling: ModbusTooling
) -> None:
    world.inject({"kind": "no_reply", "count": 1, "executes": False, "commands": ["GRIP"]})
    with pytest.raises(OutcomeUnknown):
        tooling.grip(_stamp("k-lost"))
    assert tooling.query("k-lost") is None
    assert world.executions["grip"] == 0


def test_a_corrupted_reply_is_in_doubt(world: CellWorld, tooling: ModbusTooling,
                                       gripper_device: ModbusGripperSim) -> None:
    world.inject({"kind": "bad_checksum", "count": 1, "commands": ["GRIP"]})
    with pytest.raises(OutcomeUnknown):
        tooling.grip(_stamp("k-garbled"))
    assert world.executions["grip"] == 1  # the device acted; only the reply was garbled
    # A read with a corrupted reply is asked again at once; twice in a row is transient.
    frames = len(gripper_device.frames)
    world.inject({"kind": "bad_checksum", "count": 1, "commands": ["STATUS"]})
    assert tooling.status()["gripper"] == "closed"
    reads = [f for f in gripper_device.frames[frames:] if f[1] == 4]
    assert len(reads) == 3  # gripper twice (the first reply garbled), dispenser once
    world.inject({"kind": "bad_checksum", "count": 2, "commands": ["STATUS"]})
    with pytest.raises(TransientError):
        tooling.status()
    assert tooling.status()["gripper"] == "closed"


def test_refusals_are_translated(world: CellWorld, tooling: ModbusTooling) -> None:
    world.inject({"kind": "busy", "count": 1})
    with pytest.raises(TransientError, match="BUSY"):
        tooling.grip(_stamp("k-busy"))
    world.inject({"kind": "jam", "count": 1})
    with pytest.raises(PermanentError, match="JAM"):
        tooling.grip(_stamp("k-jam"))
    assert world.executions["grip"] == 0
    with pytest.raises(PermanentError, match="NOT_OVER_BOARD"):
        tooling.dispense(_stamp("k-paste"), 5.0)
    world.press_estop(0)
    with pytest.raises(EmergencyStop):
        tooling.grip(_stamp("k-stopped"))
    # Switching off is always allowed.
    assert tooling.tool_off(_stamp("k-off"))["tool"] == "off"


def test_the_dispenser_pastes_the_board_under_the_nozzle(world: CellWorld,
                                                         tooling: ModbusTooling) -> None:
    _at(world, "board_above")
    reply = tooling.dispense(_stamp("k-dispense"), 5.0)
    assert reply["tool"] == "on"
    assert world.boards["B1"].pasted
    assert tooling.query("k-dispense") == {"commands": ["dispense"]}


def test_a_missing_port_is_transient() -> None:
    with pytest.raises(TransientError, match="cannot open"):
        ModbusTooling("/dev/does-not-exist-reversa")

"""E-stop during a rollback: the motion halts, the saga escalates, nothing moves until reset.

A part transfer (pick U1, carry it to the inspection pose, inspect) fails at the
inspection; its rollback carries the part back. 40% into the first reverse
motion somebody presses the e-stop. The compensation raises EmergencyStop, the
saga is escalated, and even a retry cannot move the arm until a human resets the
stop at the machine and acknowledges it.

Run: python examples/robot/estop_during_rollback.py   (writes ./reversa.db, or $REVERSA_DB)
"""

from __future__ import annotations

import sys
import time

from reversa import EmergencyStop, Engine, Fence, SagaStatus, Store
from reversa.adapters.robot import Stamp, connect_cell, robot_registry
from reversa.demos.robot import transfer_saga
from reversa.simulators.robot import start_gripper, start_rosbridge


def main() -> int:
    sim = start_rosbridge(time_scale=20.0)
    gripper = start_gripper(sim.world)
    world = sim.world
    world.inject({"kind": "camera_error", "message": "inspection camera error E42"})
    # Motions 1-4 are the forward run; motion 5 is the rollback's first.
    world.inject({"kind": "estop", "motion": 5, "fraction": 0.4, "category": 0})

    cell = connect_cell(sim.url, serial_port=gripper.path)
    store = Store.open()
    engine = Engine(robot_registry(), store, services={"robot": cell})
    try:
        result = engine.run(transfer_saga())
        escalation = engine.inspect(result.saga_id).escalations[0]
        print(f"saga {result.saga_id}: {result.status}")
        print("escalation:", escalation.reason)
        print("arm stopped at an intermediate pose:", world.snapshot()["pose"] is None)

        try:
            # A jog of its own (every command carries a key and a fencing token).
            jog = Stamp("manual-jog-1", Fence("manual-jog", 1))
            cell.move(cell.layout.pose("home"), speed=0.5, label="try to move anyway",
                      stamp=jog)
        except EmergencyStop as stop:
            print("motion refused while latched:", stop.message[:80], "...")

        world.reset_stop()  # the human releases the e-stop at the machine...
        while cell.sensors.estop_active():
            time.sleep(0.01)
        cell.reset_stop("operator-7", note="cell inspected")  # ...and acknowledges it here
        final = engine.resolve(escalation.id, action="retry", author="operator-7")
        truth = world.snapshot()
        print(f"after the reset: {final.status}; arm at {truth['pose']}, "
              f"U1 in {truth['parts']['U1']['location']}")
        ok = result.status is SagaStatus.ESCALATED and final.status is SagaStatus.COMPENSATED
        return 0 if ok else 1
    finally:
        engine.close()
        cell.close()
        gripper.stop()
        sim.stop()
        store.close()


if __name__ == "__main__":
    sys.exit(main())

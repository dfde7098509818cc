"""AG-384 scenario B on simulated hardware: the dry-run refuses the mirror rollback.

A UR5-like arm picks component U1 from tray A, applies solder paste to board B1,
places U1, moves to the inspection position, and the inspection camera fails.
Reversing "place" would mean re-gripping a paste-covered part; Reversa's dry-run
refuses, drives the arm to the nearest reachable safe state along a
collision-checked path, and escalates with a state report -- or, with
``--forward-recovery``, sends the board to the rework station instead.

The arm, sensors and camera are reached through roslibpy (rosbridge v2), the
gripper and paste dispenser through pyserial, exactly as on a real cell; here
both ends are the bundled simulators, started in background threads.

Run: python examples/robot/scenario_b.py [--forward-recovery]
     (writes ./reversa.db, or $REVERSA_DB)
"""

from __future__ import annotations

import sys

from reversa import Engine, OnInfeasible, SagaStatus, Store
from reversa.adapters.robot import connect_cell, robot_registry
from reversa.demos.robot import scenario_b_saga
from reversa.simulators.robot import start_gripper, start_rosbridge


def main() -> int:
    forward = "--forward-recovery" in sys.argv
    sim = start_rosbridge(time_scale=20.0)  # motions 20x faster than real time
    gripper = start_gripper(sim.world)
    sim.world.inject({"kind": "camera_error", "message": "inspection camera error E42"})

    cell = connect_cell(sim.url, serial_port=gripper.path)
    store = Store.open()
    engine = Engine(robot_registry(), store, services={"robot": cell})
    policy = OnInfeasible.FORWARD_RECOVERY if forward else OnInfeasible.ESCALATE
    try:
        result = engine.run(scenario_b_saga(on_infeasible=policy))
        record = result.rollback or {}
        print(f"saga {result.saga_id}: {result.status} (failed step: {result.failed_step})")
        print("dry-run feasible:", record["dry_run"]["feasible"])
        for problem in record["dry_run"]["problems"]:
            print("  -", problem)
        safe = record["safe_state"]
        print("safe state reached:", safe["result"]["reached"] if safe["ok"] else safe["error"])
        if forward:
            print("predicate:", record["predicate"]["reason"])
        truth = sim.world.snapshot()
        print(f"cell now: arm at {truth['pose']}, tool {truth['tool']}, gripper "
              f"{truth['gripper']}, board B1 at {truth['boards']['B1']['location']}, "
              f"collisions {len(truth['collisions'])}")
        print("audit chain verified:", store.verify_audit(result.saga_id).ok)
        expected = SagaStatus.COMPENSATED if forward else SagaStatus.ESCALATED
        return 0 if result.status is expected else 1
    finally:
        engine.close()
        cell.close()
        gripper.stop()
        sim.stop()
        store.close()


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: continuous collision checking of reverse paths, and OMPL planning around an obstacle.

Run: ``python bench/robot_paths.py [--runs N] [--json]``. Targets (issue 14): a continuous
check of a reverse path in at most 50 ms, a planned path in at most 2 s, on the project's
machine. The scene is the PCB cell as its simulated cell bridge reports it (PyBullet world);
the reverse paths are the scenario's reverses (inspection -> board_above / tray_above, with
and without a held part); the planning case is a stand set down across inspection ->
tray_above (the ``robot-physics-replan`` demo). Figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from reversa.adapters.robot import (
    Attached,
    CollisionChecker,
    PlanningScene,
    pcb_cell,
    plan_path,
)
from reversa.adapters.robot.scene import Box
from reversa.demos.robot.scenarios import STAND
from reversa.simulators.robot import CellWorld


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    layout = pcb_cell()
    world = CellWorld(layout)
    base = world.scene()
    world.physics.close()
    checker = CollisionChecker(layout.arm, layout.limits, grasp_links=layout.grasp_links)
    held = Attached("U1", layout.part_size, layout.grasp_offset)
    holding = PlanningScene(boxes=tuple(b for b in base.boxes if b.id != "part:U1"),
                            allowed=base.allowed, attached=held)
    stand = Box(str(STAND["id"]), tuple(STAND["position"]),  # type: ignore[arg-type]
                tuple(STAND["size"]), "obstacle")  # type: ignore[arg-type]
    blocked = PlanningScene(boxes=(*holding.boxes, stand), allowed=base.allowed, attached=held)
    start, goal = layout.pose("inspection"), layout.pose("tray_above")

    cases = {"inspection->board_above (empty)": (layout.pose("board_above"), base),
             "inspection->tray_above (holding U1)": (goal, holding)}
    checks: dict[str, dict[str, float]] = {}
    checker.check_path(start, goal, holding)  # warm-up: hulls, fcl objects
    for name, (target, scene) in cases.items():
        samples = []
        for _ in range(args.runs):
            began = time.perf_counter()
            report = checker.check_path(start, target, scene)
            samples.append(time.perf_counter() - began)
            assert report.ok, report.reason
        checks[name] = {**_ms(samples), "distance_evaluations": report.iterations}

    plans, found = [], 0
    for _ in range(max(3, args.runs // 4)):
        began = time.perf_counter()
        planned = plan_path(checker.prepared(blocked), start, goal, time_s=2.0)
        plans.append(time.perf_counter() - began)
        found += planned.ok
    result = {"continuous_check": checks,
              "planned_path": {**_ms(plans), "runs": len(plans), "found": found,
                               "budget_s": 2.0}}
    if args.json:
        print(json.dumps(result))
        return
    for name, figures in checks.items():
        print(f"continuous check {name}: p50 {figures['p50_ms']} ms, max {figures['max_ms']} ms "
              f"({figures['distance_evaluations']} distance evaluations)")
    p = result["planned_path"]
    print(f"planned path around the stand: p50 {p['p50_ms']} ms, max {p['max_ms']} ms, "
          f"found {p['found']}/{p['runs']} within {p['budget_s']} s")


if __name__ == "__main__":
    main()

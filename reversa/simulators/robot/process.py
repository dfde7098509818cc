"""What the simulated cell's devices do to its bodies: grip, release, dispense, convey.

Mixed into :class:`~.world.CellWorld`. Every physics step of the world goes
through :meth:`Process.step`, which also reads the ground truth Bullet reports:
arm contacts that are not allowed (a collision: logged with its force and
returned to the motion, which makes it a protective stop), a held part slipping
out of the fingers, and falling parts hitting boards or finished assemblies
(an impact above :data:`IMPACT_N` damages both).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .physics import DT, Touch

if TYPE_CHECKING:
    from .world import CellWorld

__all__ = ["BOARD_SIZE", "IMPACT_N", "Process"]

BOARD_SIZE = (0.10, 0.08, 0.004)
IMPACT_N = 1.0  # N: a contact force above this from a part that was not placed is an impact
_REST_TOLERANCE = 0.006  # m a resting part's height may differ from its station's rest height
_SETTLE_STEPS = 480  # at most 2 s of simulated time for parts to come to rest
_CONVEYOR_STEPS = 240  # 1 s of simulated time from the fixture to the rework station


class Process:
    """Device commands and physical monitoring of the simulated cell."""

    def _world(self) -> CellWorld:
        return self  # type: ignore[return-value]  # mixed into CellWorld only

    # -- stepping -------------------------------------------------------------------------
    def step(self) -> list[Touch]:
        """One physics step; returns the arm contacts that are collisions."""
        w = self._world()
        w.physics.step()
        w.trace.append(w.physics.joints())
        hits = [t for t in w.physics.contacts("arm") if not self._allowed_touch(t)]
        if w.holding is not None:
            held = f"part:{w.holding}"
            hits += [t for t in w.physics.contacts(held)
                     if t.b != "arm" and w.physics.kinds.get(t.b) not in {"board", "part", None}
                     and t.b not in {s.surface.id for s in w.layout.stations.values()}
                     and t.b in w.physics.bodies]
        for touch in hits:
            w.contact_log.append({**touch.as_dict(), "step": w.physics.steps})
        if w.physics.slipping():
            part = (w.physics.drop_grasp(slipped=True) or "").removeprefix("part:")
            if part in w.parts:
                w.parts[part].location = "falling"
            w.log("slip", part=part, at=list(w.physics.tcp()))
            w.version += 1
        self._impacts()
        return hits

    def _allowed_touch(self, touch: Touch) -> bool:
        w = self._world()
        kind = w.physics.kinds.get(touch.b)
        if (touch.a, touch.b) in w.layout.allowed:
            return True
        if kind == "part" and touch.a in w.layout.grasp_links:
            return True  # the fingers close on parts
        return w.holding is not None and touch.b == f"part:{w.holding}"

    def _impacts(self) -> None:
        w = self._world()
        held = w.holding
        for part in w.parts.values():
            if part.id == held or part.location not in {"falling", "dropped"}:
                continue
            for touch in w.physics.contacts(f"part:{part.id}"):
                if touch.force < IMPACT_N or touch.b.startswith("panda_"):
                    continue
                part.damaged = True
                w.impacts.append({"part": part.id, "hit": touch.b, "force_n":
                                  round(touch.force, 2), "step": w.physics.steps})
                if w.physics.kinds.get(touch.b) == "board":
                    w.damaged_assemblies.add(touch.b)
                    board = w.boards.get(touch.b.removeprefix("board:"))
                    if board is not None:
                        board.damaged = True

    def settle(self) -> None:
        """Step until every free part is at rest (at most two simulated seconds)."""
        w = self._world()
        for _ in range(_SETTLE_STEPS):
            moving = [p for p in w.parts.values() if p.id != w.holding
                      and f"part:{p.id}" in w.physics.bodies
                      and w.physics.speed(f"part:{p.id}") > 1e-3]
            if not moving:
                break
            self.step()
        self.classify()

    def classify(self) -> None:
        """Where each part is, from its physical position (held, on a station, dropped)."""
        w = self._world()
        held = w.holding
        for part in w.parts.values():
            name = f"part:{part.id}"
            if part.id == held:
                part.location = "gripper"
                continue
            if name not in w.physics.bodies:
                continue
            where = self._station_at(w.physics.position(name))
            if where is not None and w.physics.speed(name) <= 1e-3:
                part.location = where
            elif part.location in {"gripper", "falling"}:
                part.location = "falling" if w.physics.speed(name) > 1e-3 else "dropped"
                if part.location == "dropped":
                    w.log("drop", part=part.id, at=list(w.physics.position(name)),
                          damaged=sorted(w.damaged_assemblies))
            elif part.location not in {"dropped", "rework", "unknown"}:
                part.location = "dropped"
        for board in w.boards.values():
            board.components = [p.id for p in w.parts.values()
                                if p.location == board.location and board.location != "tray"
                                and p.id != held and board.location in {"board", "rework"}]

    def _station_at(self, center: tuple[float, float, float]) -> str | None:
        w = self._world()
        for station in w.layout.stations.values():
            s = station.surface
            inside = all(abs(center[i] - s.center[i]) <= s.size[i] / 2 for i in (0, 1))
            if inside and abs(center[2] - station.rest_z) <= _REST_TOLERANCE:
                return station.name
        rx, ry, rz = w.layout.rework
        if math.dist(center[:2], (rx, ry)) < 0.08 and center[2] > rz:
            return "rework"
        return None

    # -- tooling --------------------------------------------------------------------------
    def _grip(self) -> dict[str, Any]:
        w = self._world()
        if w.gripper == "closed" and w.holding:
            return {"ok": True, "state": "closed", "holding": w.holding, "object": True}
        w.gripper = "closed"
        w.physics.set_fingers(0.0)
        found = w.physics.between_fingers() if w.physics.fingers() > 0.005 else None
        if found is None:
            w.log("grip", part=None, quality="empty")
            return {"ok": True, "state": "closed", "holding": "", "object": False}
        part = w.parts[found.removeprefix("part:")]
        w.physics.hold(found, pasted=part.pasted)
        part.location = "gripper"
        w.log("grip", part=part.id, quality="slippery" if part.pasted else "secure")
        self.classify()
        return {"ok": True, "state": "closed", "holding": part.id, "object": True}

    def _release(self) -> dict[str, Any]:
        w = self._world()
        w.gripper = "open"
        released = w.physics.drop_grasp()
        w.physics.set_fingers(0.04)
        if released is not None:
            part = w.parts[released.removeprefix("part:")]
            # Let go at a station's rest height: a placement. Anywhere else: it falls.
            part.location = self._station_at(w.physics.position(released)) or "falling"
            self.settle()
            if part.location == "board":
                board = w.boards.get("B1")
                if board is not None and board.pasted and not part.pasted:
                    part.pasted = True  # pressed into the paste: its underside is covered
            w.log("release", part=part.id, location=part.location)
        return {"ok": True, "state": "open", "holding": "", "object": False}

    def _dispense(self, volume_ul: float = 5.0) -> dict[str, Any]:
        from .world import DeviceError

        w = self._world()
        tcp = w.physics.tcp()
        for board in w.boards.values():
            center = w.physics.position(f"board:{board.id}")
            over = all(abs(tcp[i] - center[i]) <= BOARD_SIZE[i] / 2 for i in (0, 1))
            if board.location == "board" and over and tcp[2] < 0.25:
                board.pasted = True
                w.tool = "on"
                w.log("dispense", board=board.id, volume_ul=volume_ul)
                return {"ok": True, "state": "on", "board": board.id}
        raise DeviceError("NOT_OVER_BOARD", "dispenser nozzle is not over a board")

    def _tool_off(self) -> dict[str, Any]:
        self._world().tool = "off"
        return {"ok": True, "state": "off"}

    def _route(self, board: str = "B1", destination: str = "rework") -> dict[str, Any]:
        from .world import DeviceError

        w = self._world()
        if w.faults.conveyor_error:
            raise DeviceError("CONVEYOR", w.faults.conveyor_error)
        target = w.boards.get(board)
        if target is None:
            raise DeviceError("NO_BOARD", f"unknown board {board}")
        # The board and what sits on it ride the conveyor to the rework station.
        riders = [f"part:{p}" for p in target.components if f"part:{p}" in w.physics.bodies]
        start = w.physics.position(f"board:{board}")
        end = w.layout.rework
        offsets = {r: tuple(a - b for a, b in zip(w.physics.position(r), start, strict=True))
                   for r in riders}
        for index in range(1, _CONVEYOR_STEPS + 1):
            f = index / _CONVEYOR_STEPS
            at = tuple(a + (b - a) * f for a, b in zip(start, end, strict=True))
            w.physics.move_body(f"board:{board}", (at[0], at[1], at[2]))
            for rider, off in offsets.items():
                w.physics.move_body(rider, (at[0] + off[0], at[1] + off[1], at[2] + off[2]))
            self.step()
        target.location = destination
        for part_id in target.components:
            w.parts[part_id].location = destination
        w.log("route", board=board, destination=destination,
              seconds=round(_CONVEYOR_STEPS * DT, 3))
        return {"ok": True, "location": destination}

    def _changed(self) -> None:
        self._world().version += 1

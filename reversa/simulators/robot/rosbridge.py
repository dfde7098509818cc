"""A rosbridge v2 protocol server in front of the simulated cell (a "Gazebo bridge" stand-in).

roslibpy connects to it unmodified. It speaks the subset of the rosbridge v2
protocol a manipulation cell needs (see ROSBRIDGE_PROTOCOL.md in
rosbridge_suite): ``subscribe``/``unsubscribe``/``advertise``/``publish`` for
topics, ``call_service``/``service_response`` for services, and
``send_action_goal``/``cancel_action_goal``/``action_feedback``/``action_result``
for ROS 2 actions, with the same message shapes rosbridge_server sends.

Interfaces (the names :class:`reversa.adapters.robot.RosNames` defaults to):

* ``/joint_states`` (sensor_msgs/msg/JointState), published while moving;
* ``/cell/follow_joint_trajectory`` (the cell bridge's
  FencedFollowJointTrajectory: a FollowJointTrajectory goal plus ``key`` and
  ``fence``), cancellable. It refuses a goal without a fence, with an epoch
  older than one seen for the saga, or with a blocked key, and preempts a
  saga's running goals once a newer epoch of that saga has been admitted;
* ``/arm_controller/follow_joint_trajectory``
  (control_msgs/action/FollowJointTrajectory): the plain controller behind the
  bridge, unfenced, for clients outside Reversa;
* ``/safety/estop`` and ``/safety/zone``, latched; ``/safety/stop_request``
  accepts a software stop request (never fenced: a stop is always obeyed);
* services ``/cell/get_scene``, ``/cell/query``, ``/cell/block``,
  ``/gripper/command``, ``/tool/command``, ``/inspection/trigger``,
  ``/conveyor/route``; commands carry ``key`` and ``fence``
  (``{saga_id, epoch}``); a refusal answers ``FENCED: ...`` (stale epoch) or
  ``KEY_BLOCKED: ...``;
* simulator-only services ``/sim/inject``, ``/sim/reset``, ``/sim/world``,
  ``/sim/reset_stop`` (the human at the machine), ``/sim/person``,
  ``/sim/obstacle``.

Run it with ``reversa sim rosbridge --port 9090`` (blocking :func:`serve`) or,
in tests, :func:`start_rosbridge` on a free loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from reversa.adapters.robot.scene import Box
from reversa.core.context import Fence
from reversa.core.errors import Fenced

from .motion import INVALID_GOAL, GoalRejected, Motion, advance, cancel, start_motion
from .world import JOINT_NAMES, CellWorld, DeviceError

__all__ = ["RosbridgeSim", "serve", "start_rosbridge"]

LOG = logging.getLogger("reversa.simulators.robot.rosbridge")

# action_msgs/msg/GoalStatus
_STATUS = {"succeeded": 4, "canceled": 5, "aborted": 6}
_LATCHED = ("/joint_states", "/safety/estop", "/safety/zone")
_FENCED_ACTION = "/cell/follow_joint_trajectory"
_RAW_ACTION = "/arm_controller/follow_joint_trajectory"
_HEARTBEAT_S = 0.05


class _Client:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.subscriptions: dict[str, set[str]] = {}

    @property
    def topics(self) -> set[str]:
        return {t for t, ids in self.subscriptions.items() if ids}


class _Goal:
    def __init__(self, client: _Client, motion: Motion, action: str,
                 fence: Fence | None) -> None:
        self.client, self.motion, self.action, self.fence = client, motion, action, fence


class RosbridgeSim:
    """The server; one per simulated cell.

    Args:
        world: The simulated cell (a fresh PCB cell by default).
        time_scale: Simulated seconds per real second; tests run motions
            quickly with e.g. 40, an interactive session uses 1.
        tick_s: Real seconds between simulation steps.
    """

    def __init__(self, world: CellWorld | None = None, *, time_scale: float = 1.0,
                 tick_s: float = 0.01) -> None:
        self.world = world or CellWorld()
        self.time_scale = time_scale
        self.tick_s = tick_s
        self.port = 0
        self._clients: set[_Client] = set()
        self._goals: dict[str, _Goal] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._sent_estop: dict[str, Any] | None = None
        self._sent_zone: dict[str, Any] | None = None
        self._last_heartbeat = 0.0

    # -- lifecycle --------------------------------------------------------------------
    async def run(self, host: str = "127.0.0.1", port: int = 9090,
                  ready: Callable[[int], None] | None = None) -> None:
        """Serve until :meth:`stop` is called."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with ws_serve(self._handle, host, port, compression=None) as server:
            self.port = int(next(iter(server.sockets)).getsockname()[1])
            ticker = asyncio.create_task(self._tick_forever())
            if ready is not None:
                ready(self.port)
            await self._stopped.wait()
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve from a background thread; returns the bound port."""
        started = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            try:
                asyncio.run(self.run(host, port, lambda _p: started.set()))
            except BaseException as exc:  # surfaced to the caller of start()
                failure.append(exc)
                started.set()

        self._thread = threading.Thread(target=main, name="rosbridge-sim", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self.port

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(5)

    def reset(self) -> None:
        """Drop running goals and reset the world (between tests)."""
        if self._loop is None:
            self.world.reset()
            return

        async def _reset() -> None:
            self._goals.clear()
            self.world.reset()

        asyncio.run_coroutine_threadsafe(_reset(), self._loop).result(5)

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return f"ws://127.0.0.1:{self.port}"

    # -- connections ------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(ws)
        self._clients.add(client)
        try:
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    LOG.warning("dropping a frame that is not JSON")
                    continue
                try:
                    await self._dispatch(client, message)
                except ConnectionClosed:
                    raise
                except Exception:  # a bad request must not drop the connection
                    LOG.exception("failed to handle %s", message.get("op"))
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            for goal in list(self._goals.values()):
                if goal.client is client:
                    cancel(self.world, goal.motion)

    async def _dispatch(self, client: _Client, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "subscribe":
            topic = str(msg.get("topic"))
            client.subscriptions.setdefault(topic, set()).add(str(msg.get("id", "")))
            if topic in _LATCHED:
                await self._send(client, {"op": "publish", "topic": topic,
                                          "msg": self._topic_msg(topic)})
        elif op == "unsubscribe":
            # With an id only that subscription ends; without one, all of the topic's.
            ids = client.subscriptions.get(str(msg.get("topic")), set())
            if "id" in msg:
                ids.discard(str(msg["id"]))
            else:
                ids.clear()
        elif op == "publish":
            self._on_publish(str(msg.get("topic")), msg.get("msg") or {})
        elif op == "call_service":
            await self._call_service(client, msg)
        elif op == "send_action_goal":
            await self._send_goal(client, msg)
        elif op == "cancel_action_goal":
            entry = self._goals.get(str(msg.get("id")))
            if entry is not None:
                cancel(self.world, entry.motion)
        # advertise/unadvertise and anything else need no answer; the real
        # rosbridge would send a "status" op, which roslibpy 2.1 cannot parse.

    async def _send(self, client: _Client, msg: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(json.dumps(msg))

    async def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        for client in list(self._clients):
            if topic in client.topics:
                await self._send(client, {"op": "publish", "topic": topic, "msg": payload})

    def _topic_msg(self, topic: str) -> dict[str, Any]:
        if topic == "/joint_states":
            return self.world.joint_state()
        if topic == "/safety/estop":
            return self.world.estop_msg()
        return self.world.zone_msg()

    def _on_publish(self, topic: str, msg: dict[str, Any]) -> None:
        if topic == "/safety/stop_request":
            self.world.trip(int(msg.get("category", 2)), str(msg.get("source", "software")),
                            str(msg.get("reason", "stop requested over /safety/stop_request")))

    # -- services ---------------------------------------------------------------------
    async def _call_service(self, client: _Client, msg: dict[str, Any]) -> None:
        service = str(msg.get("service"))
        args = msg.get("args") or {}
        if isinstance(args, list):  # the protocol allows positional args
            args = args[0] if args and isinstance(args[0], dict) else {}
        reply: dict[str, Any] = {"op": "service_response", "service": service}
        if "id" in msg:
            reply["id"] = msg["id"]
        if service == "/cell/get_scene" and self.world.faults.scene_hang:
            return  # never answer: the caller's timeout must handle it
        try:
            values = self._service(service, args)
        except Fenced as exc:
            reply.update(values=_refusal(exc), result=False)
        except (DeviceError, ValueError, KeyError, TypeError) as exc:
            text = exc.message if isinstance(exc, DeviceError) else str(exc)
            code = exc.code if isinstance(exc, DeviceError) else "BAD_REQUEST"
            reply.update(values=f"{code}: {text}", result=False)
        else:
            reply.update(values=values, result=True)
        self._preempt_stale()
        await self._send(client, reply)

    def _service(self, service: str, args: dict[str, Any]) -> dict[str, Any]:
        w = self.world
        key = str(args.get("key") or "") or None
        fence = _fence(args)
        if service == "/cell/get_scene":
            return {"scene": w.scene().as_dict()}
        if service == "/cell/query":
            found = w.query(str(args["key"]))
            return {"found": found is not None, "reply": found or {}}
        if service == "/cell/block":
            return {"executed": w.block(str(args["key"]), _required(fence, service))}
        if service == "/gripper/command":
            command = str(args.get("command", "status"))
            if command == "status":
                return {"ok": True, **w.tooling()}
            if w.faults.gripper_error:
                raise DeviceError("GRIPPER", w.faults.gripper_error)
            if command not in {"grip", "release"}:
                raise ValueError(f"unknown gripper command {command!r}")
            return {**w.command(command, key, fence), **w.tooling()}
        if service == "/tool/command":
            command = str(args.get("command", "status"))
            if command == "status":
                return {"ok": True, **w.tooling()}
            if w.faults.tool_error:
                raise DeviceError("TOOL", w.faults.tool_error)
            if command == "dispense":
                return w.command("dispense", key, fence,
                                 volume_ul=float(args.get("volume_ul", 5.0)))
            if command == "off":
                return w.command("tool_off", key, fence)
            raise ValueError(f"unknown tool command {command!r}")
        if service == "/inspection/trigger":
            with w.lock:
                w.admit("inspect", key, fence)
                result = w.inspect(str(args.get("board", "B1")))
                w.took_effect("inspect", key, fence)
                return result
        if service == "/conveyor/route":
            return w.command("route", key, fence, board=str(args.get("board", "B1")),
                             destination=str(args.get("destination", "rework")))
        return self._sim_service(service, args)

    def _sim_service(self, service: str, args: dict[str, Any]) -> dict[str, Any]:
        w = self.world
        if service == "/sim/inject":
            w.inject(dict(args["fault"]))
            return {"ok": True}
        if service == "/sim/reset":
            self._goals.clear()
            w.reset()
            return {"ok": True}
        if service == "/sim/world":
            return {"world": w.snapshot()}
        if service == "/sim/reset_stop":
            return {"ok": w.reset_stop()}
        if service == "/sim/person":
            if args.get("op", "add") == "add":
                w.add_person(str(args["id"]), float(args["x"]), float(args["y"]))
            else:
                w.remove_person(str(args["id"]))
            return {"ok": True}
        if service == "/sim/obstacle":
            if args.get("op", "add") == "add":
                w.add_obstacle(Box.from_dict({**args, "kind": "obstacle"}))
            else:
                w.remove_obstacle(str(args["id"]))
            return {"ok": True}
        raise DeviceError("UNKNOWN_SERVICE", f"service {service} is not offered by the simulator")

    # -- actions ----------------------------------------------------------------------
    async def _send_goal(self, client: _Client, msg: dict[str, Any]) -> None:
        gid = str(msg.get("id"))
        action = str(msg.get("action"))
        args = msg.get("args") or {}
        if action not in (_FENCED_ACTION, _RAW_ACTION):
            await self._send(client, {"op": "action_result", "id": gid, "action": action,
                                      "values": f"no action server for {action}", "status": 0,
                                      "result": False})
            return
        try:
            motion, fence = self._start_goal(action, args)
        except Fenced as exc:
            await self._send(client, {"op": "action_result", "id": gid, "action": action,
                                      "values": _refusal(exc),
                                      "status": _STATUS["aborted"], "result": False})
            return
        except GoalRejected as exc:
            await self._send(client, {"op": "action_result", "id": gid, "action": action,
                                      "values": {"error_code": exc.code,
                                                 "error_string": exc.message},
                                      "status": _STATUS["aborted"], "result": True})
            return
        self._goals[gid] = _Goal(client, motion, action, fence)
        self._preempt_stale()

    def _start_goal(self, action: str, args: dict[str, Any]) -> tuple[Motion, Fence | None]:
        """Check the fence and the key, start the motion and record it: one atomic step.

        Raises:
            Fenced: Stale epoch or blocked key.
            GoalRejected: The controller refuses the goal itself.
        """
        trajectory = dict(args.get("trajectory") or {})
        if action == _RAW_ACTION:
            return start_motion(self.world, trajectory), None
        key = str(args.get("key") or "")
        try:
            fence = _fence(args)
        except (KeyError, TypeError, ValueError):
            fence = None
        if fence is None or not key:
            raise GoalRejected(INVALID_GOAL, "a fenced goal needs 'key' and 'fence' "
                                             "{saga_id, epoch}")
        with self.world.lock:
            self.world.admit("motion", key, fence)
            try:
                motion = start_motion(self.world, trajectory)
            except GoalRejected as exc:
                self.world.refused("motion", key, fence, exc.message)
                raise
            self.world.took_effect("motion", key, fence)
            return motion, fence

    def _preempt_stale(self) -> None:
        # Once a saga's new owner has been admitted, the old owner's goals still
        # running are stopped (a controlled stop): they are not its motions any more.
        for goal in list(self._goals.values()):
            fence = goal.fence
            if fence is not None and fence.epoch < self.world.gate.epoch(fence.saga_id):
                cancel(self.world, goal.motion)

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self._tick(loop.time())
            except Exception:  # keep serving: a broken tick must not kill the bridge
                LOG.exception("simulation tick failed")

    async def _tick(self, now: float) -> None:
        self._preempt_stale()  # also after a block that reached the world another way
        moved = False
        finished: list[tuple[str, _Goal]] = []
        for gid, goal in list(self._goals.items()):
            done = advance(self.world, goal.motion, self.tick_s * self.time_scale)
            moved = True
            await self._send(goal.client, {
                "op": "action_feedback", "id": gid, "action": goal.action,
                "values": {"joint_names": list(JOINT_NAMES),
                           "actual": {"positions": list(self.world.q)}},
            })
            if done:
                self._goals.pop(gid, None)
                finished.append((gid, goal))
        if moved or now - self._last_heartbeat >= _HEARTBEAT_S:
            self._last_heartbeat = now
            await self._publish("/joint_states", self.world.joint_state())
        # Safety signals go out before results, as a safety controller's outputs
        # change before the trajectory controller reports the aborted goal.
        estop, zone = self.world.estop_msg(), self.world.zone_msg()
        if estop != self._sent_estop:
            await self._publish("/safety/estop", estop)
        if zone != self._sent_zone:
            await self._publish("/safety/zone", zone)
        self._sent_estop, self._sent_zone = estop, zone
        for gid, goal in finished:
            motion = goal.motion
            if motion.hang:
                continue  # injected fault: the result never arrives
            await self._send(goal.client, {
                "op": "action_result", "id": gid, "action": goal.action,
                "values": {"error_code": motion.error_code, "error_string": motion.error_string},
                "status": _STATUS[motion.status], "result": True,
            })


def _refusal(exc: Fenced) -> str:
    return f"{'KEY_BLOCKED' if exc.code == 'key_blocked' else 'FENCED'}: {exc.message}"


def _fence(args: dict[str, Any]) -> Fence | None:
    raw = args.get("fence")
    if not isinstance(raw, dict):
        return None
    return Fence(str(raw["saga_id"]), int(raw["epoch"]))


def _required(fence: Fence | None, service: str) -> Fence:
    if fence is None:
        raise ValueError(f"{service} needs 'fence' {{saga_id, epoch}}")
    return fence


def start_rosbridge(world: CellWorld | None = None, *, port: int = 0,
                    time_scale: float = 40.0) -> RosbridgeSim:
    """Start a simulator on a free loopback port (tests and demos); call ``stop()`` after."""
    sim = RosbridgeSim(world, time_scale=time_scale)
    sim.start("127.0.0.1", port)
    return sim


def serve(port: int = 9090, *, host: str = "127.0.0.1", time_scale: float = 1.0) -> None:
    """Serve the simulated cell on ``ws://host:port`` until interrupted (``reversa sim``)."""
    sim = RosbridgeSim(time_scale=time_scale)

    def ready(bound: int) -> None:
        print(f"rosbridge simulator (PCB cell, UR5-like arm) listening on ws://{host}:{bound}",
              flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(sim.run(host, port, ready))

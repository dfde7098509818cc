"""The rosbridge transport (roslibpy): a ROS 2 cell behind a rosbridge_server.

:class:`RosLink` is one rosbridge connection. It implements the arm
(FollowJointTrajectory action with cancel), the safety sensors (e-stop and
zone topics, the planning-scene service), the inspection camera and the
conveyor; :class:`RosTooling` drives gripper and tool services. Interface
names and types are configurable with :class:`RosNames` (docs/robot.md shows
how to point them at a real rosbridge_server in front of Gazebo or a robot).

roslibpy errors never leave this module: a lost connection or a service that
refuses is a :class:`~reversa.core.errors.TransientError` or
:class:`~reversa.core.errors.PermanentError`; a timeout of a call that changes
something is :class:`~reversa.core.errors.OutcomeUnknown`; a refusal by the cell
bridge's fence (``FENCED: ...`` for a stale epoch, ``KEY_BLOCKED: ...``) is
:class:`~reversa.core.errors.Fenced`.

Every command carries a :class:`~.ports.Stamp` as ``key`` and
``fence: {saga_id, epoch}`` fields: trajectory goals go to the cell bridge's
fenced action, which checks them before forwarding to the controller (see
docs/robot.md for what a real cell bridge must do).

roslibpy's default transport runs Twisted's reactor in a background thread,
once per process; this class never stops it (``close`` only closes the
socket), so any number of links can be opened and closed in one process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import roslibpy

from reversa.core.errors import (
    EmergencyStop,
    Fenced,
    OutcomeUnknown,
    PermanentError,
    TransientError,
)
from reversa.safety import Joints

from .ports import BlockOutcome, MotionOutcome, Stamp, StopListener, ZoneStatus
from .scene import PlanningScene

__all__ = ["RosLink", "RosNames", "RosTooling"]

UR_JOINTS = (
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
)
_GOAL_STATUS = {4: "succeeded", 5: "canceled", 6: "aborted"}
_POLL_S = 0.01  # how often a waiting motion re-checks its abort condition
_CANCEL_WAIT_S = 1.0  # how long a cancelled goal may take to report its end
_FENCED = {"FENCED", "KEY_BLOCKED"}  # the cell bridge's refusals of a stale or blocked command


@dataclass(frozen=True, slots=True)
class RosNames:
    """ROS interface names and types the adapter uses.

    The defaults match the simulator; the ``reversa_cell_msgs`` interfaces are
    the cell-bridge node's (docs/robot.md). ``trajectory`` is the bridge's fenced
    action, which forwards accepted goals to the arm's trajectory controller.
    """

    joint_states: str = "/joint_states"
    joint_states_type: str = "sensor_msgs/msg/JointState"
    trajectory: str = "/cell/follow_joint_trajectory"
    trajectory_type: str = "reversa_cell_msgs/action/FencedFollowJointTrajectory"
    estop: str = "/safety/estop"
    estop_type: str = "reversa_cell_msgs/msg/SafetyStop"
    zone: str = "/safety/zone"
    zone_type: str = "reversa_cell_msgs/msg/ZoneStatus"
    stop_request: str = "/safety/stop_request"
    scene: str = "/cell/get_scene"
    query: str = "/cell/query"
    block: str = "/cell/block"
    gripper: str = "/gripper/command"
    tool: str = "/tool/command"
    inspection: str = "/inspection/trigger"
    conveyor: str = "/conveyor/route"
    joint_names: tuple[str, ...] = UR_JOINTS


class RosLink:
    """One rosbridge connection with cached sensor state.

    Args:
        host: rosbridge host (loopback in tests).
        port: rosbridge port.
        names: Interface names.
        connect_timeout: Seconds to wait for the connection.
        call_timeout: Seconds to wait for a service response.
        transport: roslibpy transport (``None``: roslibpy's default).

    Raises:
        TransientError: The rosbridge server cannot be reached.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9090,
        *,
        names: RosNames | None = None,
        connect_timeout: float = 10.0,
        call_timeout: float = 3.0,
        transport: str | None = None,
    ) -> None:
        self.names = names or RosNames()
        self.url = f"ws://{host}:{port}"
        self.call_timeout = call_timeout
        self._lock = threading.Condition()
        self._joints: Joints | None = None
        self._estop: dict[str, Any] = {"active": False}
        self._zone = ZoneStatus(False)
        self._stop_listeners: list[StopListener] = []
        self._zone_listeners: list[Callable[[ZoneStatus], None]] = []
        self._ros = roslibpy.Ros(host, port, transport=transport)
        try:
            self._ros.run(connect_timeout)
        except roslibpy.core.RosTimeoutError as exc:
            # Without this the reconnecting factory would keep dialling forever.
            stop_trying = getattr(self._ros.factory, "stopTrying", None)
            if callable(stop_trying):
                stop_trying()
            self._ros.close()
            raise TransientError(f"cannot reach rosbridge at {self.url} within "
                                 f"{connect_timeout:g}s; is rosbridge_server running?") from exc
        n = self.names
        self._topics = [
            roslibpy.Topic(self._ros, n.joint_states, n.joint_states_type),
            roslibpy.Topic(self._ros, n.estop, n.estop_type),
            roslibpy.Topic(self._ros, n.zone, n.zone_type),
        ]
        self._topics[0].subscribe(self._on_joint_state)
        self._topics[1].subscribe(self._on_estop)
        self._topics[2].subscribe(self._on_zone)
        self._stop_topic = roslibpy.Topic(self._ros, n.stop_request, n.estop_type)
        self._action = roslibpy.ActionClient(self._ros, n.trajectory, n.trajectory_type)

    # -- lifecycle --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether the websocket is open."""
        return bool(self._ros.is_connected)

    def close(self) -> None:
        """Close the connection (the shared reactor keeps running for other links)."""
        for topic in self._topics:
            topic.unsubscribe()
        if self._ros.is_connected:
            self._ros.close()

    # -- topics (reactor thread) ------------------------------------------------------
    def _on_joint_state(self, msg: dict[str, Any]) -> None:
        names = list(msg.get("name") or [])
        positions = list(msg.get("position") or [])
        try:
            q = tuple(float(positions[names.index(j)]) for j in self.names.joint_names)
        except (ValueError, IndexError):
            return  # a message for other joints (a second arm, the gripper)
        with self._lock:
            self._joints = q
            self._lock.notify_all()

    def _on_estop(self, msg: dict[str, Any]) -> None:
        with self._lock:
            was = bool(self._estop.get("active"))
            self._estop = dict(msg)
            listeners = list(self._stop_listeners)
        if msg.get("active") and not was:
            for listener in listeners:
                listener(int(msg.get("category", 0)), str(msg.get("source", "estop")),
                         str(msg.get("reason", "safety stop")))

    def _on_zone(self, msg: dict[str, Any]) -> None:
        status = ZoneStatus(bool(msg.get("occupied")),
                            tuple(str(p.get("id")) for p in msg.get("persons") or ()))
        with self._lock:
            self._zone = status
            listeners = list(self._zone_listeners)
        for listener in listeners:
            listener(status)

    # -- SafetySensors ----------------------------------------------------------------
    def joints(self) -> Joints:
        """Latest joint positions from ``/joint_states``.

        Raises:
            TransientError: No joint state arrived within the call timeout.
        """
        with self._lock:
            if self._joints is None:
                self._lock.wait_for(lambda: self._joints is not None, self.call_timeout)
            if self._joints is None:
                raise TransientError(f"no {self.names.joint_states} message from {self.url} "
                                     f"within {self.call_timeout:g}s")
            return self._joints

    def scene(self) -> PlanningScene:
        """The planning scene, read now from the cell's scene service."""
        values = self.call(self.names.scene, {}, mutating=False)
        try:
            return PlanningScene.from_dict(values["scene"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(f"{self.names.scene} returned a malformed scene: {exc}") from exc

    def zone(self) -> ZoneStatus:
        """Latest reach-zone report."""
        with self._lock:
            return self._zone

    def estop_active(self) -> bool:
        """Whether the machine reports a safety stop active (latest message)."""
        with self._lock:
            return bool(self._estop.get("active"))

    def estop_state(self) -> dict[str, Any]:
        """The latest ``/safety/estop`` message."""
        with self._lock:
            return dict(self._estop)

    def on_stop(self, listener: StopListener) -> Callable[[], None]:
        """Call ``listener(category, source, reason)`` when a stop becomes active.

        A stop already active is reported at once. Returns the unsubscribe function.
        """
        with self._lock:
            self._stop_listeners.append(listener)
            active = dict(self._estop) if self._estop.get("active") else None
        if active is not None:
            listener(int(active.get("category", 0)), str(active.get("source", "estop")),
                     str(active.get("reason", "safety stop")))
        return lambda: self._remove(self._stop_listeners, listener)

    def on_zone(self, listener: Callable[[ZoneStatus], None]) -> Callable[[], None]:
        """Call ``listener`` on every zone report; returns the unsubscribe function."""
        with self._lock:
            self._zone_listeners.append(listener)
        return lambda: self._remove(self._zone_listeners, listener)

    def _remove(self, listeners: list[Any], listener: Any) -> None:
        with self._lock:
            if listener in listeners:
                listeners.remove(listener)

    def request_stop(self, category: int, source: str, reason: str) -> None:
        """Ask the safety controller for a stop (a software stop request)."""
        self._stop_topic.publish(roslibpy.Message(
            {"active": True, "category": category, "source": source, "reason": reason}))

    # -- ArmPort ----------------------------------------------------------------------
    def execute(
        self,
        path: Sequence[Joints],
        times: Sequence[float],
        *,
        stamp: Stamp,
        timeout: float,
        abort: Callable[[], bool],
    ) -> MotionOutcome:
        """Send a fenced trajectory goal and wait for it (see :class:`ArmPort`)."""
        self._require_connection()
        points = [
            {"positions": list(q), "velocities": [], "accelerations": [],
             "time_from_start": {"sec": int(t), "nanosec": round((t % 1) * 1e9)}}
            for q, t in zip(path, times, strict=True)
        ]
        goal = {"trajectory": {"joint_names": list(self.names.joint_names), "points": points},
                **_stamped(stamp)}
        done = threading.Event()
        box: dict[str, Any] = {}

        def resultback(result: Any) -> None:
            box["result"] = result
            done.set()

        def errback(error: Any) -> None:
            box["error"] = error
            done.set()

        goal_id = self._action.send_goal(roslibpy.Goal(goal), resultback, _ignore, errback)
        end = time.monotonic() + timeout
        while not done.wait(_POLL_S):
            if abort():
                return self._cancel(goal_id, done, box, "canceled")
            if time.monotonic() >= end:
                return self._cancel(goal_id, done, box, "timeout")
        return _outcome(box)

    def _cancel(self, goal_id: Any, done: threading.Event, box: dict[str, Any],
                why: str) -> MotionOutcome:
        self._action.cancel_goal(goal_id)
        done.wait(min(self.call_timeout, _CANCEL_WAIT_S))
        if "result" not in box and "error" not in box:
            return MotionOutcome(why, -1, f"no result from the controller after cancel ({why})")
        outcome = _outcome(box)
        if why == "timeout":
            # Whatever the late result says, the caller stopped waiting: in doubt.
            return MotionOutcome("timeout", outcome.error_code,
                                 f"no result within the timeout; cancelled ({outcome.status})")
        return outcome

    def block(self, stamp: Stamp) -> BlockOutcome:
        """Block ``stamp.key`` at the cell bridge unless a command under it ran (see
        :meth:`ArmPort.block`). Blocking twice answers the same, so a lost reply
        is a :class:`TransientError`."""
        values = self.call(self.names.block, _stamped(stamp), mutating=False)
        return BlockOutcome(tuple(str(c) for c in values.get("executed") or ()))

    # -- CameraPort / ConveyorPort ----------------------------------------------------
    def inspect(self, stamp: Stamp, board: str) -> dict[str, Any]:
        """Trigger the inspection camera (it changes nothing: safe to retry)."""
        return self.call(self.names.inspection, {"board": board, **_stamped(stamp)},
                         mutating=False)

    def route(self, stamp: Stamp, board: str, destination: str) -> dict[str, Any]:
        """Send a board to another station (deduplicated by the stamp's key)."""
        return self.call(self.names.conveyor,
                         {"board": board, "destination": destination, **_stamped(stamp)},
                         mutating=True)

    def query(self, key: str) -> dict[str, Any] | None:
        """What ran under ``key`` (``commands`` and the last reply), if anything."""
        values = self.call(self.names.query, {"key": key}, mutating=False)
        return dict(values.get("reply") or {}) if values.get("found") else None

    # -- services ---------------------------------------------------------------------
    def call(self, service: str, args: dict[str, Any], *, mutating: bool,
             timeout: float | None = None) -> dict[str, Any]:
        """Call a service and translate failures into Reversa errors.

        Args:
            service: Service name.
            args: Request fields.
            mutating: Whether the call changes the cell; a timeout then leaves
                the effect in doubt (:class:`OutcomeUnknown`).
            timeout: Seconds to wait (default: the link's call timeout).
        """
        self._require_connection()
        request = roslibpy.ServiceRequest(args)
        client = roslibpy.Service(self._ros, service, "reversa_cell_msgs/srv/Command")
        try:
            response = client.call(request, timeout=timeout or self.call_timeout)
        except roslibpy.core.ServiceException as exc:
            raise _service_error(service, exc.args[0] if exc.args else "") from None
        except TimeoutError:
            message = (f"{service} did not answer within {timeout or self.call_timeout:g}s")
            if mutating:
                raise OutcomeUnknown(message + "; its effect may have happened") from None
            raise TransientError(message) from None
        return dict(response or {})

    def _require_connection(self) -> None:
        if not self._ros.is_connected:
            raise TransientError(f"rosbridge connection to {self.url} is down; "
                                 "roslibpy is reconnecting")


class RosTooling:
    """Gripper and tool through rosbridge services (a ToolingPort).

    Args:
        link: The rosbridge connection.
    """

    def __init__(self, link: RosLink) -> None:
        self.link = link

    @property
    def controller(self) -> RosLink:
        """The connection whose cell bridge receives these commands (and their blocks)."""
        return self.link

    def grip(self, stamp: Stamp) -> dict[str, Any]:
        """Close the fingers."""
        return self.link.call(self.link.names.gripper, {"command": "grip", **_stamped(stamp)},
                              mutating=True)

    def release(self, stamp: Stamp) -> dict[str, Any]:
        """Open the fingers."""
        return self.link.call(self.link.names.gripper,
                              {"command": "release", **_stamped(stamp)}, mutating=True)

    def dispense(self, stamp: Stamp, volume_ul: float) -> dict[str, Any]:
        """Dispense paste."""
        return self.link.call(self.link.names.tool, {"command": "dispense",
                                                     "volume_ul": volume_ul, **_stamped(stamp)},
                              mutating=True)

    def tool_off(self, stamp: Stamp) -> dict[str, Any]:
        """Switch the tool off."""
        return self.link.call(self.link.names.tool, {"command": "off", **_stamped(stamp)},
                              mutating=True)

    def block(self, stamp: Stamp) -> BlockOutcome:
        """Block at the cell bridge, which fronts the gripper and tool too."""
        return self.link.block(stamp)

    def status(self) -> dict[str, Any]:
        """Gripper and tool state."""
        values = self.link.call(self.link.names.gripper, {"command": "status"}, mutating=False)
        return {"gripper": values.get("gripper"), "holding": values.get("holding") or "",
                "tool": values.get("tool")}

    def query(self, key: str) -> dict[str, Any] | None:
        """The reply of the command sent with ``key``, if it ran."""
        return self.link.query(key)


def _stamped(stamp: Stamp) -> dict[str, Any]:
    return {"key": stamp.key,
            "fence": {"saga_id": stamp.fence.saga_id, "epoch": stamp.fence.epoch}}


def _ignore(_feedback: Any) -> None:
    """Trajectory feedback is not needed: joint states arrive on their topic."""


def _outcome(box: dict[str, Any]) -> MotionOutcome:
    if "error" in box:
        error = box["error"]
        values = error.get("values") if isinstance(error, dict) else error
        text = str(values)
        refusal = text.split(":", 1)[0]
        if refusal in _FENCED:
            return MotionOutcome("fenced", -1, text, refusal=refusal.lower())
        return MotionOutcome("rejected", -1, text)
    result = box["result"]
    status = result["status"]
    code = int(getattr(status, "value", status))
    values = result.get("values") or {}
    if not isinstance(values, dict):
        return MotionOutcome("rejected", -1, str(values))
    error_code = int(values.get("error_code", 0))
    text = str(values.get("error_string", ""))
    name = _GOAL_STATUS.get(code, "aborted")
    if name == "aborted" and error_code in (-1, -2):
        name = "rejected"  # INVALID_GOAL / INVALID_JOINTS: the arm never moved
    return MotionOutcome(name, error_code, text)


def _service_error(service: str, values: Any) -> BaseException:
    text = str(values)
    code = text.split(":", 1)[0].strip().upper() if ":" in text else ""
    message = f"{service} failed: {text}"
    if code == "STOPPED":
        return EmergencyStop(message, category=2, source=f"device:{service}")
    if code in _FENCED:
        return Fenced(message, code=code.lower())
    if code in {"BUSY", "CHECKSUM"}:
        return TransientError(message)
    return PermanentError(message, code=f"device_{code.lower()}" if code else None)

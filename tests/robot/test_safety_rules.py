"""reversa.safety: stops, envelopes, safe states, process rules (no transports)."""

from __future__ import annotations

import itertools

import pytest

from reversa import EmergencyStop, FakeClock, PreconditionFailed
from reversa.safety import (
    GripperState,
    JointLimits,
    PartStatus,
    SafeState,
    SafetyPolicy,
    StopCategory,
    StopLatch,
    ToolingStatus,
    ToolState,
    can_regrip,
    can_return_part,
    interpolate,
    joint_distance,
    motion_duration,
    tooling_matches,
)


def test_latch_refuses_until_a_human_resets_with_the_hardware_released() -> None:
    clock = FakeClock()
    latch = StopLatch(clock.now)
    seen: list[int] = []
    latch.subscribe(lambda e: seen.append(int(e.category)))
    latch.raise_if_tripped()  # nothing latched: no error

    latch.trip(StopCategory.CONTROLLED_HOLD, "zone:p1", "person in zone")
    latch.trip(StopCategory.UNCONTROLLED, "estop:pendant", "button")
    assert seen == [2, 0]
    with pytest.raises(EmergencyStop) as stop:
        latch.raise_if_tripped()
    assert stop.value.category == 0  # the most severe stop is the one reported
    assert stop.value.source == "estop:pendant"

    with pytest.raises(PreconditionFailed, match="still reports"):
        latch.reset("alice", hardware_released=False)
    with pytest.raises(PreconditionFailed, match="operator"):
        latch.reset("  ", hardware_released=True)
    assert latch.tripped

    record = latch.reset("alice", hardware_released=True, note="zone clear, button out")
    assert not latch.tripped
    assert record.operator == "alice"
    assert [e.source for e in record.cleared] == ["zone:p1", "estop:pendant"]
    latch.raise_if_tripped()


def test_emergency_stop_is_not_an_exception_user_code_would_swallow() -> None:
    latch = StopLatch(FakeClock().now)
    latch.trip(0, "estop:pendant", "pressed")
    try:
        latch.raise_if_tripped()
    except Exception:
        pytest.fail("EmergencyStop must derive from BaseException")
    except EmergencyStop:
        pass


def test_interpolation_respects_the_stated_resolution() -> None:
    start = (0.0,) * 6
    goal = (1.0, -0.5, 0.25, 0.0, 0.0, 0.0)
    path = interpolate(start, goal, 0.02)
    assert path[0] == start
    assert path[-1] == pytest.approx(goal)
    assert len(path) == 51  # ceil(1.0 / 0.02) + 1
    assert max(joint_distance(a, b) for a, b in itertools.pairwise(path)) <= 0.02 + 1e-12
    assert len(interpolate(start, goal, 0.1)) == 11
    with pytest.raises(ValueError):
        interpolate(start, goal, 0.0)


def test_joint_limits_name_the_joint_and_the_waypoint() -> None:
    limits = JointLimits(lower=(-1.0,) * 6, upper=(1.0,) * 6, max_speed=(1.0,) * 6)
    assert limits.check((0.0,) * 6).ok
    path = interpolate((0.0,) * 6, (0.0, 0.0, 1.5, 0.0, 0.0, 0.0), 0.1)
    check = limits.check_path(path)
    assert not check.ok
    assert "joint 3" in check.reason
    assert check.detail["waypoint"] == 11
    assert limits.speed_for(3.0) == 1.0


def test_motion_duration_keeps_every_joint_under_the_speed() -> None:
    path = interpolate((0.0,) * 6, (1.0, 0.5, 0, 0, 0, 0), 0.05)
    times = motion_duration(path, 0.5)
    assert times[-1] == pytest.approx(2.0)
    for (a, b), (ta, tb) in zip(itertools.pairwise(path),
                                itertools.pairwise(times), strict=True):
        assert joint_distance(a, b) / (tb - ta) <= 0.5 + 1e-9


def test_safe_states_nearest_first_and_arm_at() -> None:
    home = SafeState(name="home", joints=(0.0,) * 6)
    side = SafeState(name="side", joints=(1.0,) + (0.0,) * 5)
    policy = SafetyPolicy(safe_states=[home, side])
    assert [s.name for s in policy.by_distance((0.9,) + (0.0,) * 5)] == ["side", "home"]
    assert home.arm_at((0.005,) + (0.0,) * 5).ok
    assert not home.arm_at((0.05,) + (0.0,) * 5).ok
    assert policy.state("side") is side
    with pytest.raises(KeyError, match="declared: home, side"):
        policy.state("nope")


def test_a_pasted_part_cannot_be_regripped() -> None:
    check = can_regrip(PartStatus("U1", "board", pasted=True))
    assert not check.ok
    assert check.detail["rule"] == "paste"
    assert "solder paste" in check.reason


def test_a_released_part_cannot_be_unreleased_from_an_unknown_pose() -> None:
    dropped = can_regrip(PartStatus("U1", "dropped"))
    assert not dropped.ok
    assert dropped.detail["rule"] == "unrelease"
    assert can_regrip(PartStatus("U1", "board")).ok
    assert can_regrip(PartStatus("U1", "gripper")).ok  # nothing to undo


def test_returning_a_part_needs_it_held_or_regrippable() -> None:
    held = ToolingStatus(GripperState.CLOSED, "U1", ToolState.OFF)
    empty = ToolingStatus(GripperState.OPEN, None, ToolState.OFF)
    assert can_return_part(PartStatus("U1", "gripper"), held, "tray").ok
    assert can_return_part(PartStatus("U1", "tray"), empty, "tray").ok
    assert can_return_part(PartStatus("U1", "board"), empty, "tray").ok
    assert not can_return_part(PartStatus("U1", "board", pasted=True), empty, "tray").ok
    assert not can_return_part(PartStatus("U1", "gripper", pasted=True), held, "tray").ok
    assert not can_return_part(PartStatus("U1", "dropped"), empty, "tray").ok


def test_tooling_must_match_the_declared_safe_state() -> None:
    home = SafeState(name="home", joints=(0.0,) * 6)
    ok = ToolingStatus(GripperState.OPEN, None, ToolState.OFF)
    assert all(c.ok for c in tooling_matches(home, ok))
    bad = ToolingStatus(GripperState.CLOSED, "U1", ToolState.ON)
    failures = [c.reason for c in tooling_matches(home, bad) if not c.ok]
    assert len(failures) == 3

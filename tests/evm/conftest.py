"""Shared fixtures of the EVM tests.

Contracts are compiled once per session (the compiler caches by source hash)
and deployed once per world; every test reverts the chain to the deployed
snapshot, so each starts from the same state in milliseconds. Stores are the
suite's (SQLite and PostgreSQL): transactions are journaled in them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from reversa import Engine, FakeClock, Registry, Saga, Step, StepContext, Store
from reversa.adapters.evm import TxScope
from reversa.demos.evm.rig import EvmRig, inprocess_rig
from reversa.simulators.evm import UNIT, InProcessChain, deploy_defi_world
from reversa.simulators.evm.anvil import ANVIL_INSTALL_HINT, find_anvil


@dataclass
class World:
    chain: InProcessChain
    world: Any
    snapshot: str


def _world(pool2_liquidity: int) -> World:
    chain = InProcessChain(auto_mine=True)
    world = deploy_defi_world(chain, pool2_liquidity=pool2_liquidity)
    return World(chain, world, chain.snapshot())


@pytest.fixture(scope="session")
def thin_world() -> World:
    """Scenario C as written: pool 2 too thin for the B→C swap."""
    return _world(1_000 * UNIT)


@pytest.fixture(scope="session")
def deep_world() -> World:
    """Every pool deep enough: every step succeeds unless a fault is injected."""
    return _world(1_000_000 * UNIT)


def make_rig(base: World, **options: Any) -> EvmRig:
    base.chain.revert(base.snapshot)
    base.chain.clear_hooks()
    base.chain.resume()
    return inprocess_rig(chain=base.chain, world=base.world, **options)


@pytest.fixture
def rig_factory(thin_world: World, deep_world: World) -> Iterator[Callable[..., EvmRig]]:
    """Build a rig with options: ``rig_factory(deep=False, **inprocess_rig_options)``."""
    built: list[EvmRig] = []

    def factory(*, deep: bool = False, **options: Any) -> EvmRig:
        rig = make_rig(deep_world if deep else thin_world, **options)
        built.append(rig)
        return rig

    yield factory
    for rig in built:
        rig.close()


@pytest.fixture
def rig(thin_world: World) -> Iterator[EvmRig]:
    built = make_rig(thin_world)
    yield built
    built.close()


@pytest.fixture
def deep_rig(deep_world: World) -> Iterator[EvmRig]:
    built = make_rig(deep_world)
    yield built
    built.close()


@pytest.fixture
def engine_for(store: Store, clock: FakeClock) -> Iterator[Callable[[EvmRig], Engine]]:
    """``engine_for(rig)``: an engine on the test's store with the rig's services."""
    engines: list[Engine] = []

    def factory(rig: EvmRig) -> Engine:
        engine = Engine(rig.registry, store, clock=clock, services=rig.services(),
                        heartbeat=False)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.close()


def hold_saga(store: Store, clock: FakeClock, services: dict[str, Any]) -> StepContext:
    """The context an operation of a live saga gets: its store journal, keys and fence.

    Runs a one-step saga through the engine and keeps its step's context. Nobody
    claims the saga afterwards, so its lease token stays current and the
    journal accepts writes, as it does for a step in flight.
    """
    held: list[StepContext] = []
    registry = Registry()
    registry.add("action", "hold", lambda ctx: held.append(ctx) or {})
    registry.add("compensation", "release", lambda ctx: {})
    registry.add("snapshot", "nothing", lambda ctx: {})
    Engine(registry, store, clock=clock, services=services, heartbeat=False).run(
        Saga.chain("hold", [Step(name="step", action="hold", compensation="release")],
                   snapshot="nothing"))
    return held[0]


@pytest.fixture
def held(store: Store, clock: FakeClock, rig: EvmRig) -> StepContext:
    """The held context of a saga whose services are the ``rig``'s."""
    return hold_saga(store, clock, rig.services())


@pytest.fixture
def scope(held: StepContext) -> TxScope:
    """Journal, clock and fence of a saga in flight, for calling the wallet directly."""
    return TxScope.of(held)


@pytest.fixture(scope="session")
def anvil_binary() -> str:
    """The anvil binary, or fail (CI) / skip (elsewhere) with the install hint."""
    found = find_anvil()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(ANVIL_INSTALL_HINT)
        pytest.skip(ANVIL_INSTALL_HINT)
    return found

"""Each extra is enough for what it promises, and nothing imports past its extra.

A production extra (``evm``, ``payments``, ``robot``) must be all an agent needs to
import its adapter: simulator-only packages (eth-tester, vyper, websockets, httpx)
must not be pulled in at import time. A ``-sim`` extra must be enough for its
simulators, and the extra a CLI hint names must be enough for what it hints at.

Installing each extra alone in its own virtual environment takes minutes, so the
subprocess below hides, with an import hook, every package that an extra does not
bring in (computed from the installed metadata), then imports the module.
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from reversa.cli.demo import ADAPTER_DEMOS
from reversa.cli.sim import SIMULATORS

PROJECT = "reversa"

BLOCKER = """
import importlib, importlib.abc, sys
blocked = set(sys.argv[2].split(","))
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in blocked or any(name.startswith(b + ".") for b in blocked):
            raise ModuleNotFoundError(f"No module named {name!r} (not in this extra)", name=name)
        return None
sys.meta_path.insert(0, Hide())
importlib.import_module(sys.argv[1])
"""


def _closure(extras: set[str]) -> set[str]:
    """Distributions installed by ``reversa[extras]``, dependencies included."""
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [(PROJECT, frozenset(extras))]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in done:
            continue
        done.add((name, wanted))
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue  # a dependency for another platform: not installed, nothing to hide
        for line in requires:
            req = Requirement(line)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return seen


def _declared_extras() -> set[str]:
    return set(md.metadata(PROJECT).get_all("Provides-Extra") or [])


def _hidden_modules(extra: str | None) -> list[str]:
    """Top-level modules of every distribution some extra installs but ``extra`` does not."""
    allowed = _closure({extra} if extra else set())
    everything = _closure(_declared_extras())
    owners = md.packages_distributions()
    hidden = {mod for mod, dists in owners.items()
              if all(canonicalize_name(d) in everything - allowed for d in dists)}
    # Adapters never import simulators (STYLE 14), whatever is installed.
    if extra is None or not extra.endswith("-sim"):
        hidden.add("reversa.simulators")
    return sorted(hidden)


def _import_with_only(module: str, extra: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, module, ",".join(_hidden_modules(extra))],
        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("module", "extra"), [
    ("reversa", None),
    ("reversa.cli.main", None),
    ("reversa.demos.run", None),
    ("reversa.adapters.payments", "payments"),
    ("reversa.adapters.evm", "evm"),
    ("reversa.adapters.robot", "robot"),
    ("reversa.simulators.ledger.http", "payments-sim"),
    ("reversa.simulators.fx_exchange", "payments-sim"),
    ("reversa.simulators.evm", "evm-sim"),
    ("reversa.simulators.robot", "robot-sim"),
    ("reversa.mcp", None),
    ("reversa.mcp.server", "mcp"),
    ("reversa.notify", "notify"),
    ("reversa.observability.otel", "otel"),
    ("reversa.observability.metrics", "metrics"),
    ("reversa.console", "console"),
])
def test_module_imports_with_only_its_extra(module: str, extra: str | None) -> None:
    assert extra is None or extra in _declared_extras()
    proc = _import_with_only(module, extra)
    assert proc.returncode == 0, (
        f"{module} does not import with only "
        f"{f'reversa[{extra}]' if extra else 'the core install'}:\n{proc.stderr[-2000:]}")


def test_the_hook_hides_what_an_extra_lacks() -> None:
    # The checks here are only worth something if hiding works.
    assert _import_with_only("websockets", "robot-sim").returncode == 0
    proc = _import_with_only("websockets", "robot")
    assert proc.returncode != 0
    assert "No module named 'websockets' (not in this extra)" in proc.stderr
    assert _import_with_only("eth_tester", "evm").returncode != 0
    assert _import_with_only("reversa.simulators", "robot").returncode != 0


@pytest.mark.parametrize(("module", "extra"), sorted(
    [(module, extra) for extra, module in ADAPTER_DEMOS.items()]
    + [(module, extra) for module, _, extra, _ in SIMULATORS.values()]))
def test_cli_install_hints_name_an_extra_that_suffices(module: str, extra: str) -> None:
    assert extra in _declared_extras(), f"the CLI suggests reversa[{extra}], which does not exist"
    proc = _import_with_only(module, extra)
    assert proc.returncode == 0, (
        f"the CLI suggests reversa[{extra}] for {module}, which needs more:\n"
        f"{proc.stderr[-2000:]}")

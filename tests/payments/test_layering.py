"""Stories sit above what they use: the payments adapter imports no simulator and no demo."""

from __future__ import annotations

import ast
import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import reversa.adapters.payments as payments

FORBIDDEN = ("reversa.simulators", "reversa.demos")


def _modules() -> dict[str, Path]:
    found = {payments.__name__: Path(payments.__file__)}
    for info in pkgutil.walk_packages(payments.__path__, prefix=f"{payments.__name__}."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None
        found[info.name] = Path(spec.origin)
    return found


def _imported(module: str, path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (relative ones resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_no_payments_module_names_a_simulator_or_a_demo() -> None:
    modules = _modules()
    assert len(modules) > 10  # the walk found the adapter's modules
    offending = {m: sorted(n for n in _imported(m, p) if n.startswith(FORBIDDEN))
                 for m, p in modules.items()}
    assert {m: n for m, n in offending.items() if n} == {}


def test_importing_every_payments_module_loads_no_simulator_or_demo() -> None:
    names = sorted(_modules())
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert json.loads(out.stdout) == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from ...simulators.ledger import MockLedger\nimport reversa.demos.run\n")
    assert _imported("reversa.adapters.payments.bad", bad) >= {
        "reversa.simulators.ledger", "reversa.demos.run"}

"""Stories sit above what they use: the robot adapter imports no simulator and no demo."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import reversa.adapters.robot as adapter

ABOVE = ("reversa.simulators", "reversa.demos")
PACKAGE = Path(adapter.__file__).parent


def _imports(path: Path) -> list[str]:
    """Every module an import statement in ``path`` names, relative ones resolved."""
    package = "reversa.adapters.robot"
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] \
                if node.level else []
            module = ".".join([*base, node.module or ""]).strip(".")
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_no_module_of_the_adapter_names_a_simulator_or_a_demo() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 10
    offending = {str(p.relative_to(PACKAGE)): [n for n in _imports(p) if n.startswith(ABOVE)]
                 for p in modules}
    assert {k: v for k, v in offending.items() if v} == {}


def test_importing_the_adapter_loads_no_simulator_or_demo() -> None:
    # A fresh interpreter: what the package pulls in, directly or not.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, reversa.adapters.robot; "
         f"print(sorted(m for m in sys.modules if m.startswith({ABOVE!r})))"],
        capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    assert loaded == "[]"

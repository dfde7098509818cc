"""The adapter sits below the stories: it never imports a simulator or a demo (STYLE rule 14)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import reversa.adapters.evm as adapter

FORBIDDEN = ("reversa.simulators", "reversa.demos")
PACKAGE = Path(adapter.__file__).parent


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions."""
    package = "reversa.adapters.evm"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_no_adapter_module_imports_a_simulator_or_a_demo() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10  # the walk really covers the adapter
    offending = {f"{path.name}: {name}" for path in sources for name in _imported(path)
                 if name.startswith(FORBIDDEN)}
    assert offending == set()


def test_importing_the_adapter_loads_no_simulator_or_demo() -> None:
    probe = ("import sys, reversa.adapters.evm as m, reversa.adapters.evm.wallet; "
             f"print(sorted(n for n in sys.modules if n.startswith({FORBIDDEN!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_the_walk_catches_relative_and_nested_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from ...simulators.evm import UNIT\nfrom .wallet import EvmWallet\n"
                      "def late():\n    import reversa.demos.evm.rig\n")
    names = _imported(sample)
    assert "reversa.simulators.evm" in names and "reversa.demos.evm.rig" in names
    assert "reversa.adapters.evm.wallet" in names

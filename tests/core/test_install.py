"""Every extra resolves on a fresh machine with the pip that ``python3 -m venv`` ships.

eth-tester and py-evm publish only pre-releases; a requirement such as
``eth-tester>=0.12`` then matches nothing, because pip skips pre-releases unless the
specifier names one. A machine that already has the package hides this, so the
resolution runs in a brand-new virtual environment that sees neither the system
site-packages nor pip's configuration (extra indexes, find-links, constraints): the
package index alone decides.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(not IN_CI, reason="asks the package index (about a minute); "
                                         "runs under CI=true"),
]


def _isolated_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON")) and k != "VIRTUAL_ENV"}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip reads no configuration file at all
    return env


def test_every_extra_resolves_with_stock_pip(tmp_path: Path) -> None:
    env = _isolated_env()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], env=env, check=True,
                   capture_output=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = subprocess.run([python, "-m", "pip", "--version"], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout.split()[1]
    assert pip == ensurepip.version()  # the stock pip, not an upgraded one

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = ",".join(sorted(pyproject["project"]["optional-dependencies"]))
    proc = subprocess.run(
        [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--disable-pip-version-check", f"{ROOT}[{extras}]"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, (
        f"pip {pip} cannot resolve reversa[{extras}]:\n{proc.stderr[-3000:]}")

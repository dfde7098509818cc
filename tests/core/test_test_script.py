"""scripts/test.sh picks the right Python and, under CI, fails on a missing part.

The script runs on a copy of ``scripts/`` with stand-in interpreters that record how
they are called, and a PATH holding only what the script needs: no apt-get, npm or
chromium, so nothing is installed and each decision can be observed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "--quiet --disable-pip-version-check -e .[all,dev]"

FAKE_PYTHON = """#!/bin/bash
echo "$0 $*" >> "$CALLS"
if [[ "$1 $2" == "-m venv" ]]; then
    /bin/mkdir -p "$3/bin" && /bin/cp "$0" "$3/bin/python"
fi
exit 0
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for name in ("test.sh", "setup-anvil.sh"):
        shutil.copy2(ROOT / "scripts" / name, root / "scripts" / name)
    return root


def _fake_python(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return path


def _run(checkout: Path, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                               list[str]]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in ("bash", "dirname", "id"):
        found = shutil.which(tool)
        assert found is not None
        (bindir / tool).symlink_to(found)
    calls = tmp_path / "calls.log"
    calls.touch()
    base = {k: v for k, v in os.environ.items()
            if k not in {"VIRTUAL_ENV", "CI", "REVERSA_ANVIL", "REVERSA_PG_BIN",
                          "REVERSA_TEST_WORKERS"}}
    full_env = {**base, "PATH": str(bindir), "CALLS": str(calls), "HOME": str(tmp_path), **env}
    proc = subprocess.run(["/bin/bash", "scripts/test.sh", "-x"], cwd=checkout, env=full_env,
                          capture_output=True, text=True, timeout=60)
    return proc, calls.read_text().splitlines()


PARALLEL = "-n 3 --dist worksteal"  # the default: three test processes


def test_outside_a_venv_it_makes_and_uses_dot_venv(checkout: Path, tmp_path: Path) -> None:
    system = _fake_python(tmp_path / "bin" / "python3")
    proc, calls = _run(checkout, tmp_path)
    assert proc.returncode == 0, proc.stderr
    venv_python = f"{checkout}/.venv/bin/python"
    assert f"{system} -m venv .venv" in calls
    assert f"{venv_python} -m pip install {INSTALL}" in calls
    assert calls[-1] == f"{venv_python} -m pytest {PARALLEL} -x"
    assert not [c for c in calls if c.startswith(f"{system} -m pip")]  # never the system's


def test_inside_a_venv_it_uses_that_venv(checkout: Path, tmp_path: Path) -> None:
    active = _fake_python(tmp_path / "active" / "bin" / "python")
    _fake_python(tmp_path / "bin" / "python3")
    proc, calls = _run(checkout, tmp_path, VIRTUAL_ENV=str(tmp_path / "active"))
    assert proc.returncode == 0, proc.stderr
    assert f"{active} -m pip install {INSTALL}" in calls
    assert calls[-1] == f"{active} -m pytest {PARALLEL} -x"
    assert not (checkout / ".venv").exists()


@pytest.mark.parametrize(("workers", "args"), [("0", ""), ("5", "-n 5 --dist worksteal ")])
def test_the_number_of_test_processes_can_be_chosen(checkout: Path, tmp_path: Path,
                                                    workers: str, args: str) -> None:
    active = _fake_python(tmp_path / "active" / "bin" / "python")
    proc, calls = _run(checkout, tmp_path, VIRTUAL_ENV=str(tmp_path / "active"),
                       REVERSA_TEST_WORKERS=workers)
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == f"{active} -m pytest {args}-x"


def test_outside_ci_a_missing_part_is_a_warning(checkout: Path, tmp_path: Path) -> None:
    _fake_python(tmp_path / "bin" / "python3")
    proc, calls = _run(checkout, tmp_path)
    assert proc.returncode == 0
    assert calls[-1].endswith(f"/.venv/bin/python -m pytest {PARALLEL} -x")  # still runs
    assert "warning: chromium" in proc.stderr
    assert "warning: anvil" in proc.stderr


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_missing_part_fails_before_installing(
        checkout: Path, tmp_path: Path, ci: str) -> None:
    _fake_python(tmp_path / "bin" / "python3")
    proc, calls = _run(checkout, tmp_path, CI=ci)
    assert proc.returncode == 1
    assert "is required under CI=true and is not installed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert calls == []  # nothing installed, no test run

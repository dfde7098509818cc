"""Run the CLI as a user does: a separate process, stdout and stderr as pipes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# -P: the working directory is NOT put on sys.path (as with the `reversa` console
# script), so a test can tell whether the CLI itself finds ./myapp.py.
CLI = [sys.executable, "-P", "-m", "reversa"]


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``reversa ARGS``; ``env`` adds to (or, with "", removes from) the environment."""
    full = {k: v for k, v in os.environ.items() if k not in {"REVERSA_DB", "REVERSA_TRUSTED_APPS"}}
    for key, value in (env or {}).items():
        if value:
            full[key] = value
        else:
            full.pop(key, None)
    # reversa itself must stay importable from the checkout when cwd moves elsewhere.
    root = str(Path(__file__).resolve().parents[2])
    full["PYTHONPATH"] = os.pathsep.join(p for p in (root, full.get("PYTHONPATH")) if p)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=full)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line a failing command printed on stderr."""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Background on this error" not in proc.stderr and "Traceback" not in proc.stderr
    return lines[0]

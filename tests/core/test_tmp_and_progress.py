"""Long commands clean up after themselves and show progress only to a person at a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reversa.cli.bench import _database

ROOT = Path(__file__).resolve().parents[2]
SPINNER = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")  # the frames of rich's "dots" spinner


def _spins(text: str) -> bool:
    return bool(SPINNER & set(text))


def _env(tmpdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REVERSA_DB"}
    return {**env, "TMPDIR": str(tmpdir)}


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> Path:
    empty = tmp_path / "tmp"
    empty.mkdir()
    return empty


def test_bench_removes_its_temporary_database(tmpdir_env: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "reversa", "bench", "--sagas", "5",
                           "--steps", "2", "--recovery", "--lease-s", "0.2", "--json"],
                          env=_env(tmpdir_env), cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["temporary_db"] is True and str(tmpdir_env) in out["db"]
    assert list(tmpdir_env.iterdir()) == []


def test_interrupted_bench_removes_its_temporary_database(tmpdir_env: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "reversa", "bench", "--sagas", "1000000",
                             "--json"], env=_env(tmpdir_env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith("reversa-bench-") and (p / "bench.db").exists()
                  for p in tmpdir_env.iterdir()):
        assert time.monotonic() < deadline, "bench never created its database"
        time.sleep(0.05)
    time.sleep(0.5)  # inside the run
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.splitlines()) <= 1, err
    assert list(tmpdir_env.iterdir()) == []


def test_temporary_database_is_removed_on_error(tmpdir_env: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmpdir_env))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    seen: list[str] = []

    def failing_run() -> None:
        with _database(None) as (url, temporary):
            seen.append(url)
            assert temporary and any(tmpdir_env.iterdir())
            raise RuntimeError("the run failed")

    with pytest.raises(RuntimeError, match="the run failed"):
        failing_run()
    assert str(tmpdir_env) in seen[0]
    assert list(tmpdir_env.iterdir()) == []


def test_evm_example_removes_its_folder(tmpdir_env: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples/evm/scenario_c.py")],
                          env=_env(tmpdir_env), cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "removed on exit" in proc.stdout
    assert list(tmpdir_env.iterdir()) == []


# -- progress ---------------------------------------------------------------------------------
def _on_terminal(*args: str, cwd: Path) -> tuple[int, str]:
    """Run ``reversa ARGS`` with stdout and stderr on a pseudo-terminal; all it drew."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "reversa", *args], stdin=slave,
                            stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")


def test_bench_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    code, drawn = _on_terminal("bench", "--sagas", "200", "--steps", "2", cwd=tmp_path)
    assert code == 0, drawn
    assert _spins(drawn) and "200 sagas x 2 steps" in drawn and "/200" in drawn
    assert "steps_per_s" in drawn  # the report itself


def test_bench_json_on_a_terminal_is_only_json(tmp_path: Path) -> None:
    code, drawn = _on_terminal("bench", "--sagas", "50", "--steps", "2", "--json",
                               cwd=tmp_path)
    assert code == 0, drawn
    assert not _spins(drawn)
    assert json.loads(drawn)["sagas"] == 50


def test_piped_bench_and_demo_draw_no_progress(tmp_path: Path) -> None:
    for args in (["bench", "--sagas", "50", "--steps", "2"],
                 ["demo", "--db", str(tmp_path / "d.db")]):
        proc = subprocess.run([sys.executable, "-m", "reversa", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert not _spins(proc.stdout + proc.stderr)
        assert "\x1b[" not in proc.stdout + proc.stderr


def test_demo_shows_a_spinner_on_a_terminal(tmp_path: Path) -> None:
    code, drawn = _on_terminal("demo", "--db", str(tmp_path / "d.db"), cwd=tmp_path)
    assert code == 0, drawn
    assert _spins(drawn) and "demo onboarding" in drawn and "audit chain:" in drawn

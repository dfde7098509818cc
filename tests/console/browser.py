"""Browser-test plumbing: a real ``reversa console`` process and Debian's chromium.

Playwright drives ``/usr/bin/chromium`` headless through ``executable_path``:
Playwright's own browser download cannot work here (nothing is downloaded at run
time), and scripts/test.sh installs Debian's package when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def chromium() -> str | None:
    """Path of Debian's chromium, if installed."""
    for candidate in (os.environ.get("REVERSA_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@dataclass
class Served:
    """A console server process and what it serves."""

    url: str
    db: str
    process: subprocess.Popen[str]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def serve(db: str, log: Path, *extra: str, deadline_s: float = 120.0) -> Served:
    """Start ``reversa console`` on a free loopback port; wait until it answers."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("REVERSA_DB", None)
    out = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "reversa", "console", "--db", db, "--port", "0",
         "--app", "tests.console.flows:registry", "--services",
         "tests.console.flows:services", *extra],
        stdout=subprocess.PIPE, stderr=out, text=True, env=env, cwd=ROOT)
    assert process.stdout is not None
    line = process.stdout.readline()  # the first line names the bound port
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if found is None:
        process.kill()
        raise AssertionError(f"console did not start: {line!r} {log.read_text()}")
    url = f"http://127.0.0.1:{found[1]}"
    # uvicorn's access log goes to stdout: keep draining it, or a full pipe stalls the server.
    threading.Thread(target=_drain, args=(process.stdout, log.with_suffix(".access")),
                     daemon=True).start()
    import httpx

    end = time.monotonic() + deadline_s
    while True:
        try:
            if httpx.get(url + "/login", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > end or process.poll() is not None:
            process.kill()
            raise AssertionError(f"console never answered: {log.read_text()}")
        time.sleep(0.05)
    return Served(url, db, process, log)


def _drain(stream: Any, path: Path) -> None:
    with path.open("w") as sink:
        for line in stream:
            sink.write(line)


def log_in(page: Any, base: str, name: str, password: str) -> None:
    """Log in through the form, as a person does."""
    page.goto(base + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector(f'span.user[data-user="{name}"]')

"""A synchronous handle on one MCP session held open by the official client.

The client is async (anyio); a module-scoped session must outlive any one test,
so it lives in a thread running its own event loop and each call is submitted
to that loop. Tests then read like any other: ``mcp.call("saga_status", {...})``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


class Session:
    """One open MCP client session, driven from synchronous test code."""

    def __init__(self, connect: Callable[[], AbstractAsyncContextManager[Client]]) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.client: Client | None = None
        self._thread = threading.Thread(target=self._main, args=(connect,), daemon=True)
        self._thread.start()
        if not self._ready.wait(120):
            raise TimeoutError("the MCP session did not open within 120 s")
        if self._error is not None:
            raise self._error

    def _main(self, connect: Callable[[], AbstractAsyncContextManager[Client]]) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._hold(connect))

    async def _hold(self, connect: Callable[[], AbstractAsyncContextManager[Client]]) -> None:
        self._stop = asyncio.Event()
        try:
            async with connect() as client:
                self.client = client
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        """Run a coroutine on the session's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        """Call a tool; the result may be an error (``is_error``)."""
        assert self.client is not None
        return self.run(self.client.call_tool(tool, arguments or {}))

    def ok(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a tool that must succeed; its structured result."""
        result = self.call(tool, arguments)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        # The text content carries the same JSON, for clients without structured output.
        assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
        return result.structured_content

    def error(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        """Call a tool that must fail; its one-line message."""
        result = self.call(tool, arguments)
        assert result.is_error, result.structured_content
        text = result.content[0].text  # type: ignore[union-attr]
        assert "\n" not in text and "Traceback" not in text, text
        return text

    def wait_finished(self, saga_id: str, timeout: float = 90) -> dict[str, Any]:
        """Poll ``saga_status`` until the saga is at rest (finished or escalated)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.ok("saga_status", {"saga_id": saga_id})
            if status["finished"] or status["status"] == "escalated":
                return status
            assert time.monotonic() < deadline, f"saga {saga_id} still {status['status']}"
            time.sleep(0.05)

    def close(self) -> None:
        """Close the session (and, over stdio, end the server process)."""
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment a server subprocess runs with: this checkout importable."""
    env = {k: v for k, v in os.environ.items() if k != "REVERSA_DB"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def stdio_session(args: list[str], env: dict[str, str]) -> Session:
    """Start ``reversa mcp ARGS`` over stdio (the client starts the server)."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "reversa", "mcp", *args],
                                   env=env, cwd=str(ROOT))
    return Session(lambda: Client(params))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpServer:
    """``reversa mcp --transport http`` as a subprocess, waited for until it listens."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reversa", "mcp", "--transport", "http", "--port",
             str(self.port), *args], env=env, cwd=ROOT, stdout=self._log,
            stderr=subprocess.STDOUT)
        self.log = log
        deadline = time.monotonic() + 120
        while not self._listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {log.read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server never listened: {log.read_text()}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def session(self, token: str) -> Session:
        """An MCP session whose requests carry ``Authorization: Bearer <token>``."""

        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[Client]:
            async with create_mcp_http_client(
                    headers={"Authorization": f"Bearer {token}"}) as http, Client(
                    streamable_http_client(self.url, http_client=http)) as client:
                yield client

        return Session(connect)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()

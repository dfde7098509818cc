"""Console fixtures: a store on each backend, users of every role, an in-process client."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from reversa import Store
from reversa.console import Code, ConsoleSettings, create_app
from reversa.console.accounts import Accounts
from tests.console import flows

PASSWORD = "correct horse battery"
USERS = {"vera": "viewer", "otto": "operator", "anna": "approver", "abe": "approver",
         "ada": "admin"}
# argon2 at its cheapest: tests measure behaviour, not the hash's cost (the console
# itself runs argon2-cffi's defaults).
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
CODE = ("tests.console.flows:registry", "tests.console.flows:services")


class Clock:
    """Wall-clock time that a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Api:
    """A client of the console app in this process (httpx's ASGI transport).

    Synchronous on purpose: the tests read like a user's script. Each client has
    its own cookie jar, like a browser of its own.
    """

    def __init__(self, app: Any, token: str | None = None,
                 base_url: str = "http://console.test") -> None:
        self._runner = asyncio.Runner()
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                        base_url=base_url, headers=headers)
        self.csrf = ""

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        """Log in through the form, as a browser does; keeps the session's CSRF token."""
        form = self.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None, form.text
        done = self.post("/login", data={"name": name, "password": password,
                                         "csrf_token": token[1], "next": "/"})
        if done.status_code == 303:
            page = self.get("/")
            found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
            assert found is not None
            self.csrf = found[1]
        return done

    def form(self, url: str, data: dict[str, str]) -> httpx.Response:
        """Post a page's form with the session's CSRF token."""
        return self.post(url, data={"csrf_token": self.csrf, **data})

    def close(self) -> None:
        self._runner.run(self.client.aclose())
        self._runner.close()


@pytest.fixture
def console_store(db_url: str) -> Iterator[Store]:
    """A store on database time (as the console runs), with one user per role."""
    store = Store.open(db_url)
    accounts = Accounts(store, clock=time.time, hasher=CHEAP)
    for name, role in USERS.items():
        accounts.add(name, role, PASSWORD)
    yield store
    store.close()


@pytest.fixture
def wall() -> Clock:
    """The console's clock: real time, movable by the test."""
    return Clock()


@pytest.fixture
def app(console_store: Store, wall: Clock) -> Any:
    return create_app(console_store, code=Code([CODE[0]], CODE[1]),
                      settings=ConsoleSettings(), clock=wall, hasher=CHEAP)


@pytest.fixture
def api(app: Any) -> Iterator[Any]:
    """Open clients; ``api()`` makes one, ``api("otto")`` one logged in as otto."""
    made: list[Api] = []

    def make(user: str | None = None, *, token: str | None = None) -> Api:
        client = Api(app, token)
        made.append(client)
        if user is not None:
            assert client.login(user).status_code == 303
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def escalated(console_store: Store) -> tuple[str, int]:
    """A refund-desk saga escalated for a human: (saga id, escalation id)."""
    result = flows.run(console_store, fail=True)
    assert result.escalation_id is not None, result
    return result.saga_id, result.escalation_id

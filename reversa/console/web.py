"""Who is asking, and may they: sessions, API tokens, roles, CSRF, errors.

Every route but ``/login`` and ``/static`` depends on :func:`needs`, so nothing
answers without a logged-in user: pages redirect to ``/login``, ``/api`` and
``/metrics`` answer 401. A browser authenticates with the session cookie
(HttpOnly, SameSite=Lax, Secure behind TLS) and must send the session's CSRF
token with every unsafe request (form field ``csrf_token`` or header
``X-CSRF-Token``, compared in constant time); a machine sends
``Authorization: Bearer <API token>`` and needs no CSRF token (a browser never
adds that header by itself).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import (
    AuditError,
    ConfigError,
    IllegalTransition,
    LeaseLost,
    NotFound,
    PlanError,
    ReversaError,
    StoreError,
)
from .accounts import Accounts, Role, Session, User
from .ratelimit import LoginLimiter
from .service import ConsoleService

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "LOGIN_COOKIE",
    "CSRF_HEADER",
    "ConsoleSettings",
    "ConsoleState",
    "Forbidden",
    "LoginRequired",
    "Principal",
    "SecurityHeaders",
    "csrf_ok",
    "is_machine_path",
    "needs",
    "state",
    "status_for",
]

COOKIE = "reversa_session"
LOGIN_COOKIE = "reversa_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class ConsoleSettings:
    """How the console runs.

    Attributes:
        secure_cookies: Mark cookies Secure even when the request looks like plain
            HTTP (set it behind a TLS-terminating proxy that does not send
            ``X-Forwarded-Proto``); requests seen as https get Secure anyway.
        session_s: How long a login lasts at most.
        idle_s: A login unused this long ends.
        login_per_user: Failed logins of one user name allowed per window.
        login_per_ip: Failed logins from one address allowed per window.
        login_window_s: The rate-limiting window.
        per_page: Sagas per page in listings.
    """

    secure_cookies: bool = False
    session_s: float = 12 * 3600
    idle_s: float = 2 * 3600
    login_per_user: int = 5
    login_per_ip: int = 20
    login_window_s: float = 900.0
    per_page: int = 25


@dataclass
class ConsoleState:
    """What every request of one console app shares."""

    service: ConsoleService
    accounts: Accounts
    limiter: LoginLimiter
    settings: ConsoleSettings
    templates: Jinja2Templates
    clock: Callable[[], float]
    extras: dict[str, Any] = field(default_factory=dict)


def state(request: Request) -> ConsoleState:
    """The console state of the app serving ``request``."""
    found: ConsoleState = request.app.state.console
    return found


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user, by session (browser) or API token (machine)."""

    user: User
    session: Session | None

    @property
    def csrf(self) -> str:
        """The session's CSRF token ("" for a token-authenticated machine)."""
        return "" if self.session is None else self.session.csrf


class LoginRequired(Exception):
    """No valid session or token: pages redirect to /login, the API answers 401."""


class Forbidden(Exception):
    """Authenticated, but the role (or a missing CSRF token) does not allow this."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_machine_path(path: str) -> bool:
    """Whether ``path`` answers machines (JSON errors, 401) rather than browsers."""
    return path == "/metrics" or path == "/api" or path.startswith("/api/")


def authenticate(request: Request) -> Principal:
    """The caller of ``request`` (cached on it), or LoginRequired."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    st = state(request)
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    principal: Principal | None = None
    if scheme.lower() == "bearer" and credentials.strip():
        user = st.accounts.token_user(credentials.strip())
        if user is None:
            raise LoginRequired("the API token is unknown, revoked or its user disabled")
        principal = Principal(user, None)
    elif cookie := request.cookies.get(COOKIE):
        session = st.accounts.session(cookie)
        if session is not None:
            principal = Principal(session.user, session)
    if principal is None:
        raise LoginRequired("log in first")
    request.state.principal = principal
    return principal


def csrf_ok(expected: str, given: str | None) -> bool:
    """Whether ``given`` is the expected CSRF token (constant-time comparison)."""
    return bool(expected) and given is not None and hmac.compare_digest(expected, given)


async def _check_csrf(request: Request, principal: Principal) -> None:
    if request.method not in UNSAFE or principal.session is None:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached by Starlette: the route reads it again
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not csrf_ok(principal.session.csrf, given):
        raise Forbidden("the form's CSRF token is missing or wrong (a page of another site "
                        "cannot act for you); reload the page and submit it again")


def needs(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller, who must hold ``role`` (and, for a browser's unsafe
    request, the session's CSRF token)."""

    async def dependency(request: Request) -> Principal:
        from starlette.concurrency import run_in_threadpool

        # Looking the session up queries the store: keep it off the event loop.
        principal = await run_in_threadpool(authenticate, request)
        await _check_csrf(request, principal)
        if not principal.user.role.includes(role):
            raise Forbidden(f"user {principal.user.name} is {principal.user.role.value}; this "
                            f"needs the {role.value} role (an admin grants it with `reversa "
                            f"users role {principal.user.name} {role.value}`)")
        return principal

    return dependency


def status_for(exc: ReversaError) -> int:
    """The HTTP status of an engine error."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, LeaseLost | IllegalTransition):
        return 409
    if isinstance(exc, ConfigError | PlanError):
        return 400
    if isinstance(exc, StoreError):
        return 503
    if isinstance(exc, AuditError):
        return 409
    return 422


class SecurityHeaders:
    """Pure ASGI middleware adding security headers to every response.

    The content security policy allows only this origin's scripts and styles (the
    vendored htmx and the stylesheet): no inline script can run, even if some text
    escaped escaping. Pages and API answers are never cached (they show live
    state and carry CSRF tokens).
    """

    HEADERS = (
        (b"content-security-policy",
         b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
         b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self.HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)

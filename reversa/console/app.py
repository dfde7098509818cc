"""Assemble the console: state, routes, error pages, templates, static files."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from argon2 import PasswordHasher
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader
from pydantic import ValidationError

from .. import __version__
from ..core.errors import ReversaError
from ..core.store import Store
from . import api, pages
from .accounts import Accounts
from .ratelimit import LoginLimiter
from .service import AuditKeys, Code, ConsoleService
from .web import (
    ConsoleSettings,
    ConsoleState,
    Forbidden,
    LoginRequired,
    SecurityHeaders,
    is_machine_path,
    status_for,
)

__all__ = ["create_app"]

STATIC = Path(__file__).with_name("static")


def create_app(
    store: Store,
    *,
    code: Code | None = None,
    settings: ConsoleSettings | None = None,
    clock: Callable[[], float] = time.time,
    hasher: PasswordHasher | None = None,
    engine_options: dict[str, Any] | None = None,
    audit: AuditKeys | None = None,
) -> FastAPI:
    """The console as an ASGI application on ``store``.

    Args:
        store: The writable saga store (users and sessions are kept in it too).
        code: Registries and services for actions that run a saga's handlers
            (retry, forward recovery); defaults to what each saga recorded, when
            trusted.
        settings: Cookie, session and rate-limit settings.
        clock: Time for sessions, ages and rate limits (tests inject one).
        hasher: Password hasher (argon2id with library defaults unless given).
        engine_options: Extra arguments for each Engine the console makes.
        audit: Public keys and witnesses the audit verification checks (default:
            the store's own witnesses, signatures unchecked).
    """
    settings = settings or ConsoleSettings()
    app = FastAPI(title="Reversa console", version=__version__, openapi_url=None,
                  docs_url=None, redoc_url=None,
                  description="Sagas, escalations, approvals and the audit, for operators.")
    accounts = Accounts(store, clock=clock, hasher=hasher, session_s=settings.session_s,
                        idle_s=settings.idle_s)
    limiter = LoginLimiter(clock, per_user=settings.login_per_user,
                           per_ip=settings.login_per_ip, window_s=settings.login_window_s)
    app.state.console = ConsoleState(
        service=ConsoleService(store, code, engine_options, audit), accounts=accounts,
        limiter=limiter, settings=settings, templates=_templates(), clock=clock)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(api.metrics_router)
    _handle_errors(app)
    return app


def _templates() -> Jinja2Templates:
    env = Environment(loader=PackageLoader("reversa.console", "templates"), autoescape=True)
    env.filters["ts"] = _ts
    env.filters["age"] = _age
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True,
                                                     default=str)
    return Jinja2Templates(env=env)


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _error(request: Request, status: int, message: str) -> Response:
    if is_machine_path(request.url.path):
        return JSONResponse({"error": message}, status_code=status)
    principal = getattr(request.state, "principal", None)
    return pages.render(request, "error.html", principal, status_code=status,
                        status=status, message=message)


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if is_machine_path(request.url.path):
            return JSONResponse({"error": f"not authenticated: {exc}; send "
                                 "'Authorization: Bearer <token>' (reversa users token NAME)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        target = request.url.path if request.method == "GET" else "/"
        if request.method == "GET" and request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return _error(request, 403, exc.message)

    @app.exception_handler(ReversaError)
    async def engine_error(request: Request, exc: ReversaError) -> Response:
        return _error(request, status_for(exc), exc.message)

    @app.exception_handler(ValidationError)
    async def invalid_form(request: Request, exc: ValidationError) -> Response:
        # A page's form, checked by the API model it is posted through.
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}"
                             for e in exc.errors())
        return _error(request, 422, problems)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors())
        if is_machine_path(request.url.path):
            return JSONResponse({"error": problems, "detail": json.loads(
                json.dumps(exc.errors(), default=str))}, status_code=422)
        return _error(request, 422, problems)

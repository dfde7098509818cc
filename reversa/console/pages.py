"""The console's HTML pages: server-rendered, enhanced by htmx, usable without it.

The pages are a client of the JSON API (:mod:`.api`): every handler here calls
the API's functions for what it shows and for what a form does, in process, and
only renders their answer, so the browser can do nothing ``/api`` cannot and the
roles are checked in one place. Every form posts to a route here and is answered
by a redirect to the page that shows the result (post/redirect/get), so
reloading never repeats an action. Handlers are plain functions: FastAPI runs
them in its thread pool, where the synchronous Engine and Inspector belong.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..core.audit import KINDS
from ..core.errors import ConfigError
from . import api
from .accounts import Role
from .graph import layout, legend, render_svg
from .service import ACTIONS
from .web import (
    COOKIE,
    CSRF_FIELD,
    LOGIN_COOKIE,
    Principal,
    csrf_ok,
    needs,
    state,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Viewer = Annotated[Principal, Depends(needs(Role.VIEWER))]
Operator = Annotated[Principal, Depends(needs(Role.OPERATOR))]
Approver = Annotated[Principal, Depends(needs(Role.APPROVER))]
Admin = Annotated[Principal, Depends(needs(Role.ADMIN))]


def render(request: Request, template: str, principal: Principal | None, *,
           status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the caller and the console's common context."""
    st = state(request)
    return st.templates.TemplateResponse(
        request, template, {"me": principal, "now": st.clock(), "csrf_field": CSRF_FIELD,
                            **context}, status_code=status_code)


def see_other(url: str) -> RedirectResponse:
    """Redirect a form post to the page showing its result."""
    return RedirectResponse(url, status_code=303)


def _secure(request: Request) -> bool:
    return state(request).settings.secure_cookies or request.url.scheme == "https"


def _safe_next(target: str | None) -> str:
    # Only a path on this console: never an open redirect to another site.
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


# -- login ------------------------------------------------------------------------------
def _login_page(request: Request, next_url: str, *, error: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    # A login form is protected too (login CSRF): a random value in a cookie that
    # the form must echo, which a page of another site can neither read nor set.
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", None, next_url=_safe_next(next_url),
                      login_token=token, error=error, status_code=status_code)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=_secure(request), path="/login")
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    """The login form."""
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password (rate limited per user and per address) and start a session."""
    st = state(request)
    if not csrf_ok(request.cookies.get(LOGIN_COOKIE, ""), csrf_token):
        return _login_page(request, next, status_code=403,
                           error="The login form expired; please try again.")
    name = name.strip().lower()
    address = request.client.host if request.client else "unknown"
    wait = st.limiter.retry_after(name, address)
    if wait > 0:
        return _login_page(request, next, status_code=429, error=(
            f"Too many failed logins; try again in {int(wait // 60) + 1} minute(s)."))
    user = st.accounts.authenticate(name, password)
    if user is None:
        st.limiter.failed(name, address)
        return _login_page(request, next, status_code=401,
                           error="Wrong user name or password (or the user is disabled).")
    st.limiter.succeeded(name)
    token, session = st.accounts.open_session(user)
    response = see_other(_safe_next(next))
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=_secure(request),
                        max_age=int(session.expires_at - st.clock()), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, me: Viewer) -> Response:
    """End the session (its cookie stops working at once, everywhere)."""
    if cookie := request.cookies.get(COOKIE):
        state(request).accounts.close_session(cookie)
    response = see_other("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


# -- overview and sagas -----------------------------------------------------------------
@router.get("/")
def overview(request: Request, me: Viewer) -> HTMLResponse:
    """Counts by status, the oldest open escalations."""
    found = api.overview(request, me)
    return render(request, "overview.html", me, counts=found.counts,
                  escalations=found.escalations, approvals=found.approvals)


@router.get("/sagas")
def sagas(
    request: Request,
    me: Viewer,
    status: Annotated[list[str] | None, Query()] = None,
    workflow: str = "",
    older_than: str = "",
    newer_than: str = "",
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    """The saga list: filters by status, workflow and age; pages."""
    chosen = [s for s in (status or []) if s]
    listing = api.list_sagas(request, me, status=chosen, workflow=workflow or None,
                             older_than=older_than or None, newer_than=newer_than or None,
                             page=page, per_page=state(request).settings.per_page)
    query = [("workflow", workflow), ("older_than", older_than), ("newer_than", newer_than),
             *(("status", s) for s in chosen)]
    base = "&".join(f"{k}={quote(v)}" for k, v in query if v)
    found = api.overview(request, me, limit=0)
    return render(request, "sagas.html", me, listing=listing, chosen=chosen, workflow=workflow,
                  older_than=older_than, newer_than=newer_than,
                  workflows=found.workflows, statuses=list(found.counts), base=base)


@router.get("/sagas/{saga_id}")
def saga(request: Request, saga_id: str, me: Viewer) -> HTMLResponse:
    """One saga: steps, the plan's graph, the timeline, rollback records."""
    view = api.get_saga(request, saga_id, me)
    graph = layout(view)
    return render(request, "saga.html", me, saga=view, svg=render_svg(graph), graph=graph,
                  legend=legend(), timeline=api.saga_audit(request, view.id, me),
                  audit=api.verify(request, me, saga=view.id),
                  window_left=view.rollback_window_left_s,
                  rollable=view.rollback_requestable)


@router.post("/sagas/{saga_id}/rollback")
def request_rollback(
    request: Request,
    saga_id: str,
    me: Operator,
    reason: Annotated[str, Form()],
) -> Response:
    """An operator asks that the saga stop and roll back (or, completed, be rolled back)."""
    done = api.request_rollback(request, saga_id, api.RollbackIn(reason=reason), me)
    if done.approval is not None:
        return see_other(f"/approvals/{done.approval.id}?requested=rollback")
    assert done.result is not None
    return see_other(f"/sagas/{done.result.saga_id}?rollback=requested")


@router.get("/sagas/{saga_id}/graph.svg")
def saga_graph(request: Request, saga_id: str, me: Viewer) -> Response:
    """The plan's dependency graph alone, as an SVG document."""
    return api.saga_graph(request, saga_id, me)


# -- escalations ------------------------------------------------------------------------
@router.get("/escalations")
def escalations(request: Request, me: Viewer, show: str = "open") -> HTMLResponse:
    """The review queue, oldest first, with each escalation's age."""
    items = api.list_escalations(request, me, "all" if show == "all" else "open")
    return render(request, "escalations.html", me, items=items, show=show)


@router.get("/escalations/{escalation_id}")
def escalation(request: Request, escalation_id: int, me: Viewer,
               done: str = "") -> HTMLResponse:
    """One escalation: its full state report and the resolve actions."""
    item = api.get_escalation(request, escalation_id, me)
    return render(request, "escalation.html", me, item=item,
                  saga=api.get_saga(request, item.saga_id, me), actions=ACTIONS, done=done)


@router.post("/escalations/{escalation_id}/resolve")
def resolve(
    request: Request,
    escalation_id: int,
    me: Operator,
    action: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
) -> Response:
    """Resolve as the logged-in user: retry (operator), forward recovery or mark
    resolved (approver)."""
    body = api.ResolveIn.model_validate({"action": action, "note": note})
    done = api.resolve(request, escalation_id, body, me)
    if done.approval is not None:
        return see_other(f"/approvals/{done.approval.id}?requested=resolution")
    return see_other(f"/escalations/{escalation_id}?done={quote(action)}")


# -- approvals --------------------------------------------------------------------------
@router.get("/approvals")
def approvals(request: Request, me: Viewer, show: str = "pending") -> HTMLResponse:
    """Approvals waiting for a decision (oldest first), or all of them."""
    items = api.list_approvals(request, me, "all" if show == "all" else "pending")
    return render(request, "approvals.html", me, items=items, show=show)


@router.get("/approvals/{approval_id}")
def approval(request: Request, approval_id: int, me: Viewer,
             requested: str = "") -> HTMLResponse:
    """One approval: what it holds back, who asked, who decided; approve or reject."""
    item = api.get_approval(request, approval_id, me)
    return render(request, "approval.html", me, item=item,
                  saga=api.get_saga(request, item.saga_id, me), requested=requested)


@router.post("/approvals/{approval_id}/{verdict}")
def decide(
    request: Request,
    approval_id: int,
    verdict: str,
    me: Approver,
    note: Annotated[str, Form()] = "",
) -> Response:
    """Approve or reject as the logged-in approver (four-eyes: never your own request)."""
    decisions = {"approve": api.approve, "reject": api.reject}
    if verdict not in decisions:
        raise ConfigError(f"unknown decision {verdict!r}; approve or reject")
    decisions[verdict](request, approval_id, api.DecisionIn(note=note), me)
    return see_other(f"/approvals/{approval_id}")


# -- audit ------------------------------------------------------------------------------
@router.get("/audit")
def audit(request: Request, me: Viewer) -> HTMLResponse:
    """Verify the whole audit record now (read-only) and show what was checked."""
    return render(request, "audit.html", me, report=api.verify(request, me), kinds=KINDS)


# -- users (admin) ----------------------------------------------------------------------
def _users_page(request: Request, me: Principal, issued: str = "") -> HTMLResponse:
    return render(request, "users.html", me, users=api.list_users(request, me),
                  tokens=api.list_tokens(request, me), roles=[r.value for r in Role],
                  issued=issued)


@router.get("/users")
def users(request: Request, me: Admin) -> HTMLResponse:
    """Users and their API tokens."""
    return _users_page(request, me)


@router.post("/users")
def add_user(
    request: Request,
    me: Admin,
    name: Annotated[str, Form()],
    role: Annotated[str, Form()],
    password: Annotated[str, Form()],
) -> Response:
    """Create a user."""
    api.add_user(request, api.UserIn.model_validate(
        {"name": name, "role": role, "password": password}), me)
    return see_other("/users")


@router.post("/users/{name}/disable")
def disable_user(request: Request, name: str, me: Admin) -> Response:
    """Disable a user: its sessions end and its tokens stop working."""
    api.disable_user(request, name, me)
    return see_other("/users")


@router.post("/users/{name}/enable")
def enable_user(request: Request, name: str, me: Admin) -> Response:
    """Enable a disabled user again."""
    api.enable_user(request, name, me)
    return see_other("/users")


@router.post("/users/{name}/role")
def set_role(request: Request, name: str, me: Admin,
             role: Annotated[str, Form()]) -> Response:
    """Give a user another role."""
    api.set_role(request, name, api.RoleIn.model_validate({"role": role}), me)
    return see_other("/users")


@router.post("/users/{name}/tokens")
def issue_token(request: Request, name: str, me: Admin,
                label: Annotated[str, Form()] = "") -> HTMLResponse:
    """Issue an API token; its secret is shown on this one page and never again."""
    issued = api.issue_token(request, name, api.TokenIn(label=label), me)
    return _users_page(request, me, issued=issued.token)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str, me: Admin) -> Response:
    """Revoke an API token."""
    api.revoke_token(request, token_id, me)
    return see_other("/users")

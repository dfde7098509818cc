"""``reversa console`` (the review desk in a browser) and ``reversa users`` (who may use it)."""

from __future__ import annotations

import getpass
import ipaddress
import logging
import socket
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ..core.errors import ReversaError
from .common import APP_HELP, DB_HELP, ExitCode, console, emit_json, fail, open_store, ts
from .logs import LogFormat, configure_logging

if TYPE_CHECKING:
    from ..console import AuditKeys
    from ..console.accounts import Accounts

__all__ = ["register"]

EXTRA_HINT = "install the console extra: pip install 'reversa[console]'"

users_app = typer.Typer(no_args_is_help=True, help="Console users, their roles and API tokens.")

Db = Annotated[str | None, typer.Option("--db", help=DB_HELP)]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
Name = Annotated[str, typer.Argument(help="User name (lower-case letters, digits, . _ @ -).")]
PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of standard input "
    "(for scripts); otherwise it is asked for twice on the terminal.")]


def register(app: typer.Typer) -> None:
    """Attach ``console`` and ``users`` to the root command."""
    app.command("console")(console_command)
    app.add_typer(users_app, name="users")


def _need_extra() -> None:
    try:
        import argon2  # noqa: F401
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        fail(f"the console needs {exc.name}, which is not installed; {EXTRA_HINT}")


def console_command(
    db: Db = None,
    app_: Annotated[list[str] | None, typer.Option("--app", help=APP_HELP)] = None,
    services: Annotated[str | None, typer.Option(
        "--services", help="Services factory 'package.module:factory' for retries and forward "
        "recoveries (overrides the one a saga recorded).")] = None,
    trust: Annotated[bool, typer.Option(
        "--trust-recorded-app", help="Import the registry and services each saga recorded "
        "even outside reversa.* and REVERSA_TRUSTED_APPS (trust the database first).")] = False,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8080,
    secure_cookies: Annotated[bool, typer.Option(
        "--secure-cookies", help="Mark cookies Secure (behind a TLS-terminating proxy).")]
    = False,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="Governance policy (TOML, [four_eyes.<workflow>] tables): which "
        "resolutions and rollbacks need a second, distinct approver.")] = None,
    pubkey: Annotated[list[Path] | None, typer.Option(
        "--pubkey", help="Public key file of the audit's signed heads (reversa-audit.pub; "
        "repeat for rotated keys): the audit page then checks every signature.")] = None,
    witness: Annotated[list[Path] | None, typer.Option(
        "--witness", help="Witness directory holding the signed checkpoints (repeatable; "
        "default: the store's own, $REVERSA_WITNESS_DIR).")] = None,
    trusted_proxy: Annotated[list[str] | None, typer.Option(
        "--trusted-proxy", help="Address of a reverse proxy whose X-Forwarded-For/-Proto "
        "headers are believed (repeatable).")] = None,
    wait_db: Annotated[float, typer.Option(
        "--wait-db", min=0,
        help="Seconds a starting console waits for a database that is unreachable for now "
             "(restarting, still starting); a wrong URL, password or database name fails "
             "at once.")] = 60.0,
) -> None:
    """Serve the review console: sagas, escalations, approvals and the audit, with logins."""
    _need_extra()
    import uvicorn

    from ..console import Accounts, AuditKeys, Code, ConsoleSettings, create_app
    from ..core.governance import load_policy

    try:
        governance = load_policy(policy) if policy else {}
        audit = _audit_keys(pubkey, witness)
    except ReversaError as exc:
        fail(exc.message)
    # One scrubbed line per warning (the wait for the database among them), as the
    # worker writes them; INFO stays off, as the console logged nothing below WARNING.
    configure_logging(LogFormat.TEXT, level=logging.WARNING)
    store = open_store(db, wait_s=wait_db)
    if audit is not None and not audit.witnesses:
        audit = AuditKeys(audit.verifiers, tuple(store.audit.witnesses))
    # Bound before any warning, so a taken port is the only line on stderr.
    listener = _listen(host, port)
    bound = listener.getsockname()[1]
    try:
        if not Accounts(store, clock=store.now).users():
            sys.stderr.write("warning: no console user exists yet; add one with `reversa users "
                             "add NAME --role admin`\n")
    except ReversaError as exc:
        listener.close()
        fail(exc.message, ExitCode.STORE)
    if not secure_cookies and not _loopback(host):
        sys.stderr.write(f"warning: serving on {host} without --secure-cookies; put the console "
                         "behind a TLS-terminating proxy (see docs/console.md)\n")
    app = create_app(store, code=Code(app_ or [], services, trust_recorded=trust),
                     settings=ConsoleSettings(secure_cookies=secure_cookies),
                     engine_options={"governance": governance}, audit=audit)
    config = uvicorn.Config(app, proxy_headers=bool(trusted_proxy),
                            forwarded_allow_ips=",".join(trusted_proxy or []) or None,
                            log_level="info", server_header=False)
    console.print(f"reversa console on http://{host}:{bound} for {store.url}", highlight=False)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        store.close()


def _audit_keys(pubkeys: list[Path] | None, witnesses: list[Path] | None) -> AuditKeys | None:
    # Checked before anything is served: a wrong path is one line, not a page error later.
    from ..console import AuditKeys
    from ..core.errors import ConfigError
    from ..core.evidence import DirWitness, load_verifier

    if not pubkeys and not witnesses:
        return None
    for folder in witnesses or []:
        if not folder.is_dir():
            raise ConfigError(f"witness directory {folder} does not exist; pass the directory "
                              "given to REVERSA_WITNESS_DIR")
    return AuditKeys(tuple(load_verifier(p) for p in pubkeys) if pubkeys else None,
                     tuple(DirWitness(w) for w in witnesses or []))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    # Bound here, before uvicorn starts, so a taken port is one clear line and exit 2.
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
             "or --host")
    return sock


# -- users --------------------------------------------------------------------------------
def _accounts(db: str | None) -> Accounts:
    _need_extra()
    from ..console import Accounts

    store = open_store(db)
    return Accounts(store, clock=store.now)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            fail("--password-stdin: standard input is empty; pipe the password in")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("no terminal to ask for the password; pass --password-stdin and pipe it in")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        fail("the two passwords differ; run the command again")
    return first


def _done(message: str) -> None:
    console.print(message, highlight=False)


@users_app.command("add")
def users_add(
    name: Name,
    role: Annotated[str, typer.Option(help="viewer, operator, approver or admin.")],
    password_stdin: PasswordStdin = False,
    db: Db = None,
) -> None:
    """Create a console user with a role (password hashed with argon2id)."""
    from ..console.accounts import check_name, check_password, check_role

    accounts = _accounts(db)
    try:
        check_name(name)
        check_role(role)
        password = check_password(_password(password_stdin))
        user = accounts.add(name, role, password)
    except ReversaError as exc:
        fail(exc.message)
    _done(f"user {user.name} added with role {user.role.value}")


@users_app.command("list")
def users_list(db: Db = None, json_out: Json = False) -> None:
    """List console users and their roles."""
    users = _accounts(db).users()
    if json_out:
        emit_json([{"name": u.name, "role": u.role.value, "disabled": u.disabled,
                    "created_at": u.created_at} for u in users])
        return
    table = Table(title="console users")
    for column in ("name", "role", "state", "created"):
        table.add_column(column)
    for u in users:
        table.add_row(u.name, u.role.value, "disabled" if u.disabled else "active",
                      ts(u.created_at))
    console.print(table)


@users_app.command("disable")
def users_disable(name: Name, db: Db = None) -> None:
    """Disable a user: their sessions end now and their API tokens stop working."""
    _accounts(db).set_disabled(name, True)
    _done(f"user {name} disabled")


@users_app.command("enable")
def users_enable(name: Name, db: Db = None) -> None:
    """Enable a disabled user again."""
    _accounts(db).set_disabled(name, False)
    _done(f"user {name} enabled")


@users_app.command("role")
def users_role(
    name: Name,
    role: Annotated[str, typer.Argument(help="viewer, operator, approver or admin.")],
    db: Db = None,
) -> None:
    """Give a user another role."""
    user = _accounts(db).set_role(name, role)
    _done(f"user {user.name} is now {user.role.value}")


@users_app.command("passwd")
def users_passwd(name: Name, password_stdin: PasswordStdin = False, db: Db = None) -> None:
    """Set a user's password (their sessions end)."""
    from ..console.accounts import check_password

    accounts = _accounts(db)
    accounts.get(name)
    try:
        accounts.set_password(name, check_password(_password(password_stdin)))
    except ReversaError as exc:
        fail(exc.message)
    _done(f"password of {name} changed")


@users_app.command("token")
def users_token(
    name: Name,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    db: Db = None,
) -> None:
    """Issue an API token for a user; it is printed once, on stdout, and never again."""
    token, issued = _accounts(db).issue_token(name, label)
    sys.stderr.write(f"API token {issued.id} for {name}: store it now, it is not shown again\n")
    sys.stdout.write(token + "\n")


@users_app.command("tokens")
def users_tokens(
    name: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """List API tokens (never their secrets)."""
    tokens = _accounts(db).tokens(name)
    if json_out:
        emit_json([asdict(k) for k in tokens])
        return
    table = Table(title="API tokens")
    for column in ("id", "user", "label", "created", "last used", "revoked"):
        table.add_column(column)
    for k in tokens:
        table.add_row(k.id, k.user_name, k.label, ts(k.created_at), ts(k.used_at),
                      ts(k.revoked_at))
    console.print(table)


@users_app.command("revoke-token")
def users_revoke_token(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `reversa users tokens`).")],
    db: Db = None,
) -> None:
    """Revoke an API token."""
    _accounts(db).revoke_token(token_id)
    _done(f"API token {token_id} revoked")

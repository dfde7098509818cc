"""Console users, login sessions and machine API tokens, kept in the saga store.

Nothing secret is stored in clear: passwords are argon2id hashes (argon2-cffi's
defaults, RFC 9106's second recommendation), a session id and an API token's
secret are 256-bit random values stored as SHA-256 digests (a fast hash is enough
for values nobody can guess), so a copy of the database lets nobody log in.

A user is ``user:<name>`` wherever the engine records an identity.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..core.errors import ConfigError, NotFound, StoreError
from ..core.store import Store
from ..core.store import schema as t

__all__ = [
    "Accounts",
    "ApiToken",
    "Role",
    "Session",
    "User",
    "check_name",
    "check_password",
    "check_role",
    "identity",
]

NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "rvt"  # noqa: S105 - marks API tokens for secret scanners; not a secret


class Role(StrEnum):
    """What a console user may do; each role includes the ones before it.

    ``viewer`` reads everything; ``operator`` also requests rollbacks and retries
    escalated rollbacks; ``approver`` also resolves escalations and approves or
    rejects pending approvals; ``admin`` also manages users.
    """

    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < operator < approver < admin."""
        return list(Role).index(self)

    def includes(self, other: Role) -> bool:
        """Whether this role may do what ``other`` may."""
        return self.rank >= other.rank


@dataclass(frozen=True)
class User:
    """A console user (never carries the password hash out of this module)."""

    name: str
    role: Role
    disabled: bool
    created_at: float

    @property
    def identity(self) -> str:
        """How the engine records this user (``user:<name>``)."""
        return identity(self.name)


@dataclass(frozen=True)
class Session:
    """A logged-in browser: its user and the form token bound to it."""

    user: User
    csrf: str
    expires_at: float


@dataclass(frozen=True)
class ApiToken:
    """A machine token (its secret is shown once, at creation, and never stored)."""

    id: str
    user_name: str
    label: str
    created_at: float
    used_at: float | None
    revoked_at: float | None


def identity(name: str) -> str:
    """The identity the engine records for console user ``name``."""
    return f"user:{name}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    """``name`` if it is a valid user name; else ConfigError naming the rule."""
    if not NAME.match(name):
        raise ConfigError(f"user name {name!r}: use 1-64 lower-case letters, digits, '.', '_', "
                          "'@' or '-', starting with a letter or digit")
    return name


def check_role(role: str) -> Role:
    """The :class:`Role` called ``role``; else ConfigError listing them."""
    try:
        return Role(role)
    except ValueError:
        raise ConfigError(f"unknown role {role!r}; use one of "
                          f"{', '.join(r.value for r in Role)}") from None


def check_password(password: str) -> str:
    """``password`` if it is acceptable; else ConfigError naming the rule."""
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password is too short; use at least {MIN_PASSWORD} characters")
    if password != password.strip() or "\n" in password:
        raise ConfigError("the password starts or ends with white space (or spans lines); "
                          "give it without")
    return password


class Accounts:
    """Users, sessions and API tokens of one store.

    Args:
        store: The (writable) saga store; its schema holds the account tables.
        clock: Seconds since the epoch (tests inject a fake one).
        hasher: The argon2 hasher (tests may pass cheaper parameters).
        session_s: How long a login lasts at most.
        idle_s: A session unused this long ends.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        hasher: PasswordHasher | None = None,
        session_s: float = 12 * 3600,
        idle_s: float = 2 * 3600,
    ) -> None:
        self.store = store
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self.session_s = session_s
        self.idle_s = idle_s
        self._decoy: str | None = None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.store.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise StoreError(f"database error on {self.store.url}: {exc.orig}; check that the "
                             "database is reachable and writable", retryable=True) from exc

    # -- users ----------------------------------------------------------------------
    def add(self, name: str, role: str, password: str) -> User:
        """Create a user.

        Raises:
            ConfigError: Invalid name, role or password, or the name is taken.
        """
        check_name(name)
        rank = check_role(role)
        hashed = self.hasher.hash(check_password(password))
        now = self.clock()
        try:
            with self._tx() as conn:
                conn.execute(insert(t.users).values(
                    name=name, role=rank.value, password_hash=hashed, disabled=False,
                    created_at=now, updated_at=now))
        except IntegrityError:
            raise ConfigError(f"user {name!r} already exists; list users with "
                              "`reversa users list`") from None
        return User(name, rank, False, now)

    def users(self) -> list[User]:
        """Every user, by name."""
        with self._tx() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.name)).mappings().all()
        return [_user(r) for r in rows]

    def get(self, name: str) -> User:
        """One user.

        Raises:
            NotFound: No such user.
        """
        with self._tx() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).mappings().first()
        if row is None:
            raise NotFound(f"no user {name!r}; list users with `reversa users list`")
        return _user(row)

    def _change(self, name: str, **values: Any) -> User:
        with self._tx() as conn:
            done = conn.execute(update(t.users).where(t.users.c.name == name)
                                .values(updated_at=self.clock(), **values)).rowcount
            if values.get("disabled") or "password_hash" in values:
                # Disabling or a new password ends every login of the user at once.
                conn.execute(delete(t.sessions).where(t.sessions.c.user_name == name))
        if done != 1:
            raise NotFound(f"no user {name!r}; list users with `reversa users list`")
        return self.get(name)

    def set_disabled(self, name: str, disabled: bool) -> User:
        """Disable (ending its sessions; its tokens stop working) or enable a user."""
        return self._change(name, disabled=disabled)

    def set_role(self, name: str, role: str) -> User:
        """Give a user another role."""
        return self._change(name, role=check_role(role).value)

    def set_password(self, name: str, password: str) -> User:
        """Replace a user's password (ending its sessions)."""
        return self._change(name, password_hash=self.hasher.hash(check_password(password)))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs and they are enabled, else None."""
        with self._tx() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).mappings().first()
        if row is None and self._decoy is None:
            # Verified against when the user is unknown, so a wrong name costs as much
            # time as a wrong password (no user enumeration by timing).
            self._decoy = self.hasher.hash(secrets.token_hex(16))
        stored = str(row["password_hash"]) if row is not None else str(self._decoy)
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row["disabled"]:
            return None
        if self.hasher.check_needs_rehash(stored):
            self._change(name, password_hash=self.hasher.hash(password))
        return _user(row)

    # -- sessions -------------------------------------------------------------------
    def open_session(self, user: User) -> tuple[str, Session]:
        """Start a login for ``user``; returns the cookie value and the session."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + self.session_s
        with self._tx() as conn:
            # Expired sessions are swept at each login: no job to schedule.
            conn.execute(delete(t.sessions).where(t.sessions.c.expires_at < now))
            conn.execute(insert(t.sessions).values(
                id_hash=_digest(token), user_name=user.name, csrf=csrf, created_at=now,
                expires_at=expires, seen_at=now))
        return token, Session(user, csrf, expires)

    def session(self, token: str) -> Session | None:
        """The live session of cookie value ``token`` (None: unknown, expired, idle,
        or its user disabled)."""
        now = self.clock()
        s, u = t.sessions.c, t.users.c
        query = (select(s.id_hash, s.csrf, s.expires_at, s.seen_at, u.name, u.role, u.disabled,
                        u.created_at)
                 .join_from(t.sessions, t.users, s.user_name == u.name)
                 .where(s.id_hash == _digest(token)))
        with self._tx() as conn:
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            if row["disabled"] or row["expires_at"] <= now or now - row["seen_at"] > self.idle_s:
                conn.execute(delete(t.sessions).where(s.id_hash == row["id_hash"]))
                return None
            if now - row["seen_at"] > 60:
                # Idle time is tracked to the minute: one write a minute, not per request.
                conn.execute(update(t.sessions).where(s.id_hash == row["id_hash"])
                             .values(seen_at=now))
        return Session(_user(row), str(row["csrf"]), float(row["expires_at"]))

    def close_session(self, token: str) -> None:
        """Log out: the cookie value stops working at once."""
        with self._tx() as conn:
            conn.execute(delete(t.sessions).where(t.sessions.c.id_hash == _digest(token)))

    # -- API tokens -----------------------------------------------------------------
    def issue_token(self, name: str, label: str = "") -> tuple[str, ApiToken]:
        """A new API token for user ``name``; the returned string is shown once."""
        user = self.get(name)
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        with self._tx() as conn:
            conn.execute(insert(t.api_tokens).values(
                id=token_id, user_name=user.name, label=label[:128], secret_hash=_digest(secret),
                created_at=now))
        return (f"{TOKEN_PREFIX}_{token_id}_{secret}",
                ApiToken(token_id, user.name, label[:128], now, None, None))

    def tokens(self, name: str | None = None) -> list[ApiToken]:
        """API tokens (of one user), oldest first, without their secrets."""
        query = select(t.api_tokens).order_by(t.api_tokens.c.created_at)
        if name is not None:
            query = query.where(t.api_tokens.c.user_name == name)
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [ApiToken(r["id"], r["user_name"], r["label"], r["created_at"], r["used_at"],
                         r["revoked_at"]) for r in rows]

    def revoke_token(self, token_id: str) -> None:
        """Stop a token from working (kept, revoked, for the record)."""
        with self._tx() as conn:
            done = conn.execute(update(t.api_tokens).where(
                t.api_tokens.c.id == token_id, t.api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())).rowcount
        if done != 1:
            raise NotFound(f"no active API token {token_id!r}; list them with "
                           "`reversa users tokens`")

    def token_user(self, token: str) -> User | None:
        """The enabled user whose unrevoked API token ``token`` is, else None."""
        prefix, _, rest = token.partition("_")
        token_id, _, secret = rest.partition("_")
        if prefix != TOKEN_PREFIX or not token_id or not secret:
            return None
        k, u = t.api_tokens.c, t.users.c
        query = (select(k.secret_hash, k.revoked_at, k.used_at, u.name, u.role, u.disabled,
                        u.created_at)
                 .join_from(t.api_tokens, t.users, k.user_name == u.name)
                 .where(k.id == token_id))
        now = self.clock()
        with self._tx() as conn:
            row = conn.execute(query).mappings().first()
            if row is None or not hmac.compare_digest(str(row["secret_hash"]), _digest(secret)):
                return None
            if row["revoked_at"] is not None or row["disabled"]:
                return None
            if row["used_at"] is None or now - row["used_at"] > 60:
                conn.execute(update(t.api_tokens).where(k.id == token_id).values(used_at=now))
        return _user(row)


def _user(row: Any) -> User:
    return User(str(row["name"]), Role(row["role"]), bool(row["disabled"]),
                float(row["created_at"]))

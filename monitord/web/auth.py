"""Who is asking, and may they? Shared by the desk's pages and the JSON API.

People come from the configuration's directory (`people:`); the desk only adds what the
config cannot hold: an argon2 hash of each person's password and their language. A login
creates a server-side session (the cookie carries a random id, the database its SHA-256), so
logout and expiry are real and a copy of the database logs nobody in. Every state-changing
form carries the session's CSRF token. Failed logins are counted per account and per client
address; past `web.login_max_failures` within `web.login_window` the key is locked for
`web.lockout` (counted in monitord_web_login_lockouts_total).

The API helper authenticates tokens itself and hands the same `Principal` to `check_roles`,
so pages and endpoints apply one rule (see /work/notes/desk-to-api.md)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from monitord.config import Config, Web
from monitord.incidents.store.models import WebLoginThrottleRow, WebPersonRow, WebSessionRow

SESSION_COOKIE = "monitord_session"
PRELOGIN_COOKIE = "monitord_prelogin"
LANGUAGE_COOKIE = "monitord_lang"
# Roles that see the whole office's incidents, not only their own queue.
OFFICE_WIDE_ROLES = ("KS", "KB")
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is an attack
_hasher = PasswordHasher()
# Verifying against this when the account is unknown costs the same time as a real check,
# so response time does not tell which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AuthError(Exception):
    status = 401


class NotAuthenticated(AuthError):
    """No valid session or token: log in (pages) or 401 (API)."""

    status = 401


class Forbidden(AuthError):
    """Logged in, but the role or division does not allow this."""

    status = 403


@dataclass(frozen=True, slots=True)
class Principal:
    """A person of the directory, as authenticated for this request (`via`: session, token)."""

    name: str
    full_name: str
    roles: tuple[str, ...]
    division: str | None
    language: str | None
    via: str = "session"

    def holds(self, *roles: str) -> bool:
        return bool(set(roles) & set(self.roles))

    @property
    def office_wide(self) -> bool:
        """KS and KB see every incident of the office; others see their queue."""
        return self.holds(*OFFICE_WIDE_ROLES)


def principal_for(config: Config, name: str, via: str = "session") -> Principal | None:
    """The person named `name` in the config's directory, or None (removed since login)."""
    for person in config.people:
        if person.name == name:
            return Principal(person.name, person.full_name or person.name, tuple(person.roles),
                             person.division, person.language, via)
    return None


def check_roles(principal: Principal | None, roles: Sequence[str] = ()) -> Principal:
    """The one rule for pages and API: authenticated, and holding one of `roles` (any role
    when `roles` is empty)."""
    if principal is None:
        raise NotAuthenticated()
    if roles and not principal.holds(*roles):
        raise Forbidden()
    return principal


# -- passwords ----------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def set_password(session: Session, name: str, password: str, now: datetime) -> None:
    """Store the argon2 hash of `password` for `name`; the person's sessions end."""
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError("password length")
    row = session.get(WebPersonRow, name) or WebPersonRow(name=name)
    row.password_hash, row.updated_at = hash_password(password), now
    session.add(row)
    session.execute(delete(WebSessionRow).where(WebSessionRow.person == name))


def verify_password(session: Session, name: str, password: str) -> bool:
    row = session.get(WebPersonRow, name)
    stored = row.password_hash if row is not None and row.password_hash else None
    try:
        ok = _hasher.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored is not None


def language_of(session: Session, name: str) -> str | None:
    row = session.get(WebPersonRow, name)
    return row.language if row is not None else None


def set_language_of(session: Session, name: str, language: str, now: datetime) -> None:
    row = session.get(WebPersonRow, name) or WebPersonRow(name=name)
    row.language, row.updated_at = language, now
    session.add(row)


# -- sessions -----------------------------------------------------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token() -> str:
    """A random, unguessable token (256 bits) for sessions, CSRF and status links."""
    return secrets.token_urlsafe(32)


def start_session(session: Session, name: str, now: datetime, ttl: timedelta) -> str:
    """A new session for `name`; returns the cookie value (only its hash is stored)."""
    cookie = new_token()
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))
    session.add(WebSessionRow(id_hash=_digest(cookie), person=name, csrf=new_token(),
                              created_at=now, expires_at=now + ttl))
    return cookie


def load_session(session: Session, cookie: str | None, now: datetime) -> WebSessionRow | None:
    if not cookie or len(cookie) > 100:
        return None
    row = session.get(WebSessionRow, _digest(cookie))
    if row is None or row.expires_at <= now:
        return None
    return row


def end_session(session: Session, cookie: str | None) -> None:
    if cookie and len(cookie) <= 100:
        session.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == _digest(cookie)))


def csrf_ok(expected: str | None, given: object) -> bool:
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(
        expected.encode(), given.encode())


# -- login throttle -----------------------------------------------------------------------


def throttle_keys(account: str, address: str) -> tuple[str, str]:
    return f"account:{account[:64].lower()}", f"address:{address[:64]}"


def locked(session: Session, keys: Iterable[str], now: datetime) -> bool:
    rows = session.scalars(select(WebLoginThrottleRow).where(
        WebLoginThrottleRow.key.in_(list(keys)))).all()
    return any(r.locked_until is not None and r.locked_until > now for r in rows)


def record_failure(session: Session, keys: Iterable[str], now: datetime, web: Web) -> int:
    """Count a failed login against each key; returns how many keys became locked now.
    Counts whose window and lockout have both passed are dropped, so guessed names from many
    addresses cannot grow the table without bound."""
    session.execute(delete(WebLoginThrottleRow).where(
        WebLoginThrottleRow.first_failure_at < now - web.login_window,
        or_(WebLoginThrottleRow.locked_until.is_(None), WebLoginThrottleRow.locked_until <= now)))
    newly_locked = 0
    for key in keys:
        row = session.get(WebLoginThrottleRow, key)
        if row is None or now - row.first_failure_at > web.login_window or (
                row.locked_until is not None and row.locked_until <= now):
            row = row or WebLoginThrottleRow(key=key)
            row.failures, row.first_failure_at, row.locked_until = 0, now, None
        row.failures += 1
        if row.failures >= web.login_max_failures and row.locked_until is None:
            row.locked_until = now + web.lockout
            newly_locked += 1
        session.add(row)
    return newly_locked


def record_success(session: Session, account_key: str) -> None:
    """A good password clears the account's count (the address's stays: one address trying
    many accounts is still throttled)."""
    session.execute(delete(WebLoginThrottleRow).where(WebLoginThrottleRow.key == account_key))


# -- where the request comes from ---------------------------------------------------------


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted_proxies: Sequence[str]) -> str:
    """The client's address. X-Forwarded-For is believed only when the peer is a configured
    proxy (http.trusted_proxies); then the right-most address that is not itself a trusted
    proxy is the client (the left part of the header is whatever the client wrote)."""
    address = peer or "unknown"
    if not forwarded_for or not is_trusted_proxy(address, trusted_proxies):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # garbage in the header: fall back to the proxy itself
        if not is_trusted_proxy(hop, trusted_proxies):
            return hop
    return address


def is_trusted_proxy(address: str, proxies: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(p, strict=False) for p in proxies)

"""API tokens: created by an administrator with `monitord api-token create`, shown once, stored
as their SHA-256, revocable. Each token acts as one person of the config's directory (an
integration such as an office's GLPI or a chat bot is a person too, with its own role), so the
API applies exactly the desk's role checks.

Tokens carry 256 random bits after a fixed `mdt_` prefix (so a leaked one is easy to grep
for); comparing hashes through a unique index makes the lookup constant-time in the token."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitord.incidents.store.models import ApiTokenRow

PREFIX = "mdt_"
MAX_TOKEN_LENGTH = 200
# last_used_at is written at most this often, so reads do not each cost a write.
TOUCH_EVERY = timedelta(minutes=1)


class TokenError(ValueError):
    """A token command that cannot be done (the message says why)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: never its value, never its hash."""

    name: str
    person: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None
        return {"name": self.name, "person": self.person, "created_at": iso(self.created_at),
                "last_used_at": iso(self.last_used_at), "revoked_at": iso(self.revoked_at),
                "active": self.revoked_at is None}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(row.name, row.person, row.created_at, row.last_used_at, row.revoked_at)


def create(session: Session, name: str, person: str, now: datetime) -> str:
    """A new token for `person` under `name`; returns the token (the only time it exists
    in clear)."""
    active = session.scalars(select(ApiTokenRow).where(
        ApiTokenRow.name == name, ApiTokenRow.revoked_at.is_(None))).first()
    if active is not None:
        raise TokenError(name)
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiTokenRow(name=name, person=person, token_hash=digest(token),
                            created_at=now, last_used_at=None, revoked_at=None))
    return token


def list_tokens(session: Session) -> list[TokenInfo]:
    return [_info(row) for row in session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))]


def revoke(session: Session, name: str, now: datetime) -> int:
    """Revoke the active token(s) named `name`; returns how many."""
    rows = session.scalars(select(ApiTokenRow).where(
        ApiTokenRow.name == name, ApiTokenRow.revoked_at.is_(None))).all()
    for row in rows:
        row.revoked_at = now
    return len(rows)


def authenticate(session: Session, token: str | None, now: datetime) -> str | None:
    """The person a presented token acts as, or None (unknown, revoked or malformed)."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.startswith(PREFIX):
        return None
    row = session.scalars(select(ApiTokenRow).where(
        ApiTokenRow.token_hash == digest(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        row.last_used_at = now
    return row.person

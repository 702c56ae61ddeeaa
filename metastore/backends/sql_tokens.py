"""API tokens in the SQL backend's database: the server's own data, not a primitive.

A token is shown once, when it is created, and kept only as its sha256 hash in the
`api_token` table. These functions take the server's `SQLBackend` (the token commands
and the server reach the database itself, never another server); `metastore.server.auth`
builds the server's rules on them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlmodel import col, select

from metastore.backends.base import Backend
from metastore.backends.sql import SQLBackend
from metastore.errors import Conflict, MetastoreError, NotFound
from metastore.models import ApiToken, utcnow
from metastore.records import validate_key

TOKEN_PREFIX = "mst_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sql_backend(backend: Backend) -> SQLBackend:
    """The backend itself when it is a database; tokens cannot be managed through a server."""
    if not isinstance(backend, SQLBackend):
        raise MetastoreError(
            "tokens are managed on the server's own database, not through the server",
            hint="run `metastore token …` with --store pointing at the server's database URL",
        )
    return backend


def create_token(backend: Backend, name: str, *, read_only: bool = False) -> str:
    """Create a token called `name` and return it; only its hash is kept, so this is
    the one time it can be seen. A revoked token's name may be used again."""
    validate_key(name, "token name")
    sql = sql_backend(backend)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)

    def go(s):
        existing = s.exec(select(ApiToken).where(ApiToken.name == name)).first()
        if existing is not None:
            if existing.revoked_at is None:
                raise Conflict(
                    f"a token named {name!r} already exists",
                    hint=f"revoke it first (`metastore token revoke {name}`) or pick another name",
                )
            s.delete(existing)
            s.flush()
        s.add(ApiToken(name=name, token_hash=hash_token(token), read_only=read_only))

    sql.transact(go)
    return token


def list_tokens(backend: Backend, include_revoked: bool = False) -> list[ApiToken]:
    with sql_backend(backend).read() as s:
        q = select(ApiToken).order_by(ApiToken.name)
        if not include_revoked:
            q = q.where(col(ApiToken.revoked_at).is_(None))
        return list(s.exec(q))


def revoke_token(backend: Backend, name: str) -> None:
    """Revoke a token at once: the server refuses it from its next request on."""

    def go(s):
        token = s.exec(
            select(ApiToken).where(ApiToken.name == name, col(ApiToken.revoked_at).is_(None))
        ).first()
        if token is None:
            raise NotFound(f"no active token named {name!r}", hint="`metastore token list` shows them")
        token.revoked_at = utcnow()
        s.add(token)

    sql_backend(backend).transact(go)


def find_token(backend: Backend, token: str) -> ApiToken | None:
    """The active token row whose hash matches `token`, or None."""
    digest = hash_token(token)
    with sql_backend(backend).read() as s:
        row = s.exec(
            select(ApiToken).where(ApiToken.token_hash == digest, col(ApiToken.revoked_at).is_(None))
        ).first()
    # The lookup is by hash, so timing reveals nothing of the token; compare anyway.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row

"""API tokens: who may read and who may write through a metastore server.

A token is shown once, when it is created, and stored only as its sha256 hash in the
`api_token` table; the server hashes what a client sends and looks the hash up. A
read-only token may use every GET/HEAD route and nothing that writes.

Clients send the token as `Authorization: Bearer TOKEN`. A browser gets it into a cookie
through the small login form (`/login`), so the web UI works on an authenticated server.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from sqlmodel import col, select

from metastore.errors import Conflict, InvalidValue, MetastoreError, NotFound
from metastore.models import ApiToken, utcnow
from metastore.store import Store, validate_key

TOKEN_PREFIX = "mst_"
COOKIE_NAME = "metastore_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    name: str
    read_only: bool
    via_cookie: bool = False


ANONYMOUS = Principal("anonymous", read_only=False)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _sql(store: Store):
    if not hasattr(store, "transact"):
        raise MetastoreError(
            "tokens are managed on the server's own database, not through the server",
            hint="run `metastore token …` with --store pointing at the server's database URL",
        )
    return store


def create_token(store: Store, name: str, *, read_only: bool = False) -> str:
    """Create a token called `name` and return it; only its hash is kept, so this is
    the one time it can be seen."""
    validate_key(name, "token name")
    sql = _sql(store)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)

    def go(s):
        existing = s.exec(select(ApiToken).where(ApiToken.name == name)).first()
        if existing is not None:
            if existing.revoked_at is None:
                raise Conflict(
                    f"a token named {name!r} already exists",
                    hint=f"revoke it first (`metastore token revoke {name}`) or pick another name",
                )
            s.delete(existing)  # a revoked token's name may be used again
            s.flush()
        s.add(ApiToken(name=name, token_hash=hash_token(token), read_only=read_only))

    sql.transact(go)
    return token


def list_tokens(store: Store, include_revoked: bool = False) -> list[ApiToken]:
    with _sql(store).read() as s:
        q = select(ApiToken).order_by(ApiToken.name)
        if not include_revoked:
            q = q.where(col(ApiToken.revoked_at).is_(None))
        return list(s.exec(q))


def revoke_token(store: Store, name: str) -> None:
    """Revoke a token at once: the server refuses it from its next request on."""

    def go(s):
        token = s.exec(
            select(ApiToken).where(ApiToken.name == name, col(ApiToken.revoked_at).is_(None))
        ).first()
        if token is None:
            raise NotFound(f"no active token named {name!r}", hint="`metastore token list` shows them")
        token.revoked_at = utcnow()
        s.add(token)

    _sql(store).transact(go)


def verify_token(store: Store, token: str | None) -> Principal | None:
    """The principal a token stands for, or None when it is unknown or revoked."""
    if not token or len(token) > 200:
        return None
    digest = hash_token(token)
    with _sql(store).read() as s:
        row = s.exec(
            select(ApiToken).where(ApiToken.token_hash == digest, col(ApiToken.revoked_at).is_(None))
        ).first()
    # The lookup is by hash, so timing reveals nothing of the token; compare anyway.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return Principal(row.name, row.read_only)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_no_auth_allowed(host: str) -> None:
    if not is_loopback(host):
        raise InvalidValue(
            f"--no-auth is only allowed on a loopback address, not {host!r}",
            hint="serve on 127.0.0.1, or create a token with `metastore token create --name NAME`",
        )

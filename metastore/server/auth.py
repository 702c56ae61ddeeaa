"""API tokens: who may read and who may write through a metastore server.

A token is shown once, when it is created, and stored only as its sha256 hash in the
`api_token` table, kept by the SQL backend (`metastore.backends.sql_tokens`); the server
hashes what a client sends and looks the hash up. A read-only token may use every
GET/HEAD route, and the POST routes that only read, and nothing that writes.

Clients send the token as `Authorization: Bearer TOKEN`. A browser gets it into a cookie
through the small login form (`/login`), so the web UI works on an authenticated server.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from metastore.backends import sql_tokens
from metastore.errors import InvalidValue

TOKEN_PREFIX = sql_tokens.TOKEN_PREFIX
COOKIE_NAME = "metastore_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
hash_token = sql_tokens.hash_token


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    name: str
    read_only: bool
    via_cookie: bool = False


ANONYMOUS = Principal("anonymous", read_only=False)


def _backend(store):
    """The backend of a Store (what `metastore.open` returns), or a backend itself."""
    return getattr(store, "backend", store)


def create_token(store, name: str, *, read_only: bool = False) -> str:
    """Create a token called `name` on the store's database and return it; only its hash
    is kept, so this is the one time it can be seen."""
    return sql_tokens.create_token(_backend(store), name, read_only=read_only)


def list_tokens(store, include_revoked: bool = False):
    return sql_tokens.list_tokens(_backend(store), include_revoked)


def revoke_token(store, name: str) -> None:
    """Revoke a token at once: the server refuses it from its next request on."""
    sql_tokens.revoke_token(_backend(store), name)


def verify_token(store, token: str | None) -> Principal | None:
    """The principal a token stands for, or None when it is unknown or revoked."""
    if not token or len(token) > 200:
        return None
    row = sql_tokens.find_token(_backend(store), token)
    return None if row is None else Principal(row.name, row.read_only)


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

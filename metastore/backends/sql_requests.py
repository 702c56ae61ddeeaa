"""Idempotency keys in SQL: a write a client sends twice is applied once.

A mixin of `SQLBackend`. A server hands each write that carries an `Idempotency-Key` to
`apply_once`: the key is inserted into `applied_request` inside the write's own
transaction (the first one the primitive opens), with the answer's JSON, so after a
kill -9 either both the write and its key are in the database or neither is. A repeated
key finds its row and gets the kept answer; two requests with the same key at once
meet on the primary key, and the loser (after `transact` retries the duplicate) finds
the winner's row. Keys older than `KEEP` are deleted, at most once per `EXPIRE_EVERY`
seconds per process, with the index on `applied`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from metastore.errors import Conflict, InvalidValue
from metastore.models import AppliedRequest, utcnow

#: How long a key is remembered: far longer than any client retries or keeps a spool
#: before `metastore sync` (a write sent again after that would apply twice).
KEEP = timedelta(days=3)
EXPIRE_EVERY = 3600.0
KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def check_key(key: str) -> str:
    """An idempotency key is 8 to 64 letters, digits, '-' or '_' (a UUID fits)."""
    if not 8 <= len(key) <= 64 or not set(key) <= KEY_CHARS:
        raise InvalidValue(
            "an Idempotency-Key is 8 to 64 letters, digits, '-' or '_'",
            hint="send a new UUID per write, the same one on every retry of it",
        )
    return key


@dataclass
class _Pending:
    """The key of the write being applied in this thread (set by `apply_once`)."""

    key: str
    route: str
    encode: Callable[[Any], bytes] | None
    row: AppliedRequest | None = None
    recorded: bool = False


_pending: ContextVar[_Pending | None] = ContextVar("metastore_idempotency_key", default=None)


class _AlreadyApplied(Exception):  # noqa: N818 - control flow, never leaves this module
    def __init__(self, row: AppliedRequest):
        self.row = row


class AppliedRequestsSQL:
    """apply_once on the SQL backend, and the hooks `SQLBackend.transact` calls."""

    _next_expiry = 0.0

    def apply_once(self, key, route, call, encode=None):
        check_key(key)
        with self.read() as s:
            row = s.get(AppliedRequest, key)
        if row is not None:  # a repeat: one indexed read, nothing written
            return _answer(row, route, encode)
        pending = _Pending(key, route, encode)
        token = _pending.set(pending)
        try:
            result = call()
        except _AlreadyApplied as e:  # the same key, sent again while the first was running
            return _answer(e.row, route, encode)
        finally:
            _pending.reset(token)
        data = None if encode is None else encode(result)
        if pending.recorded and data is not None and pending.row.response != data.decode():
            # the primitive's answer was finished after its transaction (purge counts
            # blobs, reconcile counts runs): keep the final one
            self.transact(lambda s: s.execute(
                sa.update(AppliedRequest).where(AppliedRequest.key == key)
                .values(response=data.decode())))
        return data

    # -- called by transact, inside the write's transaction ----------------------------------
    def _claim_key(self, s: Session) -> _Pending | None:
        """Insert the pending key first, so a concurrent twin waits on it (PostgreSQL,
        MariaDB) and then fails as a duplicate, which `transact` retries into a read."""
        pending = _pending.get()
        if pending is None or pending.recorded:
            return None
        row = s.get(AppliedRequest, pending.key)
        if row is not None:
            raise _AlreadyApplied(row)
        if time.monotonic() >= self._next_expiry:
            self._next_expiry = time.monotonic() + EXPIRE_EVERY
            s.execute(sa.delete(AppliedRequest).where(AppliedRequest.applied < utcnow() - KEEP))
        pending.row = AppliedRequest(key=pending.key, route=pending.route)
        s.add(pending.row)
        s.flush()
        return pending

    @staticmethod
    def _keep_answer(s: Session, pending: _Pending, result: Any) -> None:
        if pending.encode is None:
            return
        s.flush()  # ids and defaults of new rows are in the answer
        try:
            pending.row.response = pending.encode(result).decode()
        except Exception:  # noqa: BLE001 - not the primitive's final answer: kept after
            pending.row.response = None
        s.add(pending.row)


def _answer(row: AppliedRequest, route: str, encode) -> bytes | None:
    if row.route != route:
        raise Conflict(
            f"Idempotency-Key {row.key} was used for {row.route}, not {route}",
            hint="send a new key for each write",
        )
    if encode is None:
        return None
    if row.response is None:
        raise Conflict(
            f"this {route} was applied, but its answer was not kept",
            hint="read the result back instead of repeating the write",
        )
    return row.response.encode()

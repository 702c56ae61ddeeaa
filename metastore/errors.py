"""Errors a user can cause. Each carries a message a person can act on.

The CLI prints any `MetastoreError` in one or two lines and exits non-zero; anything
else escaping is a bug in metastore.
"""

from __future__ import annotations


class MetastoreError(Exception):
    """Base of every error a user can cause."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class StoreUnavailable(MetastoreError):
    """The database behind a URL cannot be reached or opened."""


class InvalidURL(MetastoreError):
    """A store URL that cannot be understood."""


class NotFound(MetastoreError):
    """A run, experiment, asset or version that does not exist."""


class Ambiguous(MetastoreError):
    """A reference that matches more than one thing."""


class InvalidValue(MetastoreError):
    """A key or value that cannot be recorded (empty key, NaN metric, missing path…)."""


class IntegrityFailure(MetastoreError):
    """Stored content no longer matches its recorded digest."""


class SchemaMismatch(MetastoreError):
    """The store's schema revision is not the one this metastore reads: newer (upgrade
    metastore) or older on a shared database (`metastore db upgrade`)."""


class NotReproducible(MetastoreError):
    """A reproduction that cannot be built: the code, an input or the environment is
    missing or cannot be set up (nothing was re-run)."""


class Conflict(MetastoreError):
    """A write that contradicts what is stored (e.g. a lineage cycle)."""

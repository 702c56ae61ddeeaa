"""Aliases: movable names for asset versions ("which model is in production").

`set_alias(store, "model:regressor@6", "production")` points the alias `production` of
model:regressor at version 6; from then on `model:regressor@production` is a reference
wherever a version is accepted: the CLI, Python (`metastore.refs`) and queries. Moving
it again, or removing it, is kept in its history with who, when and a note.

The author is the person at this end (the user of this process), not the server's.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

from metastore.errors import InvalidValue
from metastore.models import ASSET_KINDS
from metastore.records import AliasRecord, validate_alias
from metastore.refs import VERSION, resolve

if TYPE_CHECKING:
    from metastore.backends.base import Backend


def whoami() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return None


def set_alias(
    store: Backend, ref: Any, alias: str, note: str | None = None, author: str | None = None
) -> AliasRecord:
    """Point `alias` at the asset version `ref` names (moving it if it pointed elsewhere)."""
    validate_alias(alias)
    node = resolve(store, ref)
    if node.type != VERSION:
        raise InvalidValue(
            f"{ref!r} is a run; aliases name asset versions",
            hint="e.g. metastore alias set model:regressor@6 production",
        )
    return store.set_alias(node.id, alias, author=author or whoami(), note=note)


def asset_of(ref: str, alias: str | None = None) -> tuple[str, str, str | None]:
    """(kind, name, alias) from `kind:name` (+ alias) or `kind:name@alias`."""
    if not isinstance(ref, str):
        raise InvalidValue(f"name an asset as kind:name, not {ref!r}")
    kind, sep, rest = ref.partition(":")
    name, at, tail = rest.partition("@")
    if not sep or kind not in ASSET_KINDS or not name:
        raise InvalidValue(
            f"{ref!r} is not an asset", hint="write kind:name, e.g. model:regressor"
        )
    if at:
        if alias is not None and alias != tail:
            raise InvalidValue(f"{ref!r} names alias {tail!r}, and {alias!r} was given too")
        alias = tail
    return kind, name, alias


def unset_alias(
    store: Backend, ref: str, alias: str | None = None, note: str | None = None,
    author: str | None = None,
) -> AliasRecord:
    """Remove an alias: `unset_alias(store, "model:regressor@production")` or
    `unset_alias(store, "model:regressor", "production")`."""
    kind, name, alias = asset_of(ref, alias)
    if alias is None:
        raise InvalidValue(f"which alias of {ref}?", hint=f"e.g. {ref}@production")
    return store.unset_alias(kind, name, alias, author=author or whoami(), note=note)


def list_aliases(store: Backend, asset: str | None = None) -> list[AliasRecord]:
    """Aliases set now, of every asset or of one (`model:regressor`)."""
    if asset is None:
        return store.list_aliases()
    kind, name, alias = asset_of(asset)
    found = store.list_aliases(kind, name)
    return [a for a in found if alias is None or a.alias == alias]


def alias_history(
    store: Backend, asset: str | None = None, alias: str | None = None
) -> list[AliasRecord]:
    """Every move of aliases, oldest first: of every asset, one asset, or one alias."""
    if asset is None:
        return store.alias_history(alias=alias)
    kind, name, alias = asset_of(asset, alias)
    return store.alias_history(kind, name, alias)

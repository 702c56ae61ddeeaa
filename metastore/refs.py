"""References to lineage nodes: what people type, resolved to a run or an asset version.

A reference is one of
- a `RunHandle` or `VersionHandle` (or a `Run` / `AssetVersion` row);
- `run:REF`, or a bare run reference: id, number (`4`), `experiment#number`, name;
- `KIND:NAME@VERSION` (`model:regressor@3`), `KIND:NAME` meaning the latest version,
  `KIND:NAME@latest`, `KIND:NAME@ALIAS` (`model:regressor@production`, see
  `metastore.aliases`), or `NAME@VERSION` / `NAME@ALIAS` when only one asset has that name;
- an asset version id.

Resolution goes through the `Store` interface only, so it works on any store.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metastore.errors import Ambiguous, InvalidValue, NotFound
from metastore.models import ASSET_KINDS, AssetVersion, Run

if TYPE_CHECKING:
    from metastore.backends.base import Backend

RUN = "run"
VERSION = "asset_version"

_VERSION_REF = re.compile(r"^(?:(?P<kind>[A-Za-z_]+):)?(?P<name>[^@]+?)(?:@(?P<version>[^@]+))?$")


@dataclass(frozen=True)
class Node:
    """One end of a lineage edge: `type` is "run" or "asset_version", `id` its id."""

    type: str
    id: str

    def __post_init__(self) -> None:
        if self.type not in (RUN, VERSION):
            raise InvalidValue(f"lineage nodes are runs or asset versions, not {self.type!r}")


def resolve(store: Backend, ref: Any, experiment: str | None = None) -> Node:
    """The node a reference names. Raises NotFound (with suggestions) or Ambiguous."""
    from metastore.handles import RunHandle, VersionHandle

    if isinstance(ref, Node):
        return ref
    if isinstance(ref, RunHandle):
        return Node(RUN, ref.row.id)
    if isinstance(ref, VersionHandle):
        return Node(VERSION, ref.row.id)
    if isinstance(ref, Run):
        return Node(RUN, ref.id)
    if isinstance(ref, AssetVersion):
        return Node(VERSION, ref.id)
    if isinstance(ref, bool) or not isinstance(ref, str | int):
        raise InvalidValue(
            f"cannot use {ref!r} as a lineage reference",
            hint="pass a run or asset version handle, a run id/number/name, or 'kind:name@version'",
        )
    text = str(ref).strip()
    if not text:
        raise InvalidValue("an empty lineage reference")
    if text.startswith("run:"):
        return Node(RUN, store.resolve_run(text[4:], experiment).id)
    kind, sep, rest = text.partition(":")
    if sep and kind in ASSET_KINDS:
        return _version(store, kind, rest)
    if sep and "#" not in kind and "@" in rest:
        raise NotFound(
            f"unknown asset kind {kind!r} in {text!r}",
            hint=_did_you_mean(kind, ASSET_KINDS) or f"kinds are: {', '.join(ASSET_KINDS)}",
        )
    if "@" in text and "#" not in text:
        return _version_by_name(store, text)
    try:
        return Node(RUN, store.resolve_run(text, experiment).id)
    except NotFound as run_missing:
        if "#" in text or text.isdigit():  # clearly meant as a run
            raise
        if len(text) == 26:
            try:
                _, av = store.get_version_by_id(text.upper())
                return Node(VERSION, av.id)
            except NotFound:
                pass
        raise NotFound(
            f"no run or asset version {text!r}",
            hint=_did_you_mean(text, _candidates(store)) or run_missing.hint
            or "refer to a run by id, number, experiment#number or name, "
            "and to an asset version as kind:name@version",
        ) from None


def _version(store: Backend, kind: str, rest: str) -> Node:
    name, _, version = rest.partition("@")
    if not name:
        raise InvalidValue(f"{kind}:{rest!r} has no asset name", hint=f"e.g. {kind}:NAME@1")
    number: int | None = None
    if version and version != "latest":
        digits = version.lstrip("v")
        if not digits.isdigit():
            return _aliased(store, kind, name, version)
        number = int(digits)
    try:
        _, av = store.get_asset_version(kind, name, number)
    except NotFound as e:
        if f"{kind}:{name}" in _asset_refs(store):  # the asset exists, the version not
            known = [v.version for _, v in store.list_versions(kind, name)]
            e.hint = f"{kind}:{name} has versions {', '.join(map(str, known))}"
        elif e.hint is None:
            e.hint = _did_you_mean(f"{kind}:{name}", _asset_refs(store))
        raise
    return Node(VERSION, av.id)


def _aliased(store: Backend, kind: str, name: str, alias: str) -> Node:
    """The version `alias` of kind:name points at now."""
    aliases = store.list_aliases(kind, name)
    for a in aliases:
        if a.alias == alias:
            return Node(VERSION, a.version_id)
    if aliases:
        hint = f"{kind}:{name} has aliases {', '.join(a.alias for a in aliases)}"
    elif f"{kind}:{name}" in _asset_refs(store):
        hint = (f"{kind}:{name} has no aliases; set one with "
                f"`metastore alias set {kind}:{name}@N {alias}`")
    else:
        hint = _did_you_mean(f"{kind}:{name}", _asset_refs(store))
    raise NotFound(f"{kind}:{name} has no version or alias {alias!r}", hint=hint)


def _version_by_name(store: Backend, text: str) -> Node:
    name, _, version = text.partition("@")
    kinds = [a.kind for a in store.list_assets() if a.name == name]
    if len(kinds) == 1:
        return _version(store, kinds[0], f"{name}@{version}")
    if len(kinds) > 1:
        raise Ambiguous(
            f"several assets are named {name!r}: {', '.join(f'{k}:{name}' for k in kinds)}",
            hint=f"say which, e.g. {kinds[0]}:{text}",
        )
    raise NotFound(
        f"no asset named {name!r}",
        hint=_did_you_mean(name, [a.name for a in store.list_assets()])
        or "write asset versions as kind:name@version, e.g. model:regressor@3",
    )


def _asset_refs(store: Backend) -> list[str]:
    return [f"{a.kind}:{a.name}" for a in store.list_assets()]


def _candidates(store: Backend) -> list[str]:
    names: list[str] = _asset_refs(store)
    for run in store.list_runs():
        if run.name:
            names.append(run.name)
    return names


def _did_you_mean(word: str, candidates) -> str | None:
    close = difflib.get_close_matches(word, list(dict.fromkeys(candidates)), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None

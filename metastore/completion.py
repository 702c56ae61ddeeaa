"""Shell completion of what a command names: runs (`diabetes#4`), asset versions
(`model:regressor@6`, `model:regressor@production`), experiments, and the words of a
query (`metastore query 'runs where rm<TAB>`: sources, params, metrics, tags, history
suffixes, keywords and references, from `metastore.query.suggest`).

Typer calls these while the user presses TAB (`metastore --install-completion` sets the
shell up). Each opens the store the command would (`--store` if already typed, else
METASTORE_URL or the nearest `.metastore/`), never creates one, and answers nothing
rather than fail: a completion must not print errors into the user's prompt.
"""

from __future__ import annotations

from typing import Any

#: At most this many candidates: a shell lists them all.
LIMIT = 200


def _open(ctx: Any):
    from metastore.store import open as open_store

    url = None
    if ctx is not None:
        url = (getattr(ctx, "params", None) or {}).get("store")
    try:
        return open_store(url, create=False)
    except Exception:  # noqa: BLE001 - no store here: nothing to complete
        return None


def _runs(store, incomplete: str) -> list[tuple[str, str]]:
    names = {e.id: e.name for e in store.experiments()}
    out = []
    for run in sorted(store.backend.list_runs(), key=lambda r: r.started, reverse=True):
        ref = f"{names.get(run.experiment_id, '?')}#{run.number}"
        if ref.startswith(incomplete) or (run.name or "").startswith(incomplete) and incomplete:
            out.append((ref, " ".join(filter(None, [run.name, run.status]))))
        if len(out) >= LIMIT:
            break
    return out


def _versions(store, incomplete: str) -> list[tuple[str, str]]:
    out = []
    asset_part = incomplete.split("@", 1)[0]
    for asset in store.assets():
        name = f"{asset.kind}:{asset.name}"
        if "@" not in incomplete:
            if name.startswith(incomplete):
                out.append((name, "the latest version"))
            continue
        if name != asset_part:
            continue
        for v in reversed(store.versions(asset.kind, asset.name)):
            out.append((f"{name}@{v.version}", v.digest[:12]))
        for a in store.aliases(name):
            out.append((f"{name}@{a.alias}", f"alias of @{a.version}"))
    return [c for c in out if c[0].startswith(incomplete)][:LIMIT]


def runs(ctx, incomplete: str) -> list[tuple[str, str]]:
    """Run references: experiment#number (newest first), or by name."""
    store = _open(ctx)
    if store is None:
        return []
    try:
        return _runs(store, incomplete)
    except Exception:  # noqa: BLE001 - see the module's docstring
        return []
    finally:
        store.close()


def versions(ctx, incomplete: str) -> list[tuple[str, str]]:
    """Asset references: kind:name, then kind:name@N and kind:name@alias."""
    store = _open(ctx)
    if store is None:
        return []
    try:
        return _versions(store, incomplete)
    except Exception:  # noqa: BLE001
        return []
    finally:
        store.close()


def references(store, incomplete: str) -> list[tuple[str, str]]:
    """Runs and asset versions whose reference starts with `incomplete` (versions once a
    ':' is typed), with what each is: also the UI query box's references."""
    if ":" in incomplete:
        return _versions(store, incomplete)
    return (_runs(store, incomplete) + _versions(store, incomplete))[:LIMIT]


def nodes(ctx, incomplete: str) -> list[tuple[str, str]]:
    """A run or an asset version (lineage, link): versions once a ':' is typed."""
    store = _open(ctx)
    if store is None:
        return []
    try:
        return references(store, incomplete)
    except Exception:  # noqa: BLE001
        return []
    finally:
        store.close()


def kinds(ctx, incomplete: str) -> list[str]:
    """Asset kinds (model, dataset …): the meta-model's own words, no store needed."""
    from metastore.vocabulary import ASSET_KINDS

    return [k for k in ASSET_KINDS if k.startswith(incomplete)]


def experiments(ctx, incomplete: str) -> list[tuple[str, str]]:
    store = _open(ctx)
    if store is None:
        return []
    try:
        return [(e.name, e.description or "") for e in store.experiments()
                if e.name.startswith(incomplete)][:LIMIT]
    except Exception:  # noqa: BLE001
        return []
    finally:
        store.close()


def query(ctx, incomplete: str) -> list[tuple[str, str]]:
    """The query typed so far, with its last word completed: each candidate is the whole
    query (the shell replaces the argument with it). Without a store (or one that cannot
    be read), the language's own words still complete."""
    from metastore.query.suggest import suggest

    store = _open(ctx)
    vocabulary: list[tuple[str, str]] = []
    refs = None
    try:
        if store is not None:
            experiment = (getattr(ctx, "params", None) or {}).get("experiment")
            vocabulary = [(f["name"], f["kind"]) for f in store.fields(experiment)]

            def refs(word: str) -> list[tuple[str, str]]:
                return references(store, word)
    except Exception:  # noqa: BLE001 - see the module's docstring
        vocabulary, refs = [], None
    try:
        found = suggest(incomplete, vocabulary=vocabulary, refs=refs)
        return [(incomplete[: found.start] + s.text, s.kind + (f": {s.about}" if s.about else ""))
                for s in found.items]
    except Exception:  # noqa: BLE001
        return []
    finally:
        if store is not None:
            store.close()

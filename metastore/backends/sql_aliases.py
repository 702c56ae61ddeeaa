"""Aliases in SQL: movable names of asset versions (`model:regressor@production`).

A mixin of `SQLBackend`: `asset_alias` holds where each alias points now, `alias_move`
every move (set, moved, removed) with who, when and why. Each call is one transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, col, select

from metastore.errors import InvalidValue, NotFound
from metastore.models import AliasMove, Asset, AssetAlias, AssetVersion, utcnow
from metastore.records import AliasRecord, validate_alias


def _note(note: str | None) -> str | None:
    if note is not None and not isinstance(note, str):
        raise InvalidValue(f"an alias note is text, got {note!r}")
    return note or None


def _naive(t: datetime) -> datetime:
    """Stored times are naive UTC."""
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo is not None else t


class AliasSQL:
    """set_alias, unset_alias, list_aliases, alias_history on the SQL backend."""

    def set_alias(
        self, version_id: str, alias: str, author: str | None = None, note: str | None = None,
        time: datetime | None = None,
    ) -> AliasRecord:
        validate_alias(alias)
        note = _note(note)

        def go(s: Session) -> AliasRecord:
            av = s.get(AssetVersion, version_id)
            if av is None:
                raise NotFound(f"no asset version with id {version_id!r}")
            asset = s.get(Asset, av.asset_id)
            row = s.get(AssetAlias, (asset.id, alias))
            previous = None
            if row is not None:
                if row.version_id == av.id:
                    return _current(asset, row, av.version)
                previous = s.get(AssetVersion, row.version_id).version
            now = _naive(time) if time is not None else utcnow()
            if row is None:
                row = AssetAlias(asset_id=asset.id, alias=alias, version_id=av.id)
            row.version_id, row.moved, row.author, row.note = av.id, now, author, note
            s.add(row)
            s.add(AliasMove(asset_id=asset.id, alias=alias, version_id=av.id, version=av.version,
                            previous=previous, time=now, author=author, note=note))
            return AliasRecord(kind=asset.kind, name=asset.name, alias=alias, version=av.version,
                               version_id=av.id, previous=previous, time=now, author=author,
                               note=note)

        return self.transact(go)

    def unset_alias(
        self, kind: str, name: str, alias: str, author: str | None = None,
        note: str | None = None, time: datetime | None = None,
    ) -> AliasRecord:
        note = _note(note)

        def go(s: Session) -> AliasRecord:
            asset = s.exec(select(Asset).where(Asset.kind == kind, Asset.name == name)).first()
            if asset is None:
                raise NotFound(f"no {kind} named {name!r}")
            row = s.get(AssetAlias, (asset.id, alias))
            if row is None:
                known = [a.alias for a in s.exec(select(AssetAlias).where(AssetAlias.asset_id == asset.id))]
                raise NotFound(f"{kind}:{name} has no alias {alias!r}",
                               hint=f"its aliases: {', '.join(sorted(known))}" if known else None)
            previous = s.get(AssetVersion, row.version_id).version
            now = _naive(time) if time is not None else utcnow()
            s.delete(row)
            s.add(AliasMove(asset_id=asset.id, alias=alias, version_id=None, version=None,
                            previous=previous, time=now, author=author, note=note))
            return AliasRecord(kind=kind, name=name, alias=alias, previous=previous, time=now,
                               author=author, note=note)

        return self.transact(go)

    def list_aliases(
        self, kind: str | None = None, name: str | None = None, version_id: str | None = None
    ) -> list[AliasRecord]:
        q = (
            select(Asset, AssetAlias, AssetVersion.version)
            .where(AssetAlias.asset_id == Asset.id, AssetVersion.id == AssetAlias.version_id)
        )
        if kind is not None:
            q = q.where(Asset.kind == kind)
        if name is not None:
            q = q.where(Asset.name == name)
        if version_id is not None:
            q = q.where(AssetAlias.version_id == version_id)
        q = q.order_by(Asset.kind, Asset.name, AssetAlias.alias)
        with self.read() as s:
            return [_current(a, row, v) for a, row, v in s.exec(q)]

    def alias_history(
        self, kind: str | None = None, name: str | None = None, alias: str | None = None
    ) -> list[AliasRecord]:
        q = select(Asset, AliasMove).where(AliasMove.asset_id == Asset.id)
        if kind is not None:
            q = q.where(Asset.kind == kind)
        if name is not None:
            q = q.where(Asset.name == name)
        if alias is not None:
            q = q.where(AliasMove.alias == alias)
        q = q.order_by(AliasMove.time, col(AliasMove.id))
        with self.read() as s:
            return [
                AliasRecord(kind=a.kind, name=a.name, alias=m.alias, version=m.version,
                            version_id=m.version_id, previous=m.previous, time=m.time,
                            author=m.author, note=m.note)
                for a, m in s.exec(q)
            ]


def _current(asset: Asset, row: AssetAlias, version: int) -> AliasRecord:
    return AliasRecord(kind=asset.kind, name=asset.name, alias=row.alias, version=version,
                       version_id=row.version_id, time=row.moved, author=row.author,
                       note=row.note)

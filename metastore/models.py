"""The meta-model as SQLModel tables: the single source of truth for the schema.

`schema/` (DDL per dialect, ER diagram, table README) is generated from these classes by
`scripts/generate_schema.py`, and the Alembic migrations in `metastore/migrations/` must
produce exactly this schema; tests check both for drift.

Each class docstring is the table's description in `schema/README.md`.

Types are chosen to behave the same on SQLite, PostgreSQL and MySQL/MariaDB: `Double`
(MySQL's FLOAT is single precision), bounded `String` for indexed text (MySQL cannot
index unbounded TEXT), and microsecond datetimes (MySQL's DATETIME drops fractions by
default, which would make "order by started" ambiguous). Times are naive UTC.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlmodel import Field, SQLModel

KEY_LENGTH = 250
NAME_LENGTH = 250
ID_LENGTH = 26

# the words live in metastore.vocabulary (importable without SQLAlchemy)
from metastore.vocabulary import (  # noqa: E402, F401
    ASSET_KINDS,
    NODE_TYPES,
    PARAM_TYPES,
    RELATIONS,
    RUN_STATUSES,
)

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Real = sa.Double()


def utcnow() -> datetime:
    """Naive UTC now: every stored time is naive UTC so all dialects agree."""
    return datetime.now(UTC).replace(tzinfo=None)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A 26-character ULID: sortable by creation time, unique without coordination."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_CROCKFORD[rem])
    return "".join(reversed(chars))


def _id_field(**kw) -> str:
    return Field(default_factory=new_id, primary_key=True, max_length=ID_LENGTH, **kw)


class Project(SQLModel, table=True):
    """A namespace for experiments and assets. Every store has a `default` project."""

    __tablename__ = "project"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=NAME_LENGTH, unique=True)
    created: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class Experiment(SQLModel, table=True):
    """A question being worked on ("cnn_lr_sweep"); groups runs, which it numbers 1, 2, 3 …"""

    __tablename__ = "experiment"
    __table_args__ = (sa.UniqueConstraint("project_id", "name", name="uq_experiment_name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    name: str = Field(max_length=NAME_LENGTH)
    description: str | None = Field(default=None, sa_type=sa.Text)
    created: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    last_number: int = Field(default=0, description="highest run number handed out")
    deleted_at: datetime | None = Field(default=None, sa_type=Timestamp)


class Run(SQLModel, table=True):
    """One execution with a configuration and results. `number` is its place in its
    experiment ("Run-4"); `source`/`source_id` name the tool and run it was imported from."""

    __tablename__ = "run"
    __table_args__ = (
        sa.UniqueConstraint("experiment_id", "number", name="uq_run_number"),
        sa.Index("ix_run_source", "source", "source_id"),
    )

    id: str = _id_field()
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    number: int
    name: str | None = Field(default=None, max_length=NAME_LENGTH, index=True)
    parent_id: str | None = Field(default=None, foreign_key="run.id", max_length=ID_LENGTH)
    status: str = Field(default="running", max_length=16, index=True)
    started: datetime = Field(default_factory=utcnow, sa_type=Timestamp, index=True)
    ended: datetime | None = Field(default=None, sa_type=Timestamp)
    user: str | None = Field(default=None, max_length=NAME_LENGTH)
    host: str | None = Field(default=None, max_length=NAME_LENGTH)
    pid: int | None = None
    heartbeat: datetime | None = Field(default=None, sa_type=Timestamp)
    git_commit: str | None = Field(default=None, max_length=64)
    git_branch: str | None = Field(default=None, max_length=NAME_LENGTH)
    git_dirty: bool | None = None
    command: str | None = Field(default=None, sa_type=sa.Text)
    context: str | None = Field(
        default=None, sa_type=sa.Text, description="JSON: captured system and git context"
    )
    source: str | None = Field(default=None, max_length=32)
    source_id: str | None = Field(default=None, max_length=NAME_LENGTH)
    deleted_at: datetime | None = Field(default=None, sa_type=Timestamp)


class Param(SQLModel, table=True):
    """A knob of a run, typed: `number` and `bool` values live in `num` (bools as 0/1) so
    they compare numerically; `text` holds strings and JSON, and the text form of every
    value."""

    __tablename__ = "param"
    __table_args__ = (sa.Index("ix_param_key_num", "key", "num"),)

    run_id: str = Field(foreign_key="run.id", primary_key=True, max_length=ID_LENGTH)
    key: str = Field(primary_key=True, max_length=KEY_LENGTH)
    type: str = Field(max_length=8)
    num: float | None = Field(default=None, sa_type=Real)
    text: str | None = Field(default=None, sa_type=sa.Text)


class Metric(SQLModel, table=True):
    """One point of a metric's history: value at a step and a time."""

    __tablename__ = "metric"
    __table_args__ = (sa.Index("ix_metric_run_key_step", "run_id", "key", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", max_length=ID_LENGTH)
    key: str = Field(max_length=KEY_LENGTH)
    step: int = Field(default=0, sa_type=sa.BigInteger)
    timestamp: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    value: float = Field(sa_type=Real)


class MetricSummary(SQLModel, table=True):
    """Per run and metric key: last (at the highest step), first, min, max and count of
    the history, kept up to date on every write so filters never scan the history."""

    __tablename__ = "metric_summary"
    __table_args__ = (sa.Index("ix_metric_summary_key_last", "key", "last"),)

    run_id: str = Field(foreign_key="run.id", primary_key=True, max_length=ID_LENGTH)
    key: str = Field(primary_key=True, max_length=KEY_LENGTH)
    last: float = Field(sa_type=Real)
    last_step: int = Field(sa_type=sa.BigInteger)
    first: float = Field(sa_type=Real)
    min: float = Field(sa_type=Real)
    max: float = Field(sa_type=Real)
    count: int = 0


class Tag(SQLModel, table=True):
    """A label on any entity: `entity_type` is project, experiment, run, asset or
    asset_version, and `entity_id` that entity's id as text."""

    __tablename__ = "tag"
    __table_args__ = (sa.Index("ix_tag_key_value", "key", "value"),)

    entity_type: str = Field(primary_key=True, max_length=16)
    entity_id: str = Field(primary_key=True, max_length=ID_LENGTH)
    key: str = Field(primary_key=True, max_length=KEY_LENGTH)
    value: str | None = Field(default=None, max_length=500)


class Note(SQLModel, table=True):
    """Qualitative context on a run: a person's note (`kind` note) or an event from the
    infrastructure (`kind` event, with `source` naming what raised it)."""

    __tablename__ = "note"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True, max_length=ID_LENGTH)
    time: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    kind: str = Field(default="note", max_length=16)
    author: str | None = Field(default=None, max_length=NAME_LENGTH)
    text: str = Field(sa_type=sa.Text)


class Asset(SQLModel, table=True):
    """A named thing with versions: a dataset, a model, an environment …"""

    __tablename__ = "asset"
    __table_args__ = (sa.UniqueConstraint("project_id", "kind", "name", name="uq_asset_name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    kind: str = Field(max_length=16, index=True)
    name: str = Field(max_length=NAME_LENGTH)
    created: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class AssetVersion(SQLModel, table=True):
    """One immutable content of an asset. The sha256 `digest` decides identity: the same
    content is one version, however many runs log it. `uri` is `blob:` for content in the
    blob store, or an external URI for content referenced without its bytes."""

    __tablename__ = "asset_version"
    __table_args__ = (
        sa.UniqueConstraint("asset_id", "version", name="uq_asset_version"),
        sa.UniqueConstraint("asset_id", "digest", name="uq_asset_digest"),
    )

    id: str = _id_field()
    asset_id: int = Field(foreign_key="asset.id", index=True)
    version: int
    digest: str = Field(max_length=80, index=True)
    size: int | None = Field(default=None, sa_type=sa.BigInteger)
    uri: str = Field(sa_type=sa.Text)
    media_type: str | None = Field(default=None, max_length=128)
    meta: str | None = Field(default=None, sa_type=sa.Text, description="JSON metadata")
    created: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    created_by: str | None = Field(
        default=None, foreign_key="run.id", max_length=ID_LENGTH, index=True
    )


class LineageEdge(SQLModel, table=True):
    """Data flows from `src` to `dst`, each a run or an asset version. `relation` is used
    (version → run), produced (run → version), derived_from (version → version, the
    upstream first) or reproduces (run → run: the original, then its reproduction);
    `role` says how (train, test, base_model …), and `path` where a run read an input
    (relative to the run's working folder), so a reproduction can put it back."""

    __tablename__ = "lineage_edge"
    __table_args__ = (
        sa.UniqueConstraint(
            "src_type", "src_id", "dst_type", "dst_id", "relation", name="uq_lineage_edge"
        ),
        sa.Index("ix_lineage_src", "src_id", "src_type"),
        sa.Index("ix_lineage_dst", "dst_id", "dst_type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    src_type: str = Field(max_length=16)
    src_id: str = Field(max_length=ID_LENGTH)
    dst_type: str = Field(max_length=16)
    dst_id: str = Field(max_length=ID_LENGTH)
    relation: str = Field(max_length=16)
    role: str | None = Field(default=None, max_length=64)
    path: str | None = Field(default=None, sa_type=sa.Text)
    created: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class AssetAlias(SQLModel, table=True):
    """A movable name for one version of an asset (`production` → model:regressor@6), so
    `model:regressor@production` is a reference. Every move is kept in `alias_move`."""

    __tablename__ = "asset_alias"

    asset_id: int = Field(foreign_key="asset.id", primary_key=True)
    alias: str = Field(primary_key=True, max_length=64)
    version_id: str = Field(foreign_key="asset_version.id", max_length=ID_LENGTH, index=True)
    moved: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    author: str | None = Field(default=None, max_length=NAME_LENGTH)
    note: str | None = Field(default=None, sa_type=sa.Text)


class AliasMove(SQLModel, table=True):
    """One move of an alias, kept for good: set to a version (`version_id`, from
    `previous`), or removed (`version_id` null); who moved it, when and why. Versions are
    named by number too, so the history reads the same after a purge."""

    __tablename__ = "alias_move"
    __table_args__ = (sa.Index("ix_alias_move_asset_alias", "asset_id", "alias"),)

    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = Field(foreign_key="asset.id")
    alias: str = Field(max_length=64)
    version_id: str | None = Field(default=None, max_length=ID_LENGTH)
    version: int | None = None
    previous: int | None = None
    time: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    author: str | None = Field(default=None, max_length=NAME_LENGTH)
    note: str | None = Field(default=None, sa_type=sa.Text)


class StoreConfig(SQLModel, table=True):
    """A setting of the store, shared by everyone who records into it: a text value by
    key, e.g. `cost.per_hour.gpu-node-1` = `2.5` (`metastore config set`)."""

    __tablename__ = "store_config"

    key: str = Field(primary_key=True, max_length=KEY_LENGTH)
    value: str = Field(sa_type=sa.Text)
    updated: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class ApiToken(SQLModel, table=True):
    """A token for the metastore server, stored as its sha256 hash only."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=NAME_LENGTH, unique=True)
    token_hash: str = Field(max_length=64, unique=True)
    read_only: bool = False
    created: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    revoked_at: datetime | None = Field(default=None, sa_type=Timestamp)


class AppliedRequest(SQLModel, table=True):
    """A write a metastore server applied, by the client's idempotency key: written in
    the same transaction as the write, so a request repeated after a lost answer (a
    server killed mid-request, a client retrying) is answered again, not applied twice.
    `response` is the answer's JSON (null for an answer that carries nothing). Keys older
    than three days are deleted."""

    __tablename__ = "applied_request"

    key: str = Field(primary_key=True, max_length=64)
    route: str = Field(max_length=64)
    applied: datetime = Field(default_factory=utcnow, sa_type=Timestamp, index=True)
    response: str | None = Field(default=None, sa_type=sa.Text)


TABLES = [
    Project,
    Experiment,
    Run,
    Param,
    Metric,
    MetricSummary,
    Tag,
    Note,
    Asset,
    AssetVersion,
    LineageEdge,
    AssetAlias,
    AliasMove,
    StoreConfig,
    ApiToken,
    AppliedRequest,
]

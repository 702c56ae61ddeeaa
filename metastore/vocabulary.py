"""The meta-model's fixed words (run statuses, asset kinds, relations …) and the schema
revision this code expects: plain constants, so the code that only needs the words
(the query compiler, the quick SQLite reader) does not load the tables
(`metastore.models`, SQLModel, SQLAlchemy) to get them."""

RUN_STATUSES = ("running", "finished", "failed", "killed", "crashed")
ASSET_KINDS = (
    "dataset",
    "model",
    "code",
    "environment",
    "config",
    "feature_set",
    "prediction",
    "plot",
    "log",
    "notebook",
    "other",
)
RELATIONS = ("used", "produced", "derived_from", "reproduces")
NODE_TYPES = ("run", "asset_version")
PARAM_TYPES = ("number", "text", "bool", "json")

#: The Alembic revision this code expects; a test checks it is the migrations' head.
SCHEMA_REVISION = "0006"

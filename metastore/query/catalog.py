"""The catalog: the keys a query can name in one store (metrics, params, tags).

Its own small module because running a query needs it before anything is compiled
(it is part of a compiled query's cache key, `query/cache.py`), and the compiler's
modules are the costly part of a cold start.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Catalog:
    """The keys that exist in a store; `open` when there is no store to ask."""

    metrics: frozenset[str] = frozenset()
    params: frozenset[str] = frozenset()
    tags: dict[str, frozenset[str]] = field(default_factory=dict)  # entity type -> keys
    open: bool = False
    #: The database keeps the note index where its dialect has one (metastore.fulltext):
    #: false for a SQLite store made where SQLite had no FTS5.
    fulltext: bool = True

    def key(self) -> tuple:
        """Hashable identity, for caching compiled queries (in memory and on disk:
        everything a compiled query depends on belongs here)."""
        return (self.open, self.metrics, self.params, frozenset(self.tags.items()), self.fulltext)

    def tag_keys(self, rows: str) -> frozenset[str]:
        entity = {"run": "run", "experiment": "experiment", "version": "asset_version", "node": "run",
                  "note": "run"}
        keys = self.tags.get(entity[rows], frozenset())
        if rows == "node":
            keys = keys | self.tags.get("asset_version", frozenset())
        return keys


OPEN_CATALOG = Catalog(open=True)

"""Word search in notes (`text matches "diverged epoch"`): what a word is, and the index
each database keeps of the words of every note.

A word is a run of letters and digits; everything else separates words, and case does
not count. "1e-3 diverged after epoch-8" holds the words 1e, 3, diverged, after, epoch
and 8. `matches` asks for every word of its pattern (a word ending in `*` for any word
that starts so). The same definition is answered three ways, with the same rows:

- SQLite: an FTS5 table (`note_fts`, external content over `note`, the unicode61
  tokenizer keeping diacritics) kept in step with `note` by triggers, so every write
  path (Python, importers, the server) updates it in the same transaction;
- PostgreSQL: a GIN index on the note's words as a tsvector (`WORDS_TSVECTOR`): the
  text split here on non-alphanumerics rather than by PostgreSQL's own parser, which
  keeps "epoch-8" or "path/to/x.csv" whole and would disagree with the other databases;
- elsewhere (MySQL/MariaDB, a SQLite built without FTS5): a regular expression per word,
  reading every note of the runs in scope.

The migration that builds the indexes (0006) and the query compiler both take their
SQL from here.
"""

from __future__ import annotations

import re

#: A word of a pattern, and whether it ends in `*` (a prefix).
_PATTERN_WORD = re.compile(r"([^\W_]+)(\*?)")

NOTE_FTS = "note_fts"

#: The words of a note's text as a tsvector; the index and the queries spell it alike,
#: so PostgreSQL uses the index.
WORDS_TSVECTOR = (
    "array_to_tsvector(array_remove(regexp_split_to_array(lower(text), '[^[:alnum:]]+'), ''))"
)
PG_INDEX = "ix_note_words"

SQLITE_CREATE = [
    f"CREATE VIRTUAL TABLE {NOTE_FTS} USING fts5(text, content='note', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 0')",
    # external content: the index is told what each row held before a change
    f"CREATE TRIGGER {NOTE_FTS}_insert AFTER INSERT ON note BEGIN "
    f"INSERT INTO {NOTE_FTS}(rowid, text) VALUES (new.id, new.text); END",
    f"CREATE TRIGGER {NOTE_FTS}_delete AFTER DELETE ON note BEGIN "
    f"INSERT INTO {NOTE_FTS}({NOTE_FTS}, rowid, text) VALUES ('delete', old.id, old.text); END",
    f"CREATE TRIGGER {NOTE_FTS}_update AFTER UPDATE OF text ON note BEGIN "
    f"INSERT INTO {NOTE_FTS}({NOTE_FTS}, rowid, text) VALUES ('delete', old.id, old.text); "
    f"INSERT INTO {NOTE_FTS}(rowid, text) VALUES (new.id, new.text); END",
    f"INSERT INTO {NOTE_FTS}({NOTE_FTS}) VALUES ('rebuild')",  # the notes already there
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {NOTE_FTS}_insert",
    f"DROP TRIGGER IF EXISTS {NOTE_FTS}_delete",
    f"DROP TRIGGER IF EXISTS {NOTE_FTS}_update",
    f"DROP TABLE IF EXISTS {NOTE_FTS}",
]
PG_CREATE = [f"CREATE INDEX {PG_INDEX} ON note USING gin ({WORDS_TSVECTOR})"]
PG_DROP = [f"DROP INDEX IF EXISTS {PG_INDEX}"]


def is_note_index(name: str, type_: str) -> bool:
    """A table (SQLite FTS5's) or index (PostgreSQL's) of the note index: the migration
    makes them, not the models, so comparing the schema with the models skips them."""
    if type_ == "table":
        return name == NOTE_FTS or name.startswith(f"{NOTE_FTS}_")
    return type_ == "index" and name == PG_INDEX


def pattern_words(pattern: str) -> list[tuple[str, bool]]:
    """The words a pattern asks for, lower-cased, each with whether it is a prefix."""
    return [(w.lower(), star == "*") for w, star in _PATTERN_WORD.findall(pattern)]


def fts5_query(words: list[tuple[str, bool]]) -> str:
    """An FTS5 MATCH expression asking for every word (words are letters and digits, so
    quoting them is enough to keep FTS5's own syntax out)."""
    return " AND ".join(f'"{w}"' + ("*" if prefix else "") for w, prefix in words)


def tsquery(words: list[tuple[str, bool]]) -> str:
    """A tsquery (cast from text, so no parser changes the words) asking for every word."""
    return " & ".join(f"'{w}'" + (":*" if prefix else "") for w, prefix in words)


def word_regex(word: str, prefix: bool) -> str:
    """A regular expression (RE2, PCRE and ICU alike) finding `word` as a whole word, or
    as the start of one, in any case."""
    end = "" if prefix else r"([^\pL\pN]|$)"
    return r"(?i)(^|[^\pL\pN])" + re.escape(word) + end

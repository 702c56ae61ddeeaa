"""QueryError: every way a query can fail, with the place it failed.

The attributes (message, line, column, length, caret, suggestion) are what the CLI and
the web UI show; `str()` gives the whole picture in a few lines:

    unknown field 'rsme'
      runs where rsme < 55
                 ^^^^
      hint: did you mean 'rmse'?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from metastore.errors import MetastoreError


class QueryError(MetastoreError):
    """A query that cannot be parsed, resolved, compiled or run."""

    def __init__(
        self,
        message: str,
        *,
        text: str = "",
        line: int | None = None,
        column: int | None = None,
        length: int = 1,
        suggestion: str | None = None,
    ):
        self.text = text
        self.line = line
        self.column = column
        self.length = max(1, length)
        self.suggestion = suggestion
        super().__init__(message, hint=suggestion)

    @property
    def source_line(self) -> str:
        """The line of the query the error is on."""
        if self.line is None or not self.text:
            return ""
        lines = self.text.splitlines() or [""]
        return lines[self.line - 1] if 0 < self.line <= len(lines) else ""

    @property
    def caret(self) -> str:
        """The query line with a caret line under the failing place."""
        if self.line is None or self.column is None or not self.text:
            return ""
        line = self.source_line
        width = max(1, min(self.length, len(line) - self.column + 1))
        return f"{line}\n{' ' * (self.column - 1)}{'^' * width}"

    def to_dict(self) -> dict:
        return {
            "error": "QueryError",
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "length": self.length,
            "caret": self.caret,
            "suggestion": self.suggestion,
        }

    def __str__(self) -> str:
        parts = [self.message]
        if self.caret:
            parts.extend("  " + x for x in self.caret.split("\n"))
        if self.suggestion:
            parts.append(f"  hint: {self.suggestion}")
        return "\n".join(parts)


def at(message: str, text: str, pos, suggestion: str | None = None) -> QueryError:
    """A QueryError pointing at an AST position."""
    if pos is None:
        return QueryError(message, text=text, suggestion=suggestion)
    return QueryError(
        message,
        text=text,
        line=pos.line,
        column=pos.column,
        length=max(1, pos.end - pos.start),
        suggestion=suggestion,
    )


def closest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    candidates = list(dict.fromkeys(candidates))
    found = difflib.get_close_matches(word, candidates, n=n, cutoff=0.6)
    if not found:
        lower = {c.lower(): c for c in candidates}
        found = [lower[c] for c in difflib.get_close_matches(word.lower(), lower, n=n, cutoff=0.6)]
    return found


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    found = closest(word, candidates)
    if not found:
        return None
    return "did you mean " + " or ".join(repr(c) for c in found) + "?"

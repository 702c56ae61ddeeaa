"""Every query written in docs/query-language.md runs on the demo's runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metastore.query import QueryError

DOC = Path(__file__).resolve().parents[2] / "docs" / "query-language.md"
SHOWN_AS_ERRORS = {"runs where algorithm = linear"}
SOURCES = ("runs", "models", "datasets", "assets", "experiments", "upstream of", "downstream of")


def doc_queries() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    found = []
    fence = None  # the language of the open code block, "" for a plain one
    for line in text.splitlines():
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
            continue
        if fence == "":
            line = re.sub(r"\s+--.*$", "", line).strip()
            if line.startswith(SOURCES):
                found.append(line)
    for cell in re.findall(r"`([^`\n]+)`", text):
        if re.match(r"(runs|models|datasets|assets|experiments|upstream of|downstream of) ", cell) and (
            "REF" not in cell and "…" not in cell
        ):
            found.append(cell)
    return list(dict.fromkeys(found))


def test_the_doc_has_the_examples():
    queries = doc_queries()
    assert len(queries) > 25
    assert "runs order by rmse limit 1 show number, rmse" in queries


def test_every_documented_query_runs(demo_store):
    # what the examples mention beyond the demo: a base model and its descendants
    with demo_store.start_run(experiment="ft", capture=False) as run:
        base = run.log_asset(b"base", kind="model", name="base")
    with demo_store.start_run(experiment="ft", capture=False) as run:
        run.log_metrics({"rmse": 44.0, "train/loss": 0.05})
        run.log_asset(b"tuned", kind="model", name="tuned", derived_from=[base])
    failures = []
    for text in doc_queries():
        if text in SHOWN_AS_ERRORS:
            with pytest.raises(QueryError):
                demo_store.query(text)
            continue
        try:
            demo_store.query(text, experiment="diabetes" if "run 4" in text or "run 5" in text else None)
        except Exception as e:  # noqa: BLE001 - report them all
            failures.append(f"{text}\n    {e}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "text",
    [
        "runs where `train/loss`.min < 0.1",
        "runs where metrics.`val loss` > 1",
        "runs where `system.wall_time` > 0",
    ],
)
def test_backtick_examples(sqlite_store, text):
    with sqlite_store.start_run(experiment="x", capture=False) as run:
        run.log_metrics({"train/loss": 0.05, "val loss": 2.0, "system.wall_time": 1.0})
    assert len(sqlite_store.query(text)) == 1

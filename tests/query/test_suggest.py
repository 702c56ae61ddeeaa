"""What the query box and the shell suggest while a query is typed (query/suggest.py)."""

from __future__ import annotations

from metastore.query.suggest import suggest

VOCABULARY = [("lr", "param"), ("algorithm", "param"), ("rmse", "metric"), ("train/loss", "metric"),
              ("team", "tag")]
REFS = ["diabetes#1", "diabetes#2", "model:regressor@1", "model:regressor@production"]


def texts(typed: str, cursor: int | None = None) -> list[str]:
    found = suggest(typed, cursor, VOCABULARY, refs=lambda w: [(r, "") for r in REFS if r.startswith(w)])
    return [typed[: found.start] + s.text for s in found.items]


def words(typed: str) -> list[str]:
    found = suggest(typed, None, VOCABULARY)
    return [s.text for s in found.items]


def test_sources_first():
    assert texts("") [:3] == ["runs", "experiments", "notes"]
    assert texts("mo") == ["models"]
    assert texts("up") == ["upstream of"]


def test_field_names_from_the_store_then_attributes():
    assert words("runs where ")[:5] == ["rmse", "`train/loss`", "lr", "algorithm", "team"]
    assert texts("runs where r") == ["runs where rmse", "runs where ref"]
    assert texts("runs where `tr") == ["runs where `train/loss`"]
    assert texts("runs where metrics.") == ["runs where metrics.rmse", "runs where metrics.`train/loss`"]
    assert texts("runs where params.a") == ["runs where params.algorithm"]
    # attributes are the source's: a note's text, an experiment's description
    assert "text" in words("notes where ") and "text" not in words("runs where ")
    assert words("experiments where d") == ["description"]
    assert "rmse" not in words("experiments where ")  # experiments have no metrics


def test_history_suffixes():
    assert texts("runs where rmse.m") == ["runs where rmse.min", "runs where rmse.max", "runs where rmse.mean"]
    assert texts("runs where `train/loss`.la") == ["runs where `train/loss`.last", "runs where `train/loss`.last_step"]


def test_operators_keywords_and_functions():
    assert texts("runs where note ma") == ["runs where note matches"]
    assert "contains" in words("runs where note ")
    assert texts("runs where rmse <") == ["runs where rmse <="]
    assert words("runs ") == ["order by", "group by", "show", "limit", "where"]
    assert words("runs where rmse < 50 ")[:2] == ["and", "or"]
    assert texts("runs where rmse < 50 order ") == ["runs where rmse < 50 order by"]
    assert "desc" in words("runs order by rmse ")
    assert texts("runs group by c") == ["runs group by commit", "runs group by command", "runs group by config",
                                        "runs group by coalesce(", "runs group by count("]
    assert "mean(" in words("runs group by algorithm show ")
    assert "mean(" not in words("runs where ")
    assert texts("runs where alpha is ") == ["runs where alpha is null", "runs where alpha is not null"]


def test_references_after_lineage_words():
    assert texts("runs where uses mod") == ["runs where uses model:regressor@1",
                                            "runs where uses model:regressor@production"]
    assert texts("upstream of dia") == ["upstream of diabetes#1", "upstream of diabetes#2"]
    assert texts("runs where produced ")[0] == "runs where produced by"
    assert texts("models where used ") == ["models where used by"]


def test_nothing_inside_a_string_and_the_cursor_counts():
    assert texts('runs where algorithm = "li') == []
    assert texts("runs where rm and lr > 1", cursor=len("runs where rm")) == ["runs where rmse"]
    assert suggest("runs where rm and lr > 1", len("runs where rm")).start == len("runs where ")

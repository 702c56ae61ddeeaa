"""Documentation tested against the code: the README's example runs as written, and
every doc page the README links to exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_example_runs(chdir_tmp, capsys):
    [block] = python_blocks(REPO / "README.md")
    exec(compile(block, "README.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["diabetes#1", "linear", "53.1", "model:regressor@1"]


def test_readme_example_in_the_demo_folder_prints_the_run_it_recorded(
        demo_store, capsys, monkeypatch):
    """Run where `metastore demo` ran, the example records run 13 and says so (it used to
    print the demo's run 1 as if it were the new one)."""
    folder = Path(demo_store.url.removeprefix("sqlite:///")).parent.parent
    monkeypatch.chdir(folder)
    monkeypatch.delenv("METASTORE_URL", raising=False)
    monkeypatch.delenv("METASTORE_BLOBS", raising=False)
    [block] = python_blocks(REPO / "README.md")
    exec(compile(block, "README.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["diabetes#13", "linear", "53.1", "model:regressor@13"]


def test_readme_links_resolve():
    text = (REPO / "README.md").read_text()
    for target in re.findall(r"\]\(((?:docs|schema)/[^)#]+)\)", text):
        assert (REPO / target).exists(), f"README links to missing {target}"


def test_readme_gives_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert "metastore demo" in text and "python -m pytest" in text
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest" in ci

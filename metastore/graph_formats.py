"""Lineage graphs written out: GraphML and node-link JSON (through networkx), Graphviz
DOT, Mermaid (renders in Markdown on GitHub and in most editors) and a text tree.

Every writer takes the `networkx.DiGraph` that `store.lineage()` returns and gives text.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable

import networkx as nx

from metastore.errors import InvalidValue

FORMATS = ("text", "json", "graphml", "dot", "mermaid")


def render(graph: nx.DiGraph, fmt: str) -> str:
    """The graph in one of FORMATS."""
    writers: dict[str, Callable[[nx.DiGraph], str]] = {
        "text": to_text,
        "json": to_json,
        "graphml": to_graphml,
        "dot": to_dot,
        "mermaid": to_mermaid,
    }
    if fmt not in writers:
        raise InvalidValue(f"unknown graph format {fmt!r}", hint=f"one of: {', '.join(FORMATS)}")
    return writers[fmt](graph)


# -- networkx formats ---------------------------------------------------------------------


def to_json(graph: nx.DiGraph) -> str:
    """Node-link JSON (`networkx.node_link_data`): nodes are keyed by their "label"
    (nodes also carry the database "id"), edges are under "edges" with source/target."""
    data = nx.node_link_data(graph, edges="edges", name="label")
    return json.dumps(data, indent=2, default=str) + "\n"


def from_json(text: str | dict) -> nx.DiGraph:
    """The graph back from `to_json` output (e.g. a server's answer)."""
    data = json.loads(text) if isinstance(text, str) else text
    graph = nx.node_link_graph(data, directed=True, edges="edges", name="label")
    for key in graph:
        graph.nodes[key]["label"] = key
    return graph


def to_graphml(graph: nx.DiGraph) -> str:
    """GraphML. GraphML has no null, so missing values are left out; lists become JSON."""
    clean = nx.DiGraph()
    clean.graph.update(_scalars(graph.graph))
    for key, data in graph.nodes(data=True):
        clean.add_node(key, **_scalars(data))
    for u, v, data in graph.edges(data=True):
        clean.add_edge(u, v, **_scalars(data))
    buffer = io.BytesIO()
    nx.write_graphml(clean, buffer, encoding="utf-8")
    return buffer.getvalue().decode("utf-8")


def _scalars(data: dict) -> dict:
    out = {}
    for k, v in data.items():
        if v is None:
            continue
        out[k] = v if isinstance(v, str | int | float | bool) else json.dumps(v, default=str)
    return out


# -- Graphviz and Mermaid -----------------------------------------------------------------

_DOT_SHAPES = {"run": "box", "dataset": "cylinder", "model": "hexagon", "code": "note",
               "environment": "component"}


def _title(data: dict) -> str:
    """A node's display text: its label, and a run's name when it has one."""
    if data.get("kind") == "run" and data.get("name"):
        return f"{data['label']} ({data['name']})"
    return data.get("label") or ""


def _edge_text(data: dict) -> str:
    relation, role = data.get("relation") or "", data.get("role")
    return f"{relation} ({role})" if role else relation


def to_dot(graph: nx.DiGraph) -> str:
    """Graphviz DOT: `dot -Tsvg lineage.dot > lineage.svg`."""
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    roots = set(graph.graph.get("roots") or ())
    for key, data in graph.nodes(data=True):
        shape = _DOT_SHAPES.get(data.get("kind"), "ellipse")
        style = ', style="rounded,bold"' if key in roots else (
            ', style="rounded"' if shape == "box" else "")
        lines.append(f"  {_dot_id(key)} [label={_dot_id(_title(data))}, shape={shape}{style}];")
    for u, v, data in graph.edges(data=True):
        lines.append(f"  {_dot_id(u)} -> {_dot_id(v)} [label={_dot_id(_edge_text(data))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_MERMAID_SHAPES = {"run": ("(", ")"), "dataset": ("[(", ")]"), "model": ("{{", "}}"),
                   "code": ("[/", "/]"), "environment": ("[[", "]]")}


def to_mermaid(graph: nx.DiGraph) -> str:
    """A Mermaid flowchart; put it in a ```mermaid block of a Markdown file."""
    ids = {key: f"n{i}" for i, key in enumerate(graph)}
    lines = ["flowchart LR"]
    for key, data in graph.nodes(data=True):
        left, right = _MERMAID_SHAPES.get(data.get("kind"), ("[", "]"))
        lines.append(f"  {ids[key]}{left}{_mermaid_text(_title(data))}{right}")
    for u, v, data in graph.edges(data=True):
        text = _edge_text(data)
        arrow = f"-->|{_mermaid_text(text)}|" if text else "-->"
        lines.append(f"  {ids[u]} {arrow} {ids[v]}")
    roots = [ids[k] for k in graph.graph.get("roots") or () if k in ids]
    if roots:
        lines.append("  classDef root stroke-width:3px")
        lines.append(f"  class {','.join(roots)} root")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    # Quoted text may hold any character but a double quote, which Mermaid escapes as
    # an entity code.
    return '"' + str(text).replace('"', "#quot;").replace("\n", " ") + '"'


# -- text tree ----------------------------------------------------------------------------


def to_text(graph: nx.DiGraph) -> str:
    """An indented tree from each root: upstream shows what each node came from,
    downstream what it fed. A node met again is shown once more, marked, not expanded."""
    roots = [r for r in graph.graph.get("roots") or () if r in graph] or [
        k for k in graph if graph.in_degree(k) == 0
    ]
    direction = graph.graph.get("direction") or "upstream"
    sections = []
    for root in roots:
        if direction in ("upstream", "both", "path"):
            sections.append(_tree(graph, root, upstream=direction != "path", title="upstream"
                                  if direction == "both" else None))
        if direction in ("downstream", "both"):
            sections.append(_tree(graph, root, upstream=False, title="downstream"
                                  if direction == "both" else None))
    return "\n".join(s for s in sections if s)


def _tree(graph: nx.DiGraph, root: str, upstream: bool, title: str | None) -> str:
    def children(key: str) -> list[tuple[str, dict]]:
        if upstream:
            pairs = [(u, graph.edges[u, key]) for u in graph.predecessors(key)]
        else:
            pairs = [(v, graph.edges[key, v]) for v in graph.successors(key)]
        return sorted(pairs, key=lambda p: (_kind_order(graph.nodes[p[0]]), _natural(p[0])))

    lines = [_node_line(graph.nodes[root]) + (f"  [{title}]" if title else "")]
    seen = {root}

    def visit(key: str, prefix: str) -> None:
        items = children(key)
        for i, (child, edge) in enumerate(items):
            last = i == len(items) - 1
            arrow = "<-" if upstream else "->"
            how = _edge_text(edge)
            again = child in seen
            lines.append(
                f"{prefix}{'└── ' if last else '├── '}{arrow} {how}: "
                f"{_node_line(graph.nodes[child])}{'  (see above)' if again else ''}"
            )
            if not again:
                seen.add(child)
                visit(child, prefix + ("    " if last else "│   "))

    visit(root, "")
    if len(lines) == 1:
        lines.append(f"  (nothing {'upstream' if upstream else 'downstream'})")
    return "\n".join(lines) + "\n"


def _natural(text: str) -> list:
    """Sort key putting diabetes#2 before diabetes#10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _kind_order(data: dict) -> tuple:
    order = ["run", "dataset", "code", "environment", "model"]
    kind = data.get("kind")
    return (order.index(kind) if kind in order else len(order), kind or "")


def _node_line(data: dict) -> str:
    if data.get("kind") == "run":
        name = f" {data['name']}" if data.get("name") else ""
        return f"run {data['label']}{name} [{data.get('status')}]"
    digest = (data.get("digest") or "")[:12]
    return f"{data.get('label')} {digest}".rstrip()

"""Lineage graphs drawn as SVG on the server from a layered (Sugiyama-style) layout.

Data flows left to right: a node sits one column left of the nearest thing it feeds
(sources as late as they can, so an environment used by a run sits next to that run),
and every other node one column right of its furthest input. An edge that spans several
columns passes through a reserved slot in each column between, so it never runs behind
a box. Within a column, nodes are ordered by the mean position of their neighbours (a
few barycentre sweeps, networkx doing the graph work) to keep edges from crossing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from html import escape

import networkx as nx
from markupsafe import Markup

NODE_W, NODE_H = 196, 46
DUMMY_H = 14
COL_GAP, ROW_GAP = 84, 18
MARGIN = 16
# Beyond this many edges, role labels pile up into noise; each edge's <title> keeps it.
MAX_LABELLED_EDGES = 16

KIND_CLASS = {"run": "run", "model": "model", "dataset": "dataset"}


def node_kind(attrs: dict) -> str:
    return str(attrs.get("kind") or "other")


def _layers(g: nx.DiGraph) -> dict[Hashable, int]:
    if not nx.is_directed_acyclic_graph(g):  # lineage refuses cycles; degrade anyway
        return {n: i for i, n in enumerate(g.nodes)}
    layer: dict[Hashable, int] = {}
    for n in nx.topological_sort(g):
        layer[n] = max((layer[p] + 1 for p in g.predecessors(n)), default=0)
    for n in reversed(list(nx.topological_sort(g))):
        succ = [layer[s] for s in g.successors(n)]
        if succ and not any(True for _ in g.predecessors(n)):
            layer[n] = min(succ) - 1
    return layer


def _with_dummies(g: nx.DiGraph, layer: dict) -> tuple[nx.DiGraph, dict, dict]:
    """A copy where each edge spanning k > 1 columns is a chain through k - 1 dummies."""
    h = nx.DiGraph()
    h.add_nodes_from(g.nodes)
    chains: dict[tuple, list] = {}
    lay = dict(layer)
    for u, v in g.edges:
        chain = [u]
        for i in range(layer[u] + 1, layer[v]):
            d = ("__dummy__", u, v, i)
            lay[d] = i
            chain.append(d)
        chain.append(v)
        nx.add_path(h, chain)
        chains[(u, v)] = chain
    return h, lay, chains


def _order(h: nx.DiGraph, lay: dict, g: nx.DiGraph) -> list[list]:
    columns: list[list] = [[] for _ in range(max(lay.values()) + 1)]
    for n in h.nodes:
        columns[lay[n]].append(n)

    def name(n):
        if isinstance(n, tuple) and n and n[0] == "__dummy__":
            return ("~", str(n), 0, "")
        a = g.nodes[n]
        return (node_kind(a), str(a.get("experiment") or a.get("name") or ""),
                a.get("number") or a.get("version") or 0, str(a.get("label", n)))

    for col in columns:
        col.sort(key=name)
    index = {n: i for col in columns for i, n in enumerate(col)}
    for _sweep in range(4):
        for col in columns[1:] + columns[-2::-1]:

            def centre(n, col=col):
                near = [index[m] for m in (*h.predecessors(n), *h.successors(n))]
                return sum(near) / len(near) if near else index[n]

            col.sort(key=centre)
            index.update({n: i for i, n in enumerate(col)})
    return columns


def _height(n) -> float:
    return DUMMY_H if isinstance(n, tuple) and n and n[0] == "__dummy__" else NODE_H


def _place(columns: list[list]) -> dict:
    sizes = [sum(_height(n) + ROW_GAP for n in col) for col in columns]
    tallest = max(sizes)
    pos = {}
    for i, col in enumerate(columns):
        y = MARGIN + (tallest - sizes[i]) / 2
        for n in col:
            pos[n] = (MARGIN + i * (NODE_W + COL_GAP), y)
            y += _height(n) + ROW_GAP
    return pos


def layout(g: nx.DiGraph) -> dict[Hashable, tuple[float, float]]:
    """Top-left corner of each node's box, in pixels."""
    return {n: p for n, p in _full_layout(g)[0].items() if n in g}


def _full_layout(g: nx.DiGraph):
    h, lay, chains = _with_dummies(g, _layers(g))
    return _place(_order(h, lay, g)), chains


def _edge_path(chain: list, pos: dict) -> tuple[str, tuple[float, float]]:
    """An SVG path through the chain's slots, and a point for the edge's label (in the
    gap before the target, where no box is)."""
    def port_out(n):
        x, y = pos[n]
        return x + NODE_W, y + _height(n) / 2

    def port_in(n):
        x, y = pos[n]
        return x, y + _height(n) / 2

    sx, sy = port_out(chain[0])
    d = [f"M {sx:.1f} {sy:.1f}"]
    last = len(chain) - 1
    for i, n in enumerate(chain[1:], 1):
        tx, ty = port_in(n)
        if i == last:
            tx -= 2
        bend = max((tx - sx) / 2, 30)
        d.append(f"C {sx + bend:.1f} {sy:.1f}, {tx - bend:.1f} {ty:.1f}, {tx:.1f} {ty:.1f}")
        label_at = ((sx + tx) / 2, (sy + ty) / 2 - 4)
        if i != last:  # straight through the dummy's slot
            sx, sy = port_out(n)
            d.append(f"L {sx:.1f} {sy:.1f}")
    return " ".join(d), label_at


def draw(
    g: nx.DiGraph,
    href: Callable[[dict], str | None],
    focus: Hashable | None = None,
) -> Markup:
    """The graph as inline SVG; every node is a link to its page."""
    if g.number_of_nodes() == 0:
        return Markup('<p class="muted">no lineage recorded</p>')
    full, chains = _full_layout(g)
    pos = {n: p for n, p in full.items() if n in g}
    width = max(x for x, _ in full.values()) + NODE_W + MARGIN
    height = max(y + _height(n) for n, (_, y) in full.items()) + MARGIN
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'class="arrowhead"/></marker></defs>'
    ]
    for u, v, attrs in g.edges(data=True):
        d, (lx, ly) = _edge_path(chains[(u, v)], full)
        what = " ".join(str(attrs[k]) for k in ("relation", "role") if attrs.get(k))
        body.append(
            f'<path class="edge" d="{d}" marker-end="url(#arrow)">'
            f"<title>{escape(what)}</title></path>"
        )
        if attrs.get("role") and g.number_of_edges() <= MAX_LABELLED_EDGES:
            body.append(
                f'<text class="edge-label" x="{lx:.1f}" y="{ly:.1f}" '
                f'text-anchor="middle">{escape(str(attrs["role"]))}</text>'
            )
    for n, attrs in g.nodes(data=True):
        x, y = pos[n]
        kind = node_kind(attrs)
        label = _title(attrs, n)
        sub = _subtitle(attrs)
        cls = f"node {KIND_CLASS.get(kind, 'asset')}" + (" focus" if n == focus else "")
        box = (
            f'<g class="{cls}" data-node="{escape(str(n))}">'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
            f'<text class="node-label" x="{x + 12:.1f}" y="{y + 19:.1f}">'
            f"{escape(_fit(label, 26))}</text>"
            f'<text class="node-kind" x="{x + 12:.1f}" y="{y + 35:.1f}">{escape(_fit(sub, 30))}</text>'
            f"<title>{escape(label)} ({escape(kind)})</title></g>"
        )
        link = href(attrs | {"node": n})
        body.append(f'<a href="{escape(link)}">{box}</a>' if link else box)
    return Markup(
        f'<svg class="lineage" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img" aria-label="lineage graph" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _title(attrs: dict, key) -> str:
    """"diabetes #4" for a run, "regressor v3" for a version, else the node's label."""
    if attrs.get("kind") == "run" and attrs.get("number") is not None:
        return f"{attrs.get('experiment', '')} #{attrs['number']}".strip()
    if attrs.get("name") and attrs.get("version") is not None:
        return f"{attrs['name']} v{attrs['version']}"
    return str(attrs.get("label") or key)


def _subtitle(attrs: dict) -> str:
    kind = node_kind(attrs)
    if kind == "run":
        extra = attrs.get("name") or attrs.get("status")
    else:
        extra = str(attrs.get("digest") or "").split(":", 1)[-1][:10]
    return f"{kind} · {extra}" if extra else kind


def _fit(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"

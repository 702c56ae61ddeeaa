"""Lineage graphs drawn as SVG on the server, from a networkx layout.

Data flows left to right: each node sits in the column of its longest path from a
source (a topological generation), so inputs are left of the run that used them and
outputs right of it. Within a column, nodes are ordered by the mean position of their
neighbours (a few barycentre sweeps) to keep edges from crossing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from html import escape

import networkx as nx
from markupsafe import Markup

NODE_W, NODE_H = 196, 46
COL_GAP, ROW_GAP = 84, 18
MARGIN = 16

KIND_CLASS = {"run": "run", "model": "model", "dataset": "dataset"}


def node_kind(attrs: dict) -> str:
    return str(attrs.get("kind") or "other")


def _columns(g: nx.DiGraph) -> list[list[Hashable]]:
    if nx.is_directed_acyclic_graph(g):
        layers = [list(layer) for layer in nx.topological_generations(g)]
    else:  # lineage is acyclic by construction; degrade gracefully anyway
        layers = [list(g.nodes)]
    for layer in layers:
        layer.sort(key=lambda n: (node_kind(g.nodes[n]), str(g.nodes[n].get("label", n))))
    index = {}
    for _sweep in range(4):
        for layer in layers:
            index.update({n: i for i, n in enumerate(layer)})
        for layer in layers[1:] + layers[-2::-1]:

            def centre(n, layer=layer):
                near = [index[m] for m in (*g.predecessors(n), *g.successors(n)) if m in index]
                return sum(near) / len(near) if near else index[n]

            layer.sort(key=centre)
            index.update({n: i for i, n in enumerate(layer)})
    return layers


def layout(g: nx.DiGraph) -> dict[Hashable, tuple[float, float]]:
    """Top-left corner of each node's box, in pixels."""
    layers = _columns(g)
    ordered = nx.DiGraph()
    for i, layer in enumerate(layers):
        for n in layer:
            ordered.add_node(n, layer=i)
    pos = nx.multipartite_layout(ordered, subset_key="layer", align="vertical", scale=1.0)
    tallest = max(len(layer) for layer in layers)
    height = tallest * (NODE_H + ROW_GAP)
    out = {}
    for i, layer in enumerate(layers):
        # multipartite_layout centres every column on the same midline; keep its order
        # and spacing but in pixels, one row per node
        ys = sorted(pos[n][1] for n in layer)
        offset = (height - len(layer) * (NODE_H + ROW_GAP)) / 2
        for n in layer:
            row = len(layer) - 1 - ys.index(pos[n][1]) if len(layer) > 1 else 0
            out[n] = (
                MARGIN + i * (NODE_W + COL_GAP),
                MARGIN + offset + row * (NODE_H + ROW_GAP),
            )
    return out


def draw(
    g: nx.DiGraph,
    href: Callable[[dict], str | None],
    focus: Hashable | None = None,
) -> Markup:
    """The graph as inline SVG; every node is a link to its page."""
    if g.number_of_nodes() == 0:
        return Markup('<p class="muted">no lineage recorded</p>')
    pos = layout(g)
    width = max(x for x, _ in pos.values()) + NODE_W + MARGIN
    height = max(y for _, y in pos.values()) + NODE_H + MARGIN
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'class="arrowhead"/></marker></defs>'
    ]
    for u, v, attrs in g.edges(data=True):
        (x1, y1), (x2, y2) = pos[u], pos[v]
        sx, sy = x1 + NODE_W, y1 + NODE_H / 2
        tx, ty = x2 - 2, y2 + NODE_H / 2
        bend = max((tx - sx) / 2, 30)
        what = " ".join(str(attrs[k]) for k in ("relation", "role") if attrs.get(k))
        body.append(
            f'<path class="edge" d="M {sx:.1f} {sy:.1f} C {sx + bend:.1f} {sy:.1f}, '
            f'{tx - bend:.1f} {ty:.1f}, {tx:.1f} {ty:.1f}" marker-end="url(#arrow)">'
            f"<title>{escape(what)}</title></path>"
        )
        if attrs.get("role"):
            body.append(
                f'<text class="edge-label" x="{(sx + tx) / 2:.1f}" y="{(sy + ty) / 2 - 4:.1f}" '
                f'text-anchor="middle">{escape(str(attrs["role"]))}</text>'
            )
    for n, attrs in g.nodes(data=True):
        x, y = pos[n]
        kind = node_kind(attrs)
        label = str(attrs.get("label") or n)
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


def _subtitle(attrs: dict) -> str:
    kind = node_kind(attrs)
    extra = attrs.get("status") if kind == "run" else attrs.get("digest")
    if kind != "run" and extra:
        extra = str(extra).split(":", 1)[-1][:10]
    return f"{kind} · {extra}" if extra else kind


def _fit(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"

"""Server-side SVG: charts and lineage graphs are well-formed, escaped and laid out so
data flows left to right."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import networkx as nx

from metastore.server.ui import charts, format, graph

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))


def test_nice_ticks_cover_the_range_with_round_steps():
    ticks = charts.nice_ticks(53.89, 69.16, 5)
    assert ticks[0] <= 53.89 and ticks[-1] >= 69.16
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1 and steps.pop() in (2.0, 2.5, 5.0)
    assert charts.nice_ticks(3.0, 3.0)  # a flat series still gets an axis


def test_line_chart_is_valid_svg_with_one_line_per_series_and_escaped_labels():
    svg = charts.line_chart(
        [charts.Series("<run 1>", [(0, 1.0), (1, 0.5), (2, 0.25)], "#123456"),
         charts.Series("run 2", [(0, 2.0), (1, 1.5)], "#654321")],
        y_title="loss",
    )
    root = parse(svg)
    assert len(root.findall(f".//{SVG}polyline")) == 2
    assert any("<run 1>" in (t.text or "") for t in root.iter(f"{SVG}title"))


def test_scatter_handles_categorical_and_numeric_params():
    pts = [charts.Point("a,b", 1.0, "r1"), charts.Point("c", 2.0, "r2", emphasis=False)]
    root = parse(charts.scatter(pts, x_title="features", y_title="rmse"))
    assert len(root.findall(f".//{SVG}circle")) == 2
    pts = [charts.Point(0.1, 1.0, "r1", href="/runs/X"), charts.Point(0.3, 2.0, "r2")]
    root = parse(charts.scatter(pts, x_title="lr", y_title="rmse"))
    assert root.find(f".//{SVG}a").get("href") == "/runs/X"


def test_parallel_coordinates_draws_a_line_per_run():
    axes = [charts.Axis("algorithm", ["linear", "forest"]), charts.Axis("rmse", [53.9, 61.3])]
    lines = [charts.Series("#1", [], "#111"), charts.Series("#2", [], "#222")]
    root = parse(charts.parallel_coordinates(axes, lines))
    assert len(root.findall(f".//{SVG}polyline")) == 2


def lineage_fixture() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node("v:data", kind="dataset", id="D1", label="diabetes@1")
    g.add_node("v:train", kind="dataset", id="D2", label="diabetes-train@1")
    g.add_node("r:1", kind="run", id="R1", label="diabetes#1")
    g.add_node("v:model", kind="model", id="M1", label="regressor@1")
    g.add_edge("v:data", "v:train", relation="derived_from")
    g.add_edge("v:train", "r:1", relation="used", role="train")
    g.add_edge("r:1", "v:model", relation="produced")
    return g


def test_lineage_layout_puts_upstream_left_of_downstream():
    g = lineage_fixture()
    pos = graph.layout(g)
    for u, v in g.edges:
        assert pos[u][0] < pos[v][0]
    boxes = {(round(x), round(y)) for x, y in pos.values()}
    assert len(boxes) == len(pos)  # no two nodes on top of each other


def test_lineage_svg_links_every_node_and_marks_the_focus():
    g = lineage_fixture()
    svg = graph.draw(g, lambda a: f"/x/{a['id']}", focus="r:1")
    root = parse(svg)
    links = [a.get("href") for a in root.iter(f"{SVG}a")]
    assert sorted(links) == ["/x/D1", "/x/D2", "/x/M1", "/x/R1"]
    focus = [grp for grp in root.iter(f"{SVG}g") if "focus" in grp.get("class", "")]
    assert len(focus) == 1 and focus[0].get("data-node") == "r:1"
    assert "train" in str(svg)  # the edge's role is written on it


def test_an_empty_graph_says_so():
    assert "no lineage" in str(graph.draw(nx.DiGraph(), lambda a: None))


def test_number_formatting_keeps_distinguishing_digits():
    assert format.number(53.8933) == "53.8933"
    assert format.number(0.44370001) == "0.4437"
    assert format.number(50.0) == "50"
    assert format.number(True) == "true"
    assert format.size(1536) == "1.5 KB"
    assert format.duration(75) == "1m 15s"
    assert format.lower_is_better("val_loss") and not format.lower_is_better("r2")

"""Charts drawn on the server as inline SVG: no JavaScript library, no network.

Each function returns markup ready to put in a page. Points carry a <title> so the
browser shows the exact value on hover; colours come from one palette so a run has the
same colour in every chart of a page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from markupsafe import Markup

from metastore.server.ui.format import number

# Tableau 10: distinguishable, and readable on white.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    href: str | None = None


@dataclass
class Point:
    x: float | str
    y: float
    label: str
    color: str = PALETTE[0]
    href: str | None = None
    emphasis: bool = True


@dataclass
class Axis:
    """One axis of a parallel-coordinates plot: numeric, or categorical when `values`
    holds text (or booleans)."""

    name: str
    values: list = field(default_factory=list)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5, 5 × a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(t, 12))
        t += step
    return ticks


class _Frame:
    """Maps data to pixels inside margins."""

    def __init__(self, width, height, left=58, right=18, top=14, bottom=40):
        self.w, self.h = width, height
        self.left, self.right, self.top, self.bottom = left, right, top, bottom

    def x(self, frac: float) -> float:
        return self.left + frac * (self.w - self.left - self.right)

    def y(self, frac: float) -> float:
        return self.h - self.bottom - frac * (self.h - self.top - self.bottom)


def _scale(lo: float, hi: float):
    span = hi - lo or 1.0
    return lambda v: (v - lo) / span


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _y_axis(f: _Frame, ticks, sy, title: str) -> list[str]:
    out = []
    for t in ticks:
        y = f.y(sy(t))
        out.append(
            f'<line class="grid" x1="{f.left}" x2="{f.w - f.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(number(float(t), 4))}</text>"
        )
    if title:
        cy = (f.top + f.h - f.bottom) / 2
        out.append(
            f'<text class="axis-title" transform="translate(14 {cy:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(title)}</text>'
        )
    return out


def _x_axis_numeric(f: _Frame, ticks, sx, title: str) -> list[str]:
    base = f.h - f.bottom
    out = [f'<line class="axis" x1="{f.left}" x2="{f.w - f.right}" y1="{base}" y2="{base}"/>']
    for t in ticks:
        x = f.x(sx(t))
        out.append(
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}"/>'
            f'<text class="tick" x="{x:.1f}" y="{base + 16}" text-anchor="middle">'
            f"{escape(number(float(t), 4))}</text>"
        )
    if title:
        out.append(
            f'<text class="axis-title" x="{(f.left + f.w - f.right) / 2:.1f}" y="{f.h - 4}" '
            f'text-anchor="middle">{escape(title)}</text>'
        )
    return out


def _link(href: str | None, inner: str) -> str:
    return f'<a href="{escape(href)}">{inner}</a>' if href else inner


def line_chart(
    series: Sequence[Series],
    *,
    x_title: str = "step",
    y_title: str = "",
    width: int = 640,
    height: int = 260,
) -> Markup:
    """Metric histories, one line per series, on shared axes."""
    pts = [p for s in series for p in s.points]
    if not pts:
        return Markup('<p class="muted">no points</p>')
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    xt, yt = nice_ticks(min(xs), max(xs), 6), nice_ticks(min(ys), max(ys), 5)
    if all(float(x).is_integer() for x in xs):
        xt = [t for t in xt if float(t).is_integer()] or xt
    sx, sy = _scale(min(xt), max(xt)), _scale(min(yt), max(yt))
    f = _Frame(width, height)
    body = _y_axis(f, yt, sy, y_title) + _x_axis_numeric(f, xt, sx, x_title)
    for s in series:
        coords = [(f.x(sx(x)), f.y(sy(y))) for x, y in sorted(s.points)]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            body.append(
                f'<polyline class="line" points="{path}" stroke="{s.color}">'
                f"<title>{escape(s.label)}</title></polyline>"
            )
        dots = coords if len(coords) <= 60 else coords[-1:]
        for (x, y), (dx, dy) in zip(dots, sorted(s.points)[-len(dots):], strict=True):
            body.append(
                _link(
                    s.href,
                    f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{s.color}">'
                    f"<title>{escape(s.label)}: {escape(number(dy))} at {x_title} "
                    f"{escape(number(dx))}</title></circle>",
                )
            )
    return _svg(width, height, body, f"{y_title} by {x_title}")


def _categorical(values: Sequence) -> bool:
    return any(isinstance(v, str | bool) for v in values if v is not None)


def _category_positions(values: Sequence) -> dict:
    cats = sorted({_cat(v) for v in values if v is not None})
    if len(cats) == 1:
        return {cats[0]: 0.5}
    return {c: i / (len(cats) - 1) for i, c in enumerate(cats)}


def _cat(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def scatter(
    points: Sequence[Point],
    *,
    x_title: str,
    y_title: str,
    width: int = 640,
    height: int = 300,
) -> Markup:
    """A param (numeric or categorical) against a metric, one dot per run."""
    pts = [p for p in points if p.x is not None and p.y is not None]
    if not pts:
        return Markup('<p class="muted">no run has both values</p>')
    f = _Frame(width, height, bottom=44)
    ys = [p.y for p in pts]
    yt = nice_ticks(min(ys), max(ys), 5)
    sy = _scale(min(yt), max(yt))
    body = _y_axis(f, yt, sy, y_title)
    if _categorical([p.x for p in pts]):
        pos = _category_positions([p.x for p in pts])
        # keep dots off the plot's edges
        fx = {c: 0.08 + 0.84 * v for c, v in pos.items()}
        base = f.h - f.bottom
        body.append(
            f'<line class="axis" x1="{f.left}" x2="{f.w - f.right}" y1="{base}" y2="{base}"/>'
        )
        for c, v in fx.items():
            body.append(
                f'<text class="tick" x="{f.x(v):.1f}" y="{base + 16}" '
                f'text-anchor="middle">{escape(_truncate(c, 28))}</text>'
            )
        body.append(
            f'<text class="axis-title" x="{(f.left + f.w - f.right) / 2:.1f}" y="{f.h - 4}" '
            f'text-anchor="middle">{escape(x_title)}</text>'
        )
        # spread runs that share a category and nearly a value, so none hides another
        seen: dict[str, int] = {}
        placed = []
        for p in sorted(pts, key=lambda p: (not p.emphasis, p.y)):
            c = _cat(p.x)
            k = seen.get(c, 0)
            seen[c] = k + 1
            offset = ((k % 5) - 2) * 5
            placed.append((p, f.x(fx[c]) + offset))
    else:
        xs = [float(p.x) for p in pts]
        xt = nice_ticks(min(xs), max(xs), 6)
        sx = _scale(min(xt), max(xt))
        body += _x_axis_numeric(f, xt, sx, x_title)
        placed = [(p, f.x(sx(float(p.x)))) for p in pts]
    placed.sort(key=lambda item: item[0].emphasis)  # emphasised dots drawn on top
    for p, x in placed:
        y = f.y(sy(p.y))
        cls = "dot" if p.emphasis else "dot faint"
        r = 5 if p.emphasis else 3.5
        body.append(
            _link(
                p.href,
                f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{p.color}">'
                f"<title>{escape(p.label)}: {escape(x_title)} = {escape(_cat(p.x))}, "
                f"{escape(y_title)} = {escape(number(p.y))}</title></circle>",
            )
        )
    return _svg(width, height, body, f"{y_title} against {x_title}")


def parallel_coordinates(
    axes: Sequence[Axis],
    lines: Sequence[Series],
    *,
    width: int = 1100,
    height: int = 300,
) -> Markup:
    """One vertical axis per param or metric, one polyline per run across them.
    `lines[i].points` is unused; run i's value on each axis is `axes[k].values[i]`."""
    if len(axes) < 2 or not lines:
        return Markup('<p class="muted">needs at least two params or metrics that differ</p>')
    f = _Frame(width, height, left=70, right=90, top=34, bottom=20)
    body = []
    scales = []
    n = len(axes)
    for k, axis in enumerate(axes):
        x = f.x(k / (n - 1))
        body.append(
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{f.top}" y2="{f.h - f.bottom}"/>'
            f'<text class="axis-title" x="{x:.1f}" y="{f.top - 12}" text-anchor="middle">'
            f"{escape(_truncate(axis.name, 22))}</text>"
        )
        present = [v for v in axis.values if v is not None]
        if present and _categorical(present):
            pos = _category_positions(present)
            scales.append(lambda v, pos=pos: pos.get(_cat(v)))
            for c, frac in pos.items():
                body.append(_axis_label(x, f.y(frac), c))
        elif present:
            lo, hi = min(map(float, present)), max(map(float, present))
            s = _scale(lo, hi) if hi > lo else (lambda v: 0.5)
            scales.append(lambda v, s=s: None if v is None else s(float(v)))
            body.append(_axis_label(x, f.y(1.0 if hi > lo else 0.5), number(hi)))
            if hi > lo:
                body.append(_axis_label(x, f.y(0.0), number(lo)))
        else:
            scales.append(lambda v: None)
    for i, line in enumerate(lines):
        coords = []
        for k, axis in enumerate(axes):
            v = axis.values[i] if i < len(axis.values) else None
            frac = scales[k](v) if v is not None else None
            if frac is not None:
                coords.append(f"{f.x(k / (n - 1)):.1f},{f.y(frac):.1f}")
        body.append(
            _link(
                line.href,
                f'<polyline class="pline" points="{" ".join(coords)}" stroke="{line.color}">'
                f"<title>{escape(line.label)}</title></polyline>",
            )
        )
    return _svg(width, height, body, "parallel coordinates")


def _axis_label(x: float, y: float, text: str) -> str:
    return (
        f'<text class="tick pc-label" x="{x + 5:.1f}" y="{y + 4:.1f}">'
        f"{escape(_truncate(text, 18))}</text>"
    )


def _truncate(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def sparkline(values: Sequence[float], *, width: int = 90, height: int = 22) -> Markup:
    """A tiny history line for a table cell."""
    if len(values) < 2:
        return Markup("")
    lo, hi = min(values), max(values)
    s = _scale(lo, hi) if hi > lo else (lambda v: 0.5)
    step = (width - 4) / (len(values) - 1)
    pts = " ".join(
        f"{2 + i * step:.1f},{height - 3 - s(v) * (height - 6):.1f}" for i, v in enumerate(values)
    )
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><polyline points="{pts}"/></svg>'
    )


def overview(
    points: Sequence[Point], *, metric: str, lower_better: bool = False,
    width: int = 360, height: int = 84,
) -> Markup:
    """A small dot per run (x: run number, y: the metric, better up), the best one ringed:
    where a run stands among the others at a glance. Each dot links to its run."""
    pts = [p for p in points if p.y is not None]
    if len(pts) < 2:
        return Markup("")
    xs, ys = [float(p.x) for p in pts], [p.y for p in pts]
    sx = _scale(min(xs), max(xs)) if max(xs) > min(xs) else (lambda v: 0.5)
    raw = _scale(min(ys), max(ys)) if max(ys) > min(ys) else (lambda v: 0.5)

    def sy(v):  # better up, and off the axis line
        frac = raw(v)
        return 0.1 + 0.8 * (1 - frac if lower_better else frac)

    top, bottom = (min(ys), max(ys)) if lower_better else (max(ys), min(ys))
    f = _Frame(width, height, left=46, right=10, top=8, bottom=18)
    base = f.h - f.bottom
    body = [
        f'<line class="axis" x1="{f.left}" x2="{f.w - f.right}" y1="{base}" y2="{base}"/>',
        f'<text class="tick" x="{f.left - 6}" y="{f.y(0.9) + 4:.1f}" text-anchor="end">'
        f"{escape(number(top, 4))}</text>",
        f'<text class="tick" x="{f.left - 6}" y="{f.y(0.1) + 4:.1f}" text-anchor="end">'
        f"{escape(number(bottom, 4))}</text>",
        f'<text class="tick" x="{f.x(0):.1f}" y="{height - 4}" text-anchor="start">'
        f"#{int(min(xs))}</text>",
        f'<text class="tick" x="{f.x(1):.1f}" y="{height - 4}" text-anchor="end">'
        f"run #{int(max(xs))}</text>",
    ]
    for p in sorted(pts, key=lambda p: p.emphasis):
        x, y = f.x(sx(float(p.x))), f.y(sy(p.y))
        ring = (
            f'<circle class="best-ring" cx="{x:.1f}" cy="{y:.1f}" r="7"/>' if p.emphasis else ""
        )
        body.append(
            _link(
                p.href,
                f'{ring}<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3.6" fill="{p.color}">'
                f"<title>{escape(p.label)}: {escape(metric)} = {escape(number(p.y))}</title>"
                "</circle>",
            )
        )
    return Markup(
        f'<svg class="overview" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(metric)} of every run" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )

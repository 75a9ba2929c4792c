"""Small server-side SVG plots for the dashboard (no matplotlib, no script).

Each function returns a complete ``<svg>`` element (:class:`~.markup.Markup`) with a
``<title>`` and ``<desc>`` for screen readers (``role="img"``), colours as presentation
attributes (allowed by the page's Content-Security-Policy, and kept when an SVG is opened on
its own) and every label escaped. Curves are thinned to at most :data:`MAX_POINTS` points.

- :func:`line_plot` and :func:`bar_plot`: the two primitives;
- :func:`roc_svg`, :func:`ks_svg`, :func:`lift_svg`: from the ``evaluate`` step's metrics;
- :func:`loss_svg`: loss per iteration or round;
- :func:`importance_svg`: feature importance;
- :func:`overlap_svg`: PSI set and intersection sizes;
- :func:`dp_budget_svg`: privacy budget spent and remaining;
- :func:`dag_svg`: a pipeline's steps and their dependencies, with a status per step.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from privfin.node.dashboard.markup import Markup, h, join

__all__ = [
    "MAX_POINTS",
    "Series",
    "bar_plot",
    "dag_svg",
    "dp_budget_svg",
    "importance_svg",
    "ks_svg",
    "lift_svg",
    "line_plot",
    "loss_svg",
    "nice_ticks",
    "overlap_svg",
    "roc_svg",
    "thin",
]

MAX_POINTS = 400
COLOURS = ("#1f5fa8", "#c2571a", "#2e7d32", "#7b3fa0", "#8a6d00")
_W, _H = 480, 340
_L, _R, _T, _B = 62, 16, 40, 52  # margins: left, right, top, bottom


@dataclass(frozen=True)
class Series:
    """One line of a :func:`line_plot`."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    dashed: bool = False


def thin(n: int, limit: int = MAX_POINTS) -> list[int]:
    """At most ``limit`` indices of ``range(n)``, evenly spaced, first and last kept."""
    if n <= limit:
        return list(range(n))
    step = (n - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values from at most ``lo`` to at least ``hi`` (about ``count`` steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    n = round((last - first) / step)
    return [round(first + i * step, 12) for i in range(n + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.2g}"
    return f"{v:.4g}"


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _frame(title: str, desc: str, body: Markup, width: int = _W, height: int = _H) -> Markup:
    # ids unique within a page that shows several plots
    ident = "p" + hashlib.sha256(f"{title}\0{desc}\0{body}".encode()).hexdigest()[:10]
    return h(
        '<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" '
        'viewBox="0 0 {w} {hh}" width="{w}" height="{hh}" aria-labelledby="{i}-t {i}-d">'
        '<title id="{i}-t">{}</title><desc id="{i}-d">{}</desc>'
        '<rect x="0" y="0" width="{w}" height="{hh}" fill="#ffffff"/>'
        '<text x="{cx}" y="22" text-anchor="middle" font-family="sans-serif" font-size="15" '
        'font-weight="bold" fill="#1a1a1a">{}</text>{}</svg>',
        title,
        desc,
        title,
        body,
        w=width,
        hh=height,
        cx=width / 2,
        i=ident,
    )


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        if hi <= lo:
            hi = lo + 1.0
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        return round(self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a), 2)


def _axes(
    sx: _Scale, sy: _Scale, xticks: list[float], yticks: list[float], xlabel: str, ylabel: str
) -> Markup:
    parts: list[Markup] = []
    x0, x1, y0, y1 = _L, _W - _R, _H - _B, _T
    for t in yticks:
        y = sy(t)
        parts.append(
            h(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#e3e3e3"/>'
                '<text x="{}" y="{}" text-anchor="end" font-family="sans-serif" font-size="11" '
                'fill="#333">{}</text>',
                x0,
                y,
                x1,
                y,
                x0 - 6,
                y + 4,
                _fmt(t),
            )
        )
    for t in xticks:
        x = sx(t)
        parts.append(
            h(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#e3e3e3"/>'
                '<text x="{}" y="{}" text-anchor="middle" font-family="sans-serif" '
                'font-size="11" fill="#333">{}</text>',
                x,
                y0,
                x,
                y1,
                x,
                y0 + 16,
                _fmt(t),
            )
        )
    parts.append(
        h(
            '<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#555"/>'
            '<text x="{}" y="{}" text-anchor="middle" font-family="sans-serif" font-size="12" '
            'fill="#1a1a1a">{}</text>'
            '<text transform="translate(16 {}) rotate(-90)" text-anchor="middle" '
            'font-family="sans-serif" font-size="12" fill="#1a1a1a">{}</text>',
            x0,
            y1,
            x1 - x0,
            y0 - y1,
            (x0 + x1) / 2,
            _H - 14,
            xlabel,
            (y0 + y1) / 2,
            ylabel,
        )
    )
    return join(parts)


def _legend(names: Sequence[tuple[str, str, bool]]) -> Markup:
    parts = []
    for i, (name, colour, dashed) in enumerate(names):
        y = _T + 14 + 16 * i
        parts.append(
            h(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2.5"{}/>'
                '<text x="{}" y="{}" font-family="sans-serif" font-size="11" '
                'fill="#1a1a1a">{}</text>',
                _W - _R - 140,
                y,
                _W - _R - 116,
                y,
                colour,
                Markup(' stroke-dasharray="5 4"' if dashed else ""),
                _W - _R - 110,
                y + 4,
                name,
            )
        )
    return join(parts)


def line_plot(
    title: str,
    series: Sequence[Series],
    *,
    xlabel: str,
    ylabel: str,
    desc: str = "",
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    diagonal: bool = False,
    notes: Sequence[str] = (),
    notes_left: bool = False,
) -> Markup:
    """Lines through ``series`` (non-finite points dropped), with axes, ticks and a legend;
    ``diagonal`` adds the chance line y = x; ``notes`` are printed in the plot's corner."""
    xs = [v for s in series for v in _finite(s.x)]
    ys = [v for s in series for v in _finite(s.y)]
    lo_x, hi_x = xlim or ((min(xs), max(xs)) if xs else (0.0, 1.0))
    lo_y, hi_y = ylim or ((min(ys), max(ys)) if ys else (0.0, 1.0))
    xticks, yticks = nice_ticks(lo_x, hi_x), nice_ticks(lo_y, hi_y)
    if xlim is None:  # the axes end at round ticks
        lo_x, hi_x = xticks[0], xticks[-1]
    else:
        xticks = [t for t in xticks if lo_x - 1e-9 <= t <= hi_x + 1e-9]
    if ylim is None:
        lo_y, hi_y = yticks[0], yticks[-1]
    else:
        yticks = [t for t in yticks if lo_y - 1e-9 <= t <= hi_y + 1e-9]
    sx = _Scale(lo_x, hi_x, _L, _W - _R)
    sy = _Scale(lo_y, hi_y, _H - _B, _T)
    parts = [_axes(sx, sy, xticks, yticks, xlabel, ylabel)]
    if diagonal:
        parts.append(
            h(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="3 3"/>',
                sx(lo_x),
                sy(lo_y),
                sx(hi_x),
                sy(hi_y),
            )
        )
    legend = []
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        pts = [
            (float(s.x[j]), float(s.y[j]))
            for j in thin(min(len(s.x), len(s.y)))
            if math.isfinite(float(s.x[j])) and math.isfinite(float(s.y[j]))
        ]
        if pts:
            d = " ".join(f"{sx(x)},{sy(y)}" for x, y in pts)
            parts.append(
                h(
                    '<polyline class="series" data-series="{}" points="{}" fill="none" '
                    'stroke="{}" stroke-width="2.5"{}/>',
                    s.name,
                    d,
                    colour,
                    Markup(' stroke-dasharray="6 4"' if s.dashed else ""),
                )
            )
        legend.append((s.name, colour, s.dashed))
    if len(legend) > 1 or (legend and legend[0][0]):
        parts.append(_legend(legend))
    for i, note in enumerate(notes):
        parts.append(
            h(
                '<text x="{}" y="{}" text-anchor="{}" font-family="sans-serif" font-size="12" '
                'fill="#1a1a1a">{}</text>',
                _L + 8 if notes_left else _W - _R - 8,
                _H - _B - 10 - 16 * (len(notes) - 1 - i),
                "start" if notes_left else "end",
                note,
            )
        )
    return _frame(title, desc or title, join(parts))


def bar_plot(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    xlabel: str,
    desc: str = "",
    colours: Sequence[str] | None = None,
    value_format: str = "{:.4g}",
) -> Markup:
    """Horizontal bars (one per label, values >= 0 drawn from zero), each labelled with its
    value; the height grows with the number of bars."""
    vals = [float(v) if math.isfinite(float(v)) else 0.0 for v in values]
    n = max(len(vals), 1)
    height = max(_H, _T + _B + 26 * n)
    top = max([*vals, 0.0])
    ticks = nice_ticks(0.0, top if top > 0 else 1.0)
    left = 150
    sx = _Scale(0.0, ticks[-1], left, _W - _R - 40)
    bar_h = (height - _T - _B) / n
    parts: list[Markup] = []
    for t in ticks:
        x = sx(t)
        parts.append(
            h(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#e3e3e3"/>'
                '<text x="{}" y="{}" text-anchor="middle" font-family="sans-serif" '
                'font-size="11" fill="#333">{}</text>',
                x,
                _T,
                x,
                height - _B,
                x,
                height - _B + 16,
                _fmt(t),
            )
        )
    for i, (label, v) in enumerate(zip(labels, vals, strict=False)):
        y = _T + i * bar_h + bar_h * 0.15
        colour = (colours or COLOURS)[i % len(colours or COLOURS)]
        shown = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            h(
                '<g class="bar" data-label="{}"><title>{}: {}</title>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
                '<text x="{}" y="{}" text-anchor="end" font-family="sans-serif" font-size="11" '
                'fill="#1a1a1a">{}</text>'
                '<text x="{}" y="{}" font-family="sans-serif" font-size="11" fill="#1a1a1a">{}'
                "</text></g>",
                label,
                label,
                value_format.format(v),
                left,
                round(y, 2),
                max(sx(max(v, 0.0)) - left, 0.0),
                round(bar_h * 0.7, 2),
                colour,
                left - 6,
                round(y + bar_h * 0.35 + 4, 2),
                shown,
                sx(max(v, 0.0)) + 4,
                round(y + bar_h * 0.35 + 4, 2),
                value_format.format(v),
            )
        )
    parts.append(
        h(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#555"/>'
            '<text x="{}" y="{}" text-anchor="middle" font-family="sans-serif" font-size="12" '
            'fill="#1a1a1a">{}</text>',
            left,
            _T,
            left,
            height - _B,
            (left + _W - _R) / 2,
            height - 14,
            xlabel,
        )
    )
    return _frame(title, desc or title, join(parts), height=height)


# -- result plots


def roc_svg(fpr: Sequence[float], tpr: Sequence[float], auc: float | None = None) -> Markup:
    """The ROC curve (true vs false positive rate) with the chance diagonal and the AUC."""
    notes = [f"AUC = {auc:.4f}"] if auc is not None and math.isfinite(auc) else []
    return line_plot(
        "ROC curve",
        [Series("model", fpr, tpr)],
        xlabel="false positive rate",
        ylabel="true positive rate",
        desc="Receiver operating characteristic: true positive rate against false positive "
        "rate as the score threshold moves" + (f"; {notes[0]}" if notes else ""),
        xlim=(0.0, 1.0),
        ylim=(0.0, 1.0),
        diagonal=True,
        notes=notes,
    )


def ks_svg(
    thresholds: Sequence[float],
    tpr: Sequence[float],
    fpr: Sequence[float],
    ks: float | None = None,
    ks_threshold: float | None = None,
) -> Markup:
    """The KS plot: cumulative event and non-event rates over the score threshold."""
    notes = []
    if ks is not None and math.isfinite(ks):
        notes.append(f"KS = {ks:.4f}")
    if ks_threshold is not None and math.isfinite(ks_threshold):
        notes.append(f"at score {ks_threshold:.4g}")
    finite = _finite(thresholds)
    xlim = (min(finite), max(finite)) if finite else None
    return line_plot(
        "KS curve",
        [
            Series("events (TPR)", thresholds, tpr),
            Series("non-events (FPR)", thresholds, fpr, True),
        ],
        xlabel="score threshold",
        ylabel="cumulative share",
        desc="Kolmogorov-Smirnov: cumulative shares of events and non-events above each score "
        "threshold" + (f"; {', '.join(notes)}" if notes else ""),
        xlim=xlim,
        ylim=(0.0, 1.0),
        notes=notes,
        notes_left=True,  # (both curves are high at low thresholds, low at high ones)
    )


def lift_svg(gain: Sequence[Mapping[str, float]]) -> Markup:
    """Lift per score bucket (best bucket first) and the cumulative lift."""
    buckets = [float(r.get("bucket", i + 1)) for i, r in enumerate(gain)]
    lift = [float(r.get("lift", math.nan)) for r in gain]
    cum = [float(r.get("cum_lift", math.nan)) for r in gain]
    return line_plot(
        "Lift by score bucket",
        [Series("lift", buckets, lift), Series("cumulative lift", buckets, cum, True)],
        xlabel="score bucket (1 = highest scores)",
        ylabel="lift",
        desc="Lift of each score bucket over the average event rate, and the cumulative lift",
    )


def loss_svg(losses: Sequence[float], *, what: str = "iteration") -> Markup:
    """Training loss per iteration (or round)."""
    return line_plot(
        f"Loss per {what}",
        [Series("", list(range(1, len(losses) + 1)), losses)],
        xlabel=what,
        ylabel="loss",
        desc=f"Training loss after each {what} ({len(losses)} {what}s)",
    )


def importance_svg(importance: Mapping[str, float], *, limit: int = 20) -> Markup:
    """The ``limit`` most important features, largest first."""
    top = sorted(importance.items(), key=lambda kv: (-float(kv[1]), kv[0]))[:limit]
    return bar_plot(
        "Feature importance",
        [k for k, _ in top],
        [float(v) for _, v in top],
        xlabel="importance (splits)",
        desc="Feature importance of this party's model: "
        + ", ".join(f"{k} {float(v):.4g}" for k, v in top),
        colours=(COLOURS[0],),
    )


def overlap_svg(sizes: Mapping[str, int]) -> Markup:
    """PSI: each set's size and the intersection's."""
    return bar_plot(
        "PSI overlap",
        list(sizes),
        [float(v) for v in sizes.values()],
        xlabel="rows",
        desc="Set sizes: " + ", ".join(f"{k} {v}" for k, v in sizes.items()),
        value_format="{:,.0f}",
    )


def dp_budget_svg(rows: Mapping[str, tuple[float, float | None]]) -> Markup:
    """Epsilon spent per dataset (``{label: (spent, total or None)}``); the budget is drawn
    as a second bar."""
    labels: list[str] = []
    values: list[float] = []
    colours: list[str] = []
    for name, (spent, total) in rows.items():
        labels.append(f"{name}: spent")
        values.append(spent)
        colours.append(COLOURS[1])
        if total is not None:
            labels.append(f"{name}: budget")
            values.append(total)
            colours.append("#9e9e9e")
    return bar_plot(
        "DP budget (epsilon)",
        labels,
        values,
        xlabel="epsilon",
        desc="Differential-privacy budget: "
        + "; ".join(
            f"{k} spent {s:.4g}" + ("" if t is None else f" of {t:.4g}")
            for k, (s, t) in rows.items()
        ),
        colours=colours,
    )


# -- the pipeline graph

_NODE_W, _NODE_H, _GAP_X, _GAP_Y = 168, 52, 56, 18


def dag_svg(
    steps: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    components: Mapping[str, str],
    status: Mapping[str, str],
    here: set[str],
) -> Markup:
    """The pipeline's steps in columns by depth (a step right of what it reads), arrows for
    dependencies; each step's ``<g>`` has ``data-step`` and a ``st-<status>`` class that the
    page's script updates (steps this party has no part in are drawn as ``st-elsewhere``)."""
    level: dict[str, int] = {}
    for s in steps:  # (steps come in a topological order)
        level[s] = 1 + max((level[d] for d in deps.get(s, ()) if d in level), default=-1)
    columns: dict[int, list[str]] = {}
    for s in steps:
        columns.setdefault(level[s], []).append(s)
    rows = max((len(c) for c in columns.values()), default=1)
    width = max(len(columns), 1) * (_NODE_W + _GAP_X) - _GAP_X + 20
    height = rows * (_NODE_H + _GAP_Y) - _GAP_Y + 20
    pos: dict[str, tuple[float, float]] = {}
    for col, names in columns.items():
        offset = (rows - len(names)) * (_NODE_H + _GAP_Y) / 2
        for r, s in enumerate(names):
            pos[s] = (10 + col * (_NODE_W + _GAP_X), 10 + offset + r * (_NODE_H + _GAP_Y))
    parts: list[Markup] = [
        Markup(
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
            'fill="#666"/></marker></defs>'
        )
    ]
    for s in steps:
        for d in deps.get(s, ()):
            if d not in pos:
                continue
            x1, y1 = pos[d][0] + _NODE_W, pos[d][1] + _NODE_H / 2
            x2, y2 = pos[s][0], pos[s][1] + _NODE_H / 2
            mid = (x1 + x2) / 2
            parts.append(
                h(
                    '<path d="M {} {} C {} {}, {} {}, {} {}" fill="none" stroke="#666" '
                    'stroke-width="1.5" marker-end="url(#arrow)"/>',
                    x1,
                    y1,
                    mid,
                    y1,
                    mid,
                    y2,
                    x2 - 2,
                    y2,
                )
            )
    for s in steps:
        x, y = pos[s]
        st = status.get(s, "pending") if s in here else "elsewhere"
        label = s if len(s) <= 20 else s[:19] + "…"
        comp = components.get(s, "")
        parts.append(
            h(
                '<g class="dag-step st-{}" data-step="{}" data-component="{}">'
                "<title>{}: {} ({})</title>"
                '<rect x="{}" y="{}" width="{}" height="{}" rx="8" ry="8"/>'
                '<text x="{}" y="{}" text-anchor="middle" class="dag-name">{}</text>'
                '<text x="{}" y="{}" text-anchor="middle" class="dag-status">{} · {}</text></g>',
                st,
                s,
                comp,
                s,
                comp,
                "not a party here" if st == "elsewhere" else st,
                x,
                y,
                _NODE_W,
                _NODE_H,
                x + _NODE_W / 2,
                y + 21,
                label,
                x + _NODE_W / 2,
                y + 39,
                comp[:18],
                "—" if st == "elsewhere" else st,
            )
        )
    return h(
        '<svg xmlns="http://www.w3.org/2000/svg" class="dag" role="img" viewBox="0 0 {w} {hh}" '
        'width="{w}" height="{hh}" aria-labelledby="dag-title">'
        '<title id="dag-title">Pipeline steps: {}</title>{}</svg>',
        ", ".join(f"{s} {status.get(s, 'pending') if s in here else 'not here'}" for s in steps),
        join(parts),
        w=width,
        hh=height,
    )

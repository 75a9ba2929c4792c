"""Plots and a standalone HTML report of a binary classifier's evaluation (credit risk style).

- :func:`plot_roc`, :func:`plot_ks`, :func:`plot_lift` return a :class:`matplotlib.figure.Figure`
  built from the curve data of :mod:`privfin.ml.metrics` (the ROC line is ``roc_curve``'s
  output, the KS lines are ``ks_statistic``'s, the gain and lift plots are ``gain_table``'s).
- :func:`evaluation_report` writes one self-contained HTML file: the metric table (AUC, KS,
  top-bucket lift, accuracy, precision, recall, specificity, F1 at a threshold), the confusion
  matrix, the gain table and the three figures as inline SVG. It loads nothing from anywhere
  (no scripts, stylesheets, fonts or images from the network), so it can be archived as
  evidence or mailed as it is.
- :func:`evaluation_report_from_metrics` writes the same report from the metrics JSON of the
  pipeline's ``evaluate`` step (``{"metrics": {...}}`` as the step returns it).
- :func:`figures_from_metrics` gives the report's figures from that JSON, and :func:`figure_svg`
  turns a figure into the inline SVG the report embeds (what a dashboard shows).

matplotlib is an optional dependency (``pip install 'privfin[plots]'``), imported only when a
figure is made. Figures are created with :class:`~matplotlib.figure.Figure` and an Agg canvas,
never through ``pyplot``: no global figure registry, no GUI backend, safe in servers and
threads. The only I/O is writing the file a caller names.

Security: plaintext, party-local. A report holds aggregates over the evaluated population
(curves, counts per score bucket, the confusion matrix) and reveals what those aggregates
reveal, e.g. the event rate of each score bucket: share it with other parties only under the
job's agreement. It never holds a record, an id or a feature value.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError
from privfin.ml.metrics import binary_report, gain_table, ks_statistic, roc_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "evaluation_report",
    "evaluation_report_from_metrics",
    "figure_svg",
    "figures_from_metrics",
    "plot_ks",
    "plot_lift",
    "plot_roc",
]

FloatArray = npt.NDArray[np.float64]

#: Curves with more points than this are drawn through this many points (evenly spaced in
#: rank, first and last kept): a plot cannot show more, and the SVG stays small.
MAX_POINTS = 2000

_GAIN_KEYS = ("count", "events", "event_rate", "cum_count_share", "cum_gain", "lift", "cum_lift")
_CONFUSION_KEYS = (
    "tn",
    "fp",
    "fn",
    "tp",
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
)


def _new_figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError(
            "plots and reports need matplotlib: pip install 'privfin[plots]'"
        ) from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _thin(n: int, keep: int | None, max_points: int | None) -> npt.NDArray[np.intp]:
    """Indices of at most ``max_points`` points of a curve of ``n`` (first, last and ``keep``)."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 2:
        raise ConfigError(f"max_points must be at least 2, got {max_points}")
    idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(np.intp))
    if keep is not None:
        idx = np.union1d(idx, [keep]).astype(np.intp)
    return idx


@dataclass(frozen=True)
class _Evaluation:
    """What a report shows, from raw scores or from the ``evaluate`` step's metrics JSON."""

    auc: float
    ks: float
    ks_threshold: float
    lift_top_bucket: float
    fpr: FloatArray
    tpr: FloatArray
    thresholds: FloatArray
    gain: dict[str, FloatArray]
    confusion: dict[str, float]
    threshold: float | None

    @property
    def positives(self) -> float:
        return self.confusion["tp"] + self.confusion["fn"]

    @property
    def negatives(self) -> float:
        return self.confusion["tn"] + self.confusion["fp"]

    @property
    def rows(self) -> float:
        return self.positives + self.negatives

    @property
    def ks_index(self) -> int:
        return int(np.argmax(np.abs(self.tpr - self.fpr)))

    def depth(self) -> FloatArray:
        """Share of the population with a score at or above each threshold."""
        return (self.tpr * self.positives + self.fpr * self.negatives) / self.rows


def _from_scores(y_true: Any, y_score: Any, *, threshold: float, n_buckets: int) -> _Evaluation:
    if not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold}")
    rep = binary_report(y_true, y_score, threshold=threshold, n_buckets=n_buckets)
    fpr, tpr, thr = rep.roc
    return _Evaluation(
        auc=rep.auc,
        ks=rep.ks.ks,
        ks_threshold=rep.ks.threshold,
        lift_top_bucket=float(rep.gain.lift[0]),
        fpr=fpr,
        tpr=tpr,
        thresholds=thr,
        gain={k: np.asarray(getattr(rep.gain, k), dtype=np.float64) for k in _GAIN_KEYS},
        confusion=dict(rep.confusion),
        threshold=threshold,
    )


# ---------------------------------------------------------------------------------- figures


def _roc_figure(ev: _Evaluation, max_points: int | None) -> Figure:
    fig = _new_figure(5.0, 4.4)
    ax = fig.add_subplot()
    idx = _thin(ev.fpr.size, None, max_points)
    ax.plot(ev.fpr[idx], ev.tpr[idx], color="#1f4e79", lw=1.8, label=f"model (AUC {ev.auc:.4f})")
    ax.plot([0.0, 1.0], [0.0, 1.0], color="#999999", lw=1.0, ls="--", label="random (AUC 0.5)")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("false positive rate (share of non-events flagged)")
    ax.set_ylabel("true positive rate (share of events flagged)")
    ax.set_title("ROC curve")
    ax.grid(True, lw=0.4, alpha=0.5)
    ax.legend(loc="lower right")
    return fig


def _ks_figure(ev: _Evaluation, max_points: int | None) -> Figure:
    fig = _new_figure(5.6, 4.4)
    ax = fig.add_subplot()
    i = ev.ks_index
    depth = ev.depth()
    idx = _thin(depth.size, i, max_points)
    ax.plot(depth[idx], ev.tpr[idx], color="#b22222", lw=1.8, label="events (cumulative share)")
    ax.plot(depth[idx], ev.fpr[idx], color="#1f4e79", lw=1.8, label="non-events (cumulative share)")
    ax.plot(
        [depth[i], depth[i]],
        [ev.fpr[i], ev.tpr[i]],
        color="#333333",
        lw=1.2,
        ls=":",
        label=f"KS {ev.ks:.4f} at score ≥ {_num(ev.ks_threshold)}",
    )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("share of the population with score ≥ threshold")
    ax.set_ylabel("cumulative share")
    ax.set_title("KS chart")
    ax.grid(True, lw=0.4, alpha=0.5)
    ax.legend(loc="lower right")
    return fig


def _lift_figure(ev: _Evaluation) -> Figure:
    fig = _new_figure(9.0, 4.0)
    gain_ax, lift_ax = fig.subplots(1, 2)
    share = np.r_[0.0, ev.gain["cum_count_share"]]
    gain = np.r_[0.0, ev.gain["cum_gain"]]
    gain_ax.plot(share, gain, color="#1f4e79", lw=1.8, marker="o", ms=3, label="model")
    gain_ax.plot([0.0, 1.0], [0.0, 1.0], color="#999999", lw=1.0, ls="--", label="random")
    gain_ax.set_xlim(0.0, 1.0)
    gain_ax.set_ylim(0.0, 1.0)
    gain_ax.set_xlabel("share of the population (highest scores first)")
    gain_ax.set_ylabel("share of all events captured")
    gain_ax.set_title("Cumulative gain")
    gain_ax.grid(True, lw=0.4, alpha=0.5)
    gain_ax.legend(loc="lower right")

    buckets = np.arange(1, ev.gain["lift"].size + 1)
    lift_ax.bar(buckets, ev.gain["lift"], color="#7fa7cf", label="lift of the bucket")
    lift_ax.plot(
        buckets, ev.gain["cum_lift"], color="#1f4e79", lw=1.8, marker="o", ms=3, label="cumulative"
    )
    lift_ax.axhline(1.0, color="#999999", lw=1.0, ls="--", label="random (lift 1)")
    lift_ax.set_xticks(buckets)
    lift_ax.set_xlabel("score bucket (1 = highest scores)")
    lift_ax.set_ylabel("lift (event rate / overall rate)")
    lift_ax.set_title("Lift by bucket")
    lift_ax.grid(True, axis="y", lw=0.4, alpha=0.5)
    lift_ax.legend(loc="upper right")
    return fig


def plot_roc(y_true: Any, y_score: Any, *, max_points: int | None = MAX_POINTS) -> Figure:
    """ROC curve of a score (labels ``y_true`` in ``{0, 1}``, 1 = the event).

    The model's line (the figure's first line) is :func:`privfin.ml.metrics.roc_curve`'s
    ``(fpr, tpr)``; curves with more than ``max_points`` points are drawn through
    ``max_points`` of them (``None``: all). The second line is the random classifier.
    """
    fpr, tpr, thr = roc_curve(y_true, y_score)
    ev = _curve_only(fpr, tpr, thr, auc=float(np.trapezoid(tpr, fpr)))
    return _roc_figure(ev, max_points)


def plot_ks(y_true: Any, y_score: Any, *, max_points: int | None = MAX_POINTS) -> Figure:
    """KS chart: the cumulative shares of events and of non-events among the rows scoring at
    or above each threshold, against the share of the population at or above it; a dotted
    segment marks the largest gap (the KS statistic).

    Lines, in order: events (``ks_statistic(...).tpr``), non-events (``.fpr``), the KS
    segment. ``max_points`` as in :func:`plot_roc` (the KS point is always drawn).
    """
    ks = ks_statistic(y_true, y_score)  # validates the labels and scores
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    positives = float(y.sum())
    ev = _curve_only(
        ks.fpr,
        ks.tpr,
        ks.thresholds,
        ks=ks.ks,
        ks_threshold=ks.threshold,
        positives=positives,
        negatives=float(y.size) - positives,
    )
    return _ks_figure(ev, max_points)


def plot_lift(y_true: Any, y_score: Any, *, n_buckets: int = 10) -> Figure:
    """Cumulative gain (left) and lift by score bucket (right) over ``n_buckets`` equal-count
    buckets of descending score (:func:`privfin.ml.metrics.gain_table`).

    Left axes, first line: ``(0, cum_count_share...)`` against ``(0, cum_gain...)``; right
    axes: one bar per bucket of height ``lift`` and a line of ``cum_lift``.
    """
    table = gain_table(y_true, y_score, n_buckets)
    ev = _curve_only(
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        gain={k: np.asarray(getattr(table, k), dtype=np.float64) for k in _GAIN_KEYS},
    )
    return _lift_figure(ev)


def _curve_only(
    fpr: FloatArray,
    tpr: FloatArray,
    thr: FloatArray,
    *,
    auc: float = math.nan,
    ks: float = math.nan,
    ks_threshold: float = math.nan,
    positives: float = 1.0,
    negatives: float = 1.0,
    gain: dict[str, FloatArray] | None = None,
) -> _Evaluation:
    return _Evaluation(
        auc=auc,
        ks=ks,
        ks_threshold=ks_threshold,
        lift_top_bucket=math.nan,
        fpr=fpr,
        tpr=tpr,
        thresholds=thr,
        gain=gain or {},
        confusion={"tp": positives, "fn": 0.0, "tn": negatives, "fp": 0.0},
        threshold=None,
    )


_XML_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def figure_svg(fig: Figure, *, name: str = "figure") -> str:
    """The figure as an ``<svg>`` element to inline in HTML: text kept as text (searchable,
    small), no XML prologue or metadata, element ids derived from ``name`` (deterministic, and
    distinct between figures of one page when their names differ)."""
    import io

    from matplotlib import rc_context

    buf = io.StringIO()
    # rc_context restores every parameter on exit: nothing global outlives this call.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": f"privfin-{name}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = _METADATA.sub("", _XML_PROLOGUE.sub("", buf.getvalue(), count=1), count=1)
    return svg.strip()


# ----------------------------------------------------------------------------------- report


def _num(x: float, digits: int = 4) -> str:
    if math.isinf(x):
        return "+∞" if x > 0 else "−∞"
    if math.isnan(x):
        return "n/a"
    return f"{x:.{digits}f}"


def _count(x: float) -> str:
    return f"{round(x):,}"


def _pct(x: float) -> str:
    return f"{100.0 * x:.2f} %"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1000px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th { background: #f3f5f8; }
td.name, th.name { text-align: left; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; }
.figs svg { max-width: 100%; height: auto; }
p.note { color: #555; font-size: 0.9em; }
"""


def _render(ev: _Evaluation, title: str, *, max_points: int | None) -> str:
    conf = ev.confusion
    at = "the step's threshold" if ev.threshold is None else f"score ≥ {_num(ev.threshold)}"
    rows = [
        ("rows evaluated", _count(ev.rows)),
        ("events (label 1)", f"{_count(ev.positives)} ({_pct(ev.positives / ev.rows)})"),
        ("AUC", _num(ev.auc)),
        ("KS", _num(ev.ks)),
        ("KS reached at score ≥", _num(ev.ks_threshold)),
        ("lift of the top bucket", _num(ev.lift_top_bucket)),
        (f"accuracy ({at})", _num(conf["accuracy"])),
        (f"precision ({at})", _num(conf["precision"])),
        (f"recall ({at})", _num(conf["recall"])),
        (f"specificity ({at})", _num(conf["specificity"])),
        (f"F1 ({at})", _num(conf["f1"])),
    ]
    metric_rows = "\n".join(
        f'<tr><td class="name">{html.escape(k)}</td><td>{html.escape(v)}</td></tr>' for k, v in rows
    )
    confusion = (
        '<table class="confusion">\n'
        '<tr><th class="name"></th><th>predicted 1</th><th>predicted 0</th><th>total</th></tr>\n'
        f'<tr><th class="name">actual 1</th><td>{_count(conf["tp"])}</td>'
        f"<td>{_count(conf['fn'])}</td><td>{_count(ev.positives)}</td></tr>\n"
        f'<tr><th class="name">actual 0</th><td>{_count(conf["fp"])}</td>'
        f"<td>{_count(conf['tn'])}</td><td>{_count(ev.negatives)}</td></tr>\n"
        f'<tr><th class="name">total</th><td>{_count(conf["tp"] + conf["fp"])}</td>'
        f"<td>{_count(conf['fn'] + conf['tn'])}</td><td>{_count(ev.rows)}</td></tr>\n"
        "</table>"
    )
    g = ev.gain
    gain_rows = "\n".join(
        "<tr>"
        f"<td>{b + 1}</td><td>{_count(g['count'][b])}</td><td>{_count(g['events'][b])}</td>"
        f"<td>{_pct(g['event_rate'][b])}</td><td>{_pct(g['cum_count_share'][b])}</td>"
        f"<td>{_pct(g['cum_gain'][b])}</td><td>{_num(g['lift'][b], 3)}</td>"
        f"<td>{_num(g['cum_lift'][b], 3)}</td>"
        "</tr>"
        for b in range(g["count"].size)
    )
    figures = "\n".join(
        f'<figure id="fig-{name}">{figure_svg(fig, name=name)}</figure>'
        for name, fig in (
            ("roc", _roc_figure(ev, max_points)),
            ("ks", _ks_figure(ev, max_points)),
            ("lift", _lift_figure(ev)),
        )
    )
    t = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{t}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{t}</h1>
<p class="note">Binary classifier evaluation: label 1 is the event (e.g. default); a higher
score means the event is more likely. Aggregates over the evaluated population only.</p>
<h2>Metrics</h2>
<table class="metrics">
<tr><th class="name">metric</th><th>value</th></tr>
{metric_rows}
</table>
<h2>Confusion matrix ({html.escape(at)})</h2>
{confusion}
<h2>Gain table</h2>
<table class="gain">
<tr><th>bucket</th><th>rows</th><th>events</th><th>event rate</th>
<th>cumulative population</th><th>cumulative gain</th><th>lift</th><th>cumulative lift</th></tr>
{gain_rows}
</table>
<p class="note">Buckets of equal size by descending score; bucket 1 holds the highest scores.</p>
<h2>Figures</h2>
<div class="figs">
{figures}
</div>
</body>
</html>
"""


def _write(path: str | Path, text: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(
            f"report path {p} is a directory: name a file such as {p / 'report.html'}"
        )
    if not p.parent.is_dir():
        raise ConfigError(f"cannot write the report to {p}: directory {p.parent} does not exist")
    try:
        with p.open("w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {p}: {exc.strerror or exc}") from exc
    return p


def evaluation_report(
    y_true: Any,
    y_score: Any,
    path: str | Path,
    *,
    title: str = "Model evaluation",
    threshold: float = 0.5,
    n_buckets: int = 10,
    max_points: int | None = MAX_POINTS,
) -> Path:
    """Write a standalone HTML evaluation report of a score to ``path`` and return the path.

    The report holds the metric table (AUC, KS and where it is reached, top-bucket lift, and
    accuracy, precision, recall, specificity and F1 when predicting the event for
    ``score >= threshold``), the confusion matrix at ``threshold``, the gain table over
    ``n_buckets`` equal-count buckets, and the ROC, KS and lift figures as inline SVG. The
    file references nothing outside itself; ``title`` is escaped.

    Raises :class:`~privfin.errors.ConfigError` for invalid labels or scores (as
    :func:`privfin.ml.metrics.binary_report`), a path that is a directory or whose directory
    does not exist, and when matplotlib is not installed.
    """
    ev = _from_scores(y_true, y_score, threshold=float(threshold), n_buckets=n_buckets)
    return _write(path, _render(ev, title, max_points=max_points))


def _field(m: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(m, Mapping) or key not in m:
        raise ConfigError(f"metrics JSON: {where} has no {key!r}")
    return m[key]


def _floats(value: Any, where: str) -> FloatArray:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ConfigError(f"metrics JSON: {where} must be a list of numbers")
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metrics JSON: {where} must be a list of numbers") from exc
    if arr.size == 0:
        raise ConfigError(f"metrics JSON: {where} is empty")
    return arr


def _scalar(m: Mapping[str, Any], key: str, where: str) -> float:
    value = _field(m, key, where)
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metrics JSON: {where}.{key} must be a number") from exc


def _from_metrics(metrics: Mapping[str, Any], threshold: float | None) -> _Evaluation:
    m = metrics.get("metrics", metrics) if isinstance(metrics, Mapping) else metrics
    if not isinstance(m, Mapping):
        raise ConfigError("metrics JSON must be an object (the evaluate step's output)")
    curves = _field(m, "curves", "metrics")
    roc = _field(curves, "roc", "curves")
    fpr = _floats(_field(roc, "fpr", "curves.roc"), "curves.roc.fpr")
    tpr = _floats(_field(roc, "tpr", "curves.roc"), "curves.roc.tpr")
    thr = _floats(_field(roc, "threshold", "curves.roc"), "curves.roc.threshold")
    if not fpr.size == tpr.size == thr.size:
        raise ConfigError("metrics JSON: curves.roc.fpr, tpr and threshold differ in length")
    conf_in = _field(m, "confusion", "metrics")
    confusion = {k: _scalar(conf_in, k, "confusion") for k in _CONFUSION_KEYS}
    rows = _field(curves, "gain", "curves")
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes) or not rows:
        raise ConfigError("metrics JSON: curves.gain must be a non-empty list of bucket rows")
    gain = {
        k: np.array([_scalar(r, k, f"curves.gain[{i}]") for i, r in enumerate(rows)])
        for k in _GAIN_KEYS
    }
    if confusion["tp"] + confusion["fn"] <= 0 or confusion["tn"] + confusion["fp"] <= 0:
        raise ConfigError("metrics JSON: the confusion matrix must count both classes")
    if threshold is not None and not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold}")
    return _Evaluation(
        auc=_scalar(m, "auc", "metrics"),
        ks=_scalar(m, "ks", "metrics"),
        ks_threshold=_scalar(m, "ks_threshold", "metrics"),
        lift_top_bucket=_scalar(m, "lift_top_bucket", "metrics"),
        fpr=fpr,
        tpr=tpr,
        thresholds=thr,
        gain=gain,
        confusion=confusion,
        threshold=threshold,
    )


def figures_from_metrics(
    metrics: Mapping[str, Any], *, max_points: int | None = MAX_POINTS
) -> dict[str, Figure]:
    """The report's figures (``"roc"``, ``"ks"``, ``"lift"``) from the ``evaluate`` step's
    metrics JSON, as :func:`evaluation_report_from_metrics` draws them (for a dashboard:
    :func:`figure_svg` of each)."""
    ev = _from_metrics(metrics, None)
    return {
        "roc": _roc_figure(ev, max_points),
        "ks": _ks_figure(ev, max_points),
        "lift": _lift_figure(ev),
    }


def evaluation_report_from_metrics(
    metrics: Mapping[str, Any],
    path: str | Path,
    *,
    title: str = "Model evaluation",
    threshold: float | None = None,
    max_points: int | None = MAX_POINTS,
) -> Path:
    """Write the report of :func:`evaluation_report` from the metrics JSON of the pipeline's
    ``evaluate`` step (the parsed object, with or without its outer ``"metrics"`` key).

    The step does not record its threshold: pass the one it ran with as ``threshold`` to have
    it printed (otherwise the report says "the step's threshold"). Raises
    :class:`~privfin.errors.ConfigError` naming the first missing or malformed field.
    """
    ev = _from_metrics(metrics, threshold)
    return _write(path, _render(ev, title, max_points=max_points))

"""Plots and the HTML evaluation report (privfin.ml.report).

The figures must carry exactly the curve data of privfin.ml.metrics (checked line by line and
against independent recomputations), the report must be standalone and escaped, and the report
built from the pipeline's evaluate-step JSON must equal the one built from the scores.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from privfin.errors import ConfigError
from privfin.ml.metrics import gain_table, ks_statistic, roc_curve
from privfin.ml.report import (
    MAX_POINTS,
    evaluation_report,
    evaluation_report_from_metrics,
    figure_svg,
    figures_from_metrics,
    plot_ks,
    plot_lift,
    plot_roc,
)


def _sample(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.2 * y - 0.6)))
    score[:40] = np.round(score[:40], 1)  # some ties
    return y, score


def test_roc_figure_line_is_roc_curve() -> None:
    y, s = _sample()
    fig = plot_roc(y, s)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    (ax,) = fig.axes
    model, diagonal = ax.get_lines()
    fpr, tpr, _ = roc_curve(y, s)
    np.testing.assert_array_equal(model.get_xdata(), fpr)
    np.testing.assert_array_equal(model.get_ydata(), tpr)
    assert f"{roc_auc_score(y, s):.4f}" in str(model.get_label())
    np.testing.assert_array_equal(diagonal.get_xdata(), [0.0, 1.0])


def test_long_curves_are_thinned_to_max_points_keeping_the_ends() -> None:
    y, s = _sample(n=6000, seed=5)
    fpr, tpr, _ = roc_curve(y, s)
    assert fpr.size > MAX_POINTS
    line = plot_roc(y, s).axes[0].get_lines()[0]
    x, yy = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert MAX_POINTS // 2 < x.size <= MAX_POINTS
    assert (x[0], yy[0], x[-1], yy[-1]) == (0.0, 0.0, 1.0, 1.0)
    points = set(zip(fpr.tolist(), tpr.tolist(), strict=True))
    assert set(zip(x.tolist(), yy.tolist(), strict=True)) <= points
    full = plot_roc(y, s, max_points=None).axes[0].get_lines()[0]
    np.testing.assert_array_equal(full.get_xdata(), fpr)
    with pytest.raises(ConfigError, match="max_points"):
        plot_roc(y, s, max_points=1)
    # the KS chart keeps its KS point when thinned
    ks = ks_statistic(y, s)
    events, _, segment = plot_ks(y, s, max_points=50).axes[0].get_lines()
    assert len(events.get_xdata()) <= 51
    i = int(np.argmax(ks.tpr - ks.fpr))
    full = plot_ks(y, s, max_points=None).axes[0].get_lines()[0]
    ks_point = (float(full.get_xdata()[i]), float(ks.tpr[i]))
    drawn = set(zip(np.asarray(events.get_xdata()).tolist(), events.get_ydata(), strict=True))
    assert ks_point in drawn
    assert (segment.get_xdata()[0], segment.get_ydata()[1]) == ks_point


def test_ks_figure_lines_are_the_cumulative_shares_at_the_population_depth() -> None:
    y, s = _sample()
    ks = ks_statistic(y, s)
    events, non_events, segment = plot_ks(y, s).axes[0].get_lines()
    np.testing.assert_array_equal(events.get_ydata(), ks.tpr)
    np.testing.assert_array_equal(non_events.get_ydata(), ks.fpr)
    # x: the share of rows scoring at or above each threshold, recomputed directly
    depth = np.array([np.mean(s >= t) for t in ks.thresholds])
    np.testing.assert_allclose(events.get_xdata(), depth, rtol=0, atol=1e-12)
    i = int(np.argmax(ks.tpr - ks.fpr))
    np.testing.assert_allclose(segment.get_xdata(), [depth[i], depth[i]], atol=1e-12)
    np.testing.assert_array_equal(segment.get_ydata(), [ks.fpr[i], ks.tpr[i]])
    assert ks.tpr[i] - ks.fpr[i] == pytest.approx(ks.ks)
    assert f"KS {ks.ks:.4f}" in str(segment.get_label())


def test_lift_figure_shows_the_gain_table() -> None:
    y, s = _sample()
    table = gain_table(y, s, 8)
    gain_ax, lift_ax = plot_lift(y, s, n_buckets=8).axes
    model = gain_ax.get_lines()[0]
    np.testing.assert_array_equal(model.get_xdata(), np.r_[0.0, table.cum_count_share])
    np.testing.assert_array_equal(model.get_ydata(), np.r_[0.0, table.cum_gain])
    heights = [p.get_height() for p in lift_ax.patches]
    np.testing.assert_allclose(heights, table.lift, rtol=0, atol=0)
    cum = lift_ax.get_lines()[0]
    np.testing.assert_array_equal(cum.get_xdata(), np.arange(1, 9))
    np.testing.assert_array_equal(cum.get_ydata(), table.cum_lift)


def _standalone(text: str) -> None:
    """No resource is loaded from outside the file: no scripts, links, remote URLs."""
    assert "<script" not in text.lower()
    assert "<link" not in text.lower() and "@import" not in text
    for attr in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", text):
        assert attr.startswith("#"), attr
    for url in re.findall(r"url\(([^)]*)\)", text):
        assert url.strip("'\"").startswith("#"), url
    # the only absolute URLs are XML namespace names (never fetched)
    for m in re.finditer(r"https?://[^\"'\s<>]+", text):
        before = text[max(0, m.start() - 20) : m.start()]
        assert re.search(r"xmlns(:\w+)?=\"$", before), (before, m.group())


def test_report_is_standalone_holds_the_numbers_and_escapes_the_title(tmp_path: Path) -> None:
    y, s = _sample()
    title = 'Q3 <script>alert("x")</script> & more'
    out = evaluation_report(y, s, tmp_path / "r.html", title=title, threshold=0.6)
    assert out == tmp_path / "r.html"
    text = out.read_text(encoding="utf-8")
    _standalone(text)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in text
    assert text.count("<svg") == 3 and 'id="fig-roc"' in text and 'id="fig-lift"' in text
    # the metric table, recomputed independently with scikit-learn / numpy
    assert f"<td>{roc_auc_score(y, s):.4f}</td>" in text
    ks = ks_statistic(y, s)
    assert f"<td>{ks.ks:.4f}</td>" in text
    assert f"<td>{gain_table(y, s).lift[0]:.4f}</td>" in text
    tn, fp, fn, tp = confusion_matrix(y, (s >= 0.6).astype(int)).ravel()
    assert f"<td>{(tp + tn) / y.size:.4f}</td>" in text
    assert f'<th class="name">actual 1</th><td>{tp}</td><td>{fn}</td><td>{tp + fn}</td>' in text
    assert f'<th class="name">actual 0</th><td>{fp}</td><td>{tn}</td><td>{tn + fp}</td>' in text
    assert "score ≥ 0.6000" in text
    # the gain table: one row per bucket with its row and event counts
    table = gain_table(y, s)
    for b in range(10):
        assert f"<tr><td>{b + 1}</td><td>{table.count[b]}</td><td>{int(table.events[b])}</td>" in (
            text
        )


def test_report_from_the_evaluate_step_json_equals_the_report_from_scores(
    tmp_path: Path,
) -> None:
    from privfin.jobs.steps import evaluate_step

    y, s = _sample()
    ids = np.arange(y.size)
    out = evaluate_step(
        None,  # type: ignore[arg-type]  # the step does not use its context
        {"label": "y", "threshold": 0.55},
        {
            # ties fall into buckets in row order: the step keeps the order of its scores
            "scores": pd.DataFrame({"id": ids, "score": s}),
            "table": pd.DataFrame({"id": ids[::-1], "y": y[::-1]}),
        },
    )
    metrics = json.loads(json.dumps(out))  # as written to and read from the metrics file
    a = evaluation_report(y, s, tmp_path / "a.html", threshold=0.55)
    b = evaluation_report_from_metrics(metrics, tmp_path / "b.html", threshold=0.55)
    assert a.read_bytes() == b.read_bytes()
    figs = figures_from_metrics(metrics)
    roc_line = figs["roc"].axes[0].get_lines()[0]
    assert roc_line.get_xdata().tolist() == metrics["metrics"]["curves"]["roc"]["fpr"]
    assert roc_line.get_ydata().tolist() == metrics["metrics"]["curves"]["roc"]["tpr"]
    assert figure_svg(figs["ks"], name="ks") in b.read_text(encoding="utf-8")
    c = evaluation_report_from_metrics(metrics["metrics"], tmp_path / "c.html")
    text = c.read_text(encoding="utf-8")
    _standalone(text)
    assert "accuracy (the step&#x27;s threshold)" in text


def test_report_from_metrics_names_the_missing_field(tmp_path: Path) -> None:
    y, s = _sample()
    from privfin.jobs.steps import evaluate_step

    out = evaluate_step(
        None,  # type: ignore[arg-type]
        {"label": "y"},
        {
            "scores": pd.DataFrame({"id": range(y.size), "score": s}),
            "table": pd.DataFrame({"id": range(y.size), "y": y}),
        },
    )
    broken = json.loads(json.dumps(out))
    del broken["metrics"]["curves"]["roc"]["tpr"]
    with pytest.raises(ConfigError, match=r"curves.roc has no 'tpr'"):
        evaluation_report_from_metrics(broken, tmp_path / "x.html")
    broken = json.loads(json.dumps(out))
    broken["metrics"]["curves"]["gain"][2]["lift"] = "high"
    with pytest.raises(ConfigError, match=r"curves.gain\[2\].lift must be a number"):
        evaluation_report_from_metrics(broken, tmp_path / "x.html")
    with pytest.raises(ConfigError, match="metrics has no 'curves'"):
        evaluation_report_from_metrics({"metrics": {"auc": 0.7}}, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_report_path_and_input_errors_are_one_line(tmp_path: Path) -> None:
    y, s = _sample()
    with pytest.raises(ConfigError, match="is a directory"):
        evaluation_report(y, s, tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        evaluation_report(y, s, tmp_path / "missing" / "r.html")
    with pytest.raises(ConfigError, match="single class"):
        evaluation_report(np.zeros(10), np.arange(10.0), tmp_path / "r.html")
    with pytest.raises(ConfigError, match="threshold must be a finite number"):
        evaluation_report(y, s, tmp_path / "r.html", threshold=float("nan"))
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    y, s = _sample()
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    for plot in (plot_roc, plot_ks, plot_lift):
        with pytest.raises(ConfigError, match=r"pip install 'privfin\[plots\]'"):
            plot(y, s)


def test_no_pyplot_and_no_global_matplotlib_state_left_behind(tmp_path: Path) -> None:
    """In a fresh interpreter: making figures and a report never imports pyplot and leaves
    every rcParam as it was; the SVG of a figure is deterministic."""
    code = """
import sys, numpy as np, matplotlib
def rc():  # every parameter but "backend" (reading it would resolve it through pyplot)
    return {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != "backend"}
before = rc()
from privfin.ml.report import evaluation_report, figure_svg, plot_roc
y = np.r_[np.zeros(30), np.ones(30)]; s = np.linspace(0, 1, 60) ** 2
evaluation_report(y, s, sys.argv[1])
assert figure_svg(plot_roc(y, s), name="a") == figure_svg(plot_roc(y, s), name="a")
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
assert rc() == before, "rcParams changed"
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_figure_svg_is_an_inline_svg_element() -> None:
    y, s = _sample()
    svg = figure_svg(plot_roc(y, s), name="roc")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg
    assert "ROC curve" in svg  # text stays text (svg.fonttype none)


def test_the_extra_named_in_the_error_exists_and_ci_installs_matplotlib() -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("matplotlib") for req in extras["plots"])
    assert any(req.startswith("matplotlib") for req in extras["dev"])  # CI runs these tests

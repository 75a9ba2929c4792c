"""The dashboard's SVG plots: well-formed, scaled right, thinned, labelled and escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from privfin.node.dashboard import plots
from privfin.node.dashboard.markup import Markup, h

NS = {"s": "http://www.w3.org/2000/svg"}


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _points(el: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in el.attrib["points"].split()]  # type: ignore[misc]


def test_roc_is_scaled_to_the_unit_square_and_thinned() -> None:
    fpr = np.linspace(0.0, 1.0, 5001)
    tpr = np.sqrt(fpr)
    svg = plots.roc_svg(fpr.tolist(), tpr.tolist(), auc=2 / 3)
    root = _parse(svg)
    assert root.attrib["role"] == "img"
    assert root.find("s:title", NS).text == "ROC curve"  # type: ignore[union-attr]
    assert "AUC = 0.6667" in svg
    (line,) = root.findall(".//s:polyline", NS)
    pts = _points(line)
    assert len(pts) <= plots.MAX_POINTS
    # (0, 0) at the bottom-left corner of the frame, (1, 1) at the top-right
    frame = next(r for r in root.findall("s:rect", NS) if r.attrib.get("fill") == "none")
    x0, y0 = float(frame.attrib["x"]), float(frame.attrib["y"])
    w, hgt = float(frame.attrib["width"]), float(frame.attrib["height"])
    assert pts[0] == pytest.approx((x0, y0 + hgt))
    assert pts[-1] == pytest.approx((x0 + w, y0))
    # a point in between: fpr 0.25 -> tpr 0.5
    i = min(range(len(pts)), key=lambda k: abs(pts[k][0] - (x0 + 0.25 * w)))
    assert pts[i][1] == pytest.approx(y0 + hgt - 0.5 * hgt, abs=1.5)


def test_bars_are_proportional_and_labels_escaped() -> None:
    svg = plots.importance_svg({"<b>x</b>": 4.0, "age": 2.0, "zero": 0.0})
    root = _parse(svg)
    bars = {
        g.attrib["data-label"]: float(g.find("s:rect", NS).attrib["width"])  # type: ignore[union-attr]
        for g in root.iter("{http://www.w3.org/2000/svg}g")
    }
    assert set(bars) == {"<b>x</b>", "age", "zero"}
    assert bars["<b>x</b>"] == pytest.approx(2 * bars["age"], rel=1e-3)
    assert bars["zero"] == 0.0
    assert "<b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg


def test_ks_lift_loss_overlap_and_dp_plots() -> None:
    thr = np.linspace(1, 0, 50).tolist()
    ks = plots.ks_svg(thr, np.linspace(0, 1, 50).tolist(), np.linspace(0, 0.6, 50).tolist(), 0.4)
    assert len(_parse(ks).findall(".//s:polyline", NS)) == 2 and "KS = 0.4000" in ks
    gain = [{"bucket": b, "lift": 3.0 - b / 5, "cum_lift": 2.0} for b in range(1, 11)]
    assert len(_parse(plots.lift_svg(gain)).findall(".//s:polyline", NS)) == 2
    loss = plots.loss_svg([0.69, 0.5, 0.41, float("nan"), 0.38], what="round")
    (line,) = _parse(loss).findall(".//s:polyline", NS)
    assert len(_points(line)) == 4  # the NaN is dropped
    assert "Loss per round" in loss
    psi = plots.overlap_svg({"bank_train (this party)": 200, "intersection": 166})
    assert "166" in psi and "bank_train (this party)" in psi
    dp = plots.dp_budget_svg({"loans": (0.5, 2.0), "cards": (0.1, None)})
    labels = [g.attrib["data-label"] for g in _parse(dp).iter("{http://www.w3.org/2000/svg}g")]
    assert labels == ["loans: spent", "loans: budget", "cards: spent"]


def test_dag_puts_a_step_right_of_what_it_reads() -> None:
    steps = ["psi", "train", "lr", "score", "evaluate"]
    deps = {"train": ["psi"], "lr": ["psi"], "score": ["lr"], "evaluate": ["score", "psi"]}
    svg = plots.dag_svg(
        steps,
        deps,
        {s: s for s in steps},
        {"psi": "done", "train": "running"},
        {"psi", "train", "lr", "score"},
    )
    root = _parse(svg)
    x = {}
    cls = {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        x[g.attrib["data-step"]] = float(g.find("s:rect", NS).attrib["x"])  # type: ignore[union-attr]
        cls[g.attrib["data-step"]] = g.attrib["class"]
    for s, ds in deps.items():
        assert all(x[s] > x[d] for d in ds), s
    assert x["train"] == x["lr"]
    assert cls == {
        "psi": "dag-step st-done",
        "train": "dag-step st-running",
        "lr": "dag-step st-pending",
        "score": "dag-step st-pending",
        "evaluate": "dag-step st-elsewhere",
    }
    assert len(root.findall(".//s:path[@marker-end]", NS)) == 5


def test_thin_ticks_and_markup() -> None:
    idx = plots.thin(10_000, 100)
    assert idx[0] == 0 and idx[-1] == 9999 and len(idx) == 100
    assert plots.thin(5, 100) == [0, 1, 2, 3, 4]
    assert plots.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert plots.nice_ticks(0.0, 7.0)[-1] >= 7.0
    assert h("<p>{}</p>", "<i>") == "<p>&lt;i&gt;</p>"
    assert h("<p>{}</p>", Markup("<i>")) == "<p><i></p>"
    assert h("{:.2f}", 1.2345) == "1.23"

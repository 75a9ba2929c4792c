"""The result plots of a job at this node, drawn from the same sources ``privfin job results``
and ``privfin data show`` read: the job's ``metrics`` artifacts (this party's own outputs, at
their latest attempt) and the DP budget ledger.

Only aggregates are drawn: curves and counts from the ``evaluate`` step, the PSI step's
intersection size (with this party's own input size), feature importance, a loss history (of a
metrics output, or of a single-component job's result such as horizontal FL's per-round
``history``) and the epsilon this job spent. No table, score or id is read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from privfin.errors import ConfigError
from privfin.node.dashboard import plots
from privfin.node.dashboard.markup import Markup

if TYPE_CHECKING:
    from privfin.node.runner import JobRunner

__all__ = ["Plot", "job_plots"]

#: A metrics artifact larger than this is not drawn (an evaluate step's curves are far smaller).
MAX_METRICS_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Plot:
    """One figure: ``key`` (``step/output/kind``) names it in URLs."""

    step: str
    output: str
    kind: str
    title: str
    svg: Markup

    @property
    def key(self) -> str:
        return f"{self.step}/{self.output}/{self.kind}"


def _numbers(value: Any) -> list[float] | None:
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    return [float(v) for v in value]


def _evaluation(step: str, name: str, m: Mapping[str, Any]) -> list[Plot]:
    curves = m.get("curves")
    if not isinstance(curves, Mapping):
        return []
    out: list[Plot] = []
    roc = curves.get("roc")
    if isinstance(roc, Mapping):
        fpr, tpr = _numbers(roc.get("fpr")), _numbers(roc.get("tpr"))
        auc = m.get("auc")
        if fpr and tpr and len(fpr) == len(tpr):
            a = float(auc) if isinstance(auc, int | float) else None
            out.append(Plot(step, name, "roc", "ROC curve", plots.roc_svg(fpr, tpr, a)))
    ks = curves.get("ks")
    if isinstance(ks, Mapping):
        thr, tpr, fpr = (_numbers(ks.get(k)) for k in ("threshold", "tpr", "fpr"))
        if thr and tpr and fpr and len(thr) == len(tpr) == len(fpr):
            value, at = m.get("ks"), m.get("ks_threshold")
            out.append(
                Plot(
                    step,
                    name,
                    "ks",
                    "KS curve",
                    plots.ks_svg(
                        thr,
                        tpr,
                        fpr,
                        float(value) if isinstance(value, int | float) else None,
                        float(at) if isinstance(at, int | float) else None,
                    ),
                )
            )
    gain = curves.get("gain")
    if isinstance(gain, list) and gain and all(isinstance(r, Mapping) for r in gain):
        rows = [
            {k: float(v) for k, v in r.items() if isinstance(v, int | float)} for r in gain[:1000]
        ]
        out.append(Plot(step, name, "lift", "Lift by score bucket", plots.lift_svg(rows)))
    return out


def _loss(step: str, name: str, m: Mapping[str, Any]) -> list[Plot]:
    history = m.get("history")
    losses: list[float] | None = None
    what = "iteration"
    if isinstance(history, list) and history and all(isinstance(r, Mapping) for r in history):
        # (horizontal FL's server: one entry per round, train_loss where the round succeeded)
        key = "loss" if any("loss" in r for r in history) else "train_loss"
        losses = _numbers([r[key] for r in history if isinstance(r.get(key), int | float)])
        what = "round" if any("round" in r for r in history) else "iteration"
    elif "loss" in m:
        losses = _numbers(m.get("loss"))
    if not losses:
        return []
    return [Plot(step, name, "loss", f"Loss per {what}", plots.loss_svg(losses, what=what))]


def _importance(step: str, name: str, m: Mapping[str, Any]) -> list[Plot]:
    vals = {
        str(k): float(v)
        for k, v in m.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    if not vals or len(vals) != len(m):
        return []
    return [Plot(step, name, "importance", "Feature importance", plots.importance_svg(vals))]


def _dataset_rows(runner: JobRunner, lineage: Mapping[str, Any]) -> dict[str, int]:
    """This party's registered datasets a step read directly, with their row counts."""
    out: dict[str, int] = {}
    inputs = lineage.get("inputs")
    if not isinstance(inputs, Mapping):
        return out
    for ref in inputs.values():
        if isinstance(ref, str) and ref.startswith("dataset:"):
            name = ref.split(":")[1]
            try:
                out[f"{name} (this party)"] = int(runner.registry.get(name).rows)
            except ConfigError:
                continue
    return out


def _read_metrics(runner: JobRunner, job: str, path: str, size: int) -> Any:
    if size > MAX_METRICS_BYTES:
        return None
    try:
        return json.loads(runner.artifact_path(job, path).read_text())
    except (OSError, ValueError, ConfigError, RecursionError):
        return None


def job_plots(runner: JobRunner, job: str) -> list[Plot]:
    """Every plot this node can draw for ``job`` (possibly none)."""
    out: list[Plot] = []
    for art in runner.pipelines.artifacts(job):
        if art.kind != "metrics":
            continue
        data = _read_metrics(runner, job, art.path, art.size)
        if not isinstance(data, Mapping):
            continue
        component = str(art.lineage.get("component", ""))
        if isinstance(data.get("curves"), Mapping):
            out += _evaluation(art.step, art.name, data)
        elif isinstance(data.get("intersection_size"), int):
            sizes = _dataset_rows(runner, art.lineage)
            sizes["intersection"] = int(data["intersection_size"])
            out.append(Plot(art.step, art.name, "overlap", "PSI overlap", plots.overlap_svg(sizes)))
        elif component == "secureboost" and art.name == "importance":
            out += _importance(art.step, art.name, data)
        out += _loss(art.step, art.name, data)
    status = runner.status(job) or {}
    result = status.get("result")
    if "steps" not in status and isinstance(result, Mapping):  # a single-component job
        out += _loss("result", "history", result)
    spent: dict[str, list[float]] = {}
    for s in runner.dp_ledger.history():
        if s.job == job and s.state != "released":
            spent.setdefault(s.dataset, [0.0])[0] += s.epsilon
    if spent:
        rows: dict[str, tuple[float, float | None]] = {}
        for dataset, (eps,) in sorted(spent.items()):
            budget = runner.dp_ledger.budget(dataset)
            rows[dataset] = (eps, None if budget is None else budget.epsilon)
        out.append(Plot("dp", "budget", "dp", "DP budget spent", plots.dp_budget_svg(rows)))
    return out

"""The Assessments page: the reports ``privfin assess ... --node-config node.yaml`` stored under
the node's ``state_dir/assessments/<name>/report.json``, listed and shown one by one.

A report is read with :func:`privfin.assess.report.load_report` (its schema is checked) and
shown with the dashboard's own markup (escaped) plus the radar drawn by
:func:`privfin.assess.report.radar_svg` (which escapes every name it draws). The stored
report.html itself is offered as a download, never served inline (it carries its own CSS).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from privfin.assess.assess import Comparison
from privfin.assess.model import Assessment, Perspective
from privfin.assess.report import Report, load_report, radar_svg
from privfin.node.dashboard.markup import Markup, h, join
from privfin.node.dashboard.pages import table

__all__ = ["REPORTS_DIR", "assessment_page", "assessments_page", "list_reports", "report_dir"]

REPORTS_DIR = "assessments"  # privfin.cli.assess.REPORTS_DIR (node may not import cli)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAX_REPORTS = 500


def report_dir(state_dir: Path, name: str) -> Path | None:
    """The directory of report ``name`` (a plain directory name), or ``None``."""
    if not _NAME.fullmatch(name) or ".." in name:
        return None
    d = Path(state_dir) / REPORTS_DIR / name
    return d if (d / "report.json").is_file() else None


def list_reports(state_dir: Path) -> list[dict[str, Any]]:
    """The stored reports, newest first: name, kind, subject, created, ratings (or the
    reason a report cannot be read)."""
    root = Path(state_dir) / REPORTS_DIR
    if not root.is_dir():
        return []
    rows: list[dict[str, Any]] = []
    dirs = sorted((d for d in root.iterdir() if report_dir(state_dir, d.name)), reverse=True)
    for d in dirs[:MAX_REPORTS]:
        try:
            report = load_report(d / "report.json")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            rows.append({"name": d.name, "error": f"unreadable: {type(exc).__name__}"})
            continue
        rows.append({"name": d.name, "report": report})
    return rows


def _ratings(a: Assessment) -> str:
    return " ".join(f"{p.value[:5]} {'–' if r is None else int(r)}" for p, r in a.ratings().items())


def assessments_page(rows: Sequence[dict[str, Any]]) -> Markup:
    out = []
    for row in rows:
        link = h('<a href="/assessments/{}">{}</a>', row["name"], row["name"])
        report: Report | None = row.get("report")
        if report is None:
            out.append([link, "", "", "", row.get("error", "")])
        elif isinstance(report, Comparison):
            subjects = ", ".join(a.subject for a in report.assessments)
            out.append([link, "comparison", f"{report.scenario}: {subjects}", report.created, ""])
        else:
            out.append([link, report.kind, report.subject, report.created, _ratings(report)])
    return join(
        [
            h(
                "<p>Reports written by <code>privfin assess technology|job|compare "
                "--node-config</code> into this node's state directory.</p>"
            ),
            table(
                "Stored assessment reports",
                ["report", "kind", "subject", "created", "ratings"],
                out,
                "No assessment report is stored on this node yet.",
            ),
        ]
    )


def _one(a: Assessment) -> Markup:
    rows = []
    for p in Perspective:
        res = a.perspectives.get(p)
        rating = (
            "not measured"
            if res is None or res.rating is None
            else (f"{int(res.rating)} · {res.rating.label}")
        )
        reasons = join(h("<li>{}</li>", r) for r in (res.reasons if res else ()))
        rows.append([p.heading, rating, h("<ul>{}</ul>", reasons)])
    checks = [
        [c.name, "passed" if c.passed else "FAILED", c.detail, c.clause]
        for res in a.perspectives.values()
        for c in res.checks
    ]
    return join(
        [
            h(
                "<p><strong>Threat model: {}.</strong> {}</p>",
                a.threat_model.value,
                a.threat_model_words,
            ),
            table("Ratings and reasons", ["perspective", "rating", "reasons"], rows, ""),
            table(
                "Checks and probes", ["check", "result", "detail", "clause"], checks, "No checks."
            ),
        ]
    )


def assessment_page(name: str, report: Report) -> Markup:
    """One report: the radar, the ratings with their reasons, the checks; downloads."""
    if isinstance(report, Comparison):
        series = [(a.subject, a.ratings()) for a in report.assessments]
        body = join(h("<h2>{}</h2>{}", a.subject, _one(a)) for a in report.assessments)
    else:
        series = [(report.subject, report.ratings())]
        body = _one(report)
    return join(
        [
            h(
                '<figure class="plot">{}<figcaption>Ratings, 1 (centre) to 5</figcaption></figure>',
                Markup(radar_svg(series)),
            ),
            body,
            h(
                '<p>Download: <a href="/assessments/{}/report.json">report.json</a> · '
                '<a href="/assessments/{}/report.html">report.html</a></p>',
                name,
                name,
            ),
        ]
    )

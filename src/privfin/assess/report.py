"""Assessment reports: JSON (:meth:`Assessment.to_dict`), a self-contained HTML page (inline
CSS and SVG plots drawn here: a radar of the seven ratings, attack ROC curves, scaling curves,
and for a comparison a side-by-side table with the cost next to the leakage), and PDF through
a headless Chromium (``--print-to-pdf``).

Everything that comes from evidence is escaped: a hostile string in a report (a dataset name,
an attack detail) cannot inject markup or script. No network access, no template engine.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from privfin.assess.assess import Comparison
from privfin.assess.model import (
    Assessment,
    AttackResult,
    Evidence,
    Perspective,
    PerspectiveResult,
    Rating,
)

__all__ = [
    "find_chromium",
    "load_report",
    "radar_svg",
    "render_html",
    "roc_svg",
    "scaling_svg",
    "to_pdf",
    "write_report",
]

Report = Assessment | Comparison
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def esc(value: object) -> str:
    """``value`` as text safe inside HTML and attribute values."""
    return html.escape(str(value), quote=True)


def _num(v: float) -> str:
    return f"{v:.1f}"


# -- plots ---------------------------------------------------------------------------------


def radar_svg(series: Sequence[tuple[str, Mapping[Perspective, Rating | None]]]) -> str:
    """A radar of the seven ratings (1-5 from the centre out), one polygon per series; an
    unrated perspective sits at the centre and its axis label says "not measured"."""
    width, height, cx, cy, r = 640, 420, 250, 210, 140
    axes = list(Perspective)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="radar" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img"><title>Ratings radar</title>'
    ]

    def point(i: int, value: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * i / len(axes)
        return cx + r * value / 5 * math.cos(a), cy + r * value / 5 * math.sin(a)

    for level in range(1, 6):
        ring = " ".join(f"{_num(x)},{_num(y)}" for x, y in (point(i, level) for i in range(7)))
        parts.append(f'<polygon points="{ring}" fill="none" stroke="#ccc"/>')
    unrated = {p for _, ratings in series for p in axes if ratings.get(p) is None}
    for i, p in enumerate(axes):
        x, y = point(i, 5)
        parts.append(f'<line x1="{cx}" y1="{cy}" x2="{_num(x)}" y2="{_num(y)}" stroke="#ccc"/>')
        lx, ly = point(i, 6.1)
        anchor = "middle" if abs(lx - cx) < 20 else ("start" if lx > cx else "end")
        label = p.heading.split(" and ")[0] + (" (n/m)" if p in unrated else "")
        parts.append(
            f'<text x="{_num(lx)}" y="{_num(ly)}" font-size="12" text-anchor="{anchor}">'
            f"{esc(label)}</text>"
        )
    for k, (name, ratings) in enumerate(series):
        color = _COLORS[k % len(_COLORS)]
        pts = " ".join(
            f"{_num(x)},{_num(y)}"
            for x, y in (point(i, float(ratings.get(p) or 0)) for i, p in enumerate(axes))
        )
        parts.append(
            f'<polygon class="series" points="{pts}" fill="{color}" fill-opacity="0.15" '
            f'stroke="{color}" stroke-width="2"><title>{esc(name)}</title></polygon>'
        )
        parts.append(
            f'<text x="480" y="{40 + 18 * k}" font-size="13" fill="{color}">■ {esc(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _plot_frame(title: str, xlabel: str, ylabel: str, body: str) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 360 300" width="360" '
        f'height="300" role="img"><title>{esc(title)}</title>'
        '<rect x="50" y="20" width="280" height="230" fill="none" stroke="#999"/>'
        f'<text x="190" y="290" font-size="12" text-anchor="middle">{esc(xlabel)}</text>'
        f'<text x="14" y="135" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 135)">{esc(ylabel)}</text>{body}</svg>'
    )


def roc_svg(attacks: Sequence[AttackResult]) -> str:
    """ROC curves of the attacks that have one: solid for the protected target, dashed for
    the unprotected control; the diagonal is chance. Empty string when no attack has a curve."""
    curves = [a for a in attacks if len(a.roc) >= 2]
    if not curves:
        return ""

    def xy(f: float, t: float) -> str:
        return f"{_num(50 + 280 * f)},{_num(250 - 230 * t)}"

    body = ['<line x1="50" y1="250" x2="330" y2="20" stroke="#bbb" stroke-dasharray="2 3"/>']
    for k, a in enumerate(curves):
        color = _COLORS[k % len(_COLORS)]
        dash = "" if a.protected else ' stroke-dasharray="6 4"'
        pts = " ".join(xy(f, t) for f, t in sorted(a.roc))
        label = f"{a.attack} on {a.target} ({'protected' if a.protected else 'control'})"
        if a.auc is not None:
            label += f", AUC {a.auc:.3f}"
        body.append(
            f'<polyline class="roc" points="{pts}" fill="none" stroke="{color}" '
            f'stroke-width="2"{dash}><title>{esc(label)}</title></polyline>'
        )
        body.append(
            f'<text x="56" y="{36 + 14 * k}" font-size="10" fill="{color}">{esc(label)}</text>'
        )
    for v in (0.0, 0.5, 1.0):
        body.append(
            f'<text x="{_num(50 + 280 * v)}" y="264" font-size="10" '
            f'text-anchor="middle">{v:g}</text>'
        )
        body.append(
            f'<text x="46" y="{_num(254 - 230 * v)}" font-size="10" text-anchor="end">{v:g}</text>'
        )
    return _plot_frame(
        "Attack ROC curves", "false-positive rate", "true-positive rate", "".join(body)
    )


def _points(evidence: Iterable[Evidence]) -> dict[str, list[tuple[float, float]]]:
    """``time[rows=N]`` evidence as dimension -> [(N, seconds)]."""
    out: dict[str, list[tuple[float, float]]] = {}
    for e in evidence:
        if not (e.name.startswith("time[") and e.name.endswith("]") and "=" in e.name):
            continue
        dim, _, size = e.name[5:-1].partition("=")
        try:
            x, y = float(size), float(e.value)
        except ValueError:
            continue
        if x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y):
            out.setdefault(dim, []).append((x, y))
    return {k: sorted(v) for k, v in out.items()}


def scaling_svg(evidence: Sequence[Evidence]) -> str:
    """Wall time against size on log-log axes, one curve per dimension (rows, features,
    parties), from ``time[dim=N]`` evidence. Empty string without points."""
    series = {k: v for k, v in _points(evidence).items() if len(v) >= 2}
    if not series:
        return ""
    xs = [math.log10(x) for v in series.values() for x, _ in v]
    ys = [math.log10(y) for v in series.values() for _, y in v]
    x0, x1 = min(xs), max(xs) + 1e-9
    y0, y1 = min(ys), max(ys) + 1e-9

    def xy(x: float, y: float) -> str:
        px = 50 + 280 * (math.log10(x) - x0) / (x1 - x0)
        py = 250 - 230 * (math.log10(y) - y0) / (y1 - y0)
        return f"{_num(px)},{_num(py)}"

    body = []
    for k, (dim, pts) in enumerate(series.items()):
        color = _COLORS[k % len(_COLORS)]
        body.append(
            f'<polyline class="scaling" points="{" ".join(xy(x, y) for x, y in pts)}" '
            f'fill="none" stroke="{color}" stroke-width="2"><title>{esc(dim)}</title></polyline>'
        )
        for x, y in pts:
            cx, cy = xy(x, y).split(",")
            body.append(
                f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}">'
                f"<title>{esc(dim)}={x:g}: {y:.3g} s</title></circle>"
            )
        body.append(
            f'<text x="56" y="{36 + 14 * k}" font-size="11" fill="{color}">{esc(dim)}</text>'
        )
    body.append(
        f'<text x="50" y="264" font-size="10">{10**x0:.3g}</text>'
        f'<text x="330" y="264" font-size="10" text-anchor="end">{10**x1:.3g}</text>'
        f'<text x="46" y="250" font-size="10" text-anchor="end">{10**y0:.2g}</text>'
        f'<text x="46" y="28" font-size="10" text-anchor="end">{10**y1:.2g}</text>'
    )
    return _plot_frame("Scaling (log-log)", "size (log)", "wall time, s (log)", "".join(body))


# -- HTML ----------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.3em .6em;
text-align:left;vertical-align:top;font-size:.92em}th{background:#f4f4f4}
.r1{background:#f8d7da}.r2{background:#fde2c8}.r3{background:#fff3cd}.r4{background:#d9f2e3}
.r5{background:#c3e6cb}.rn{background:#eee;color:#666}.pass{color:#1a7f37}.fail{color:#c62828}
.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.tm{background:#f6f8fa;padding:.6em 1em;border-left:4px solid #1f77b4}small{color:#666}
"""


def _rating_cell(r: Rating | None) -> str:
    if r is None:
        return '<td class="rn">not measured</td>'
    return f'<td class="r{int(r)}">{int(r)} · {esc(r.label)}</td>'


def _result_html(res: PerspectiveResult) -> str:
    out = [
        f"<h3>{esc(res.perspective.heading)}</h3><table><tr><th>rating</th>"
        f"{_rating_cell(res.rating)}</tr></table><ul>"
    ]
    out += [f"<li>{esc(reason)}</li>" for reason in res.reasons]
    out.append("</ul>")
    if res.checks:
        out.append("<table><tr><th>check</th><th>result</th><th>detail</th><th>clause</th></tr>")
        for c in res.checks:
            cls, word = ("pass", "passed") if c.passed else ("fail", "FAILED")
            out.append(
                f'<tr><td>{esc(c.name)}</td><td class="{cls}">{word}</td>'
                f"<td>{esc(c.detail)}</td><td>{esc(c.clause)}</td></tr>"
            )
        out.append("</table>")
    if res.attacks:
        out.append(
            "<table><tr><th>attack</th><th>target</th><th>protected</th><th>trials</th>"
            "<th>AUC</th><th>advantage</th><th>TPR at low FPR</th><th>other</th></tr>"
        )
        for a in res.attacks:
            tpr = ", ".join(f"{t:.3f} @ {f:g}" for f, t in sorted(a.tpr_at_fpr.items()))
            other = f"{a.metric} = {a.value}" if a.metric else ""
            out.append(
                f"<tr><td>{esc(a.attack)}</td><td>{esc(a.target)}</td>"
                f"<td>{'yes' if a.protected else 'no (control)'}</td><td>{a.trials}</td>"
                f"<td>{'' if a.auc is None else f'{a.auc:.3f}'}</td>"
                f"<td>{'' if a.advantage is None else f'{a.advantage:.3f}'}</td>"
                f"<td>{esc(tpr)}</td><td>{esc(other)} <small>{esc(a.detail)}</small></td></tr>"
            )
        out.append("</table>")
        out.append(f'<div class="plots">{roc_svg(res.attacks)}</div>')
    if res.evidence:
        out.append(
            "<details><summary>evidence</summary><table><tr><th>name</th><th>value</th>"
            "<th>unit</th><th>source</th></tr>"
        )
        for e in res.evidence:
            out.append(
                f"<tr><td>{esc(e.name)}</td><td>{esc(e.value)}</td><td>{esc(e.unit)}</td>"
                f"<td>{esc(e.source)}</td></tr>"
            )
        out.append("</table></details>")
        if res.perspective is Perspective.SCALABILITY:
            out.append(f'<div class="plots">{scaling_svg(res.evidence)}</div>')
    return "".join(out)


def _env_html(env: Mapping[str, str], created: str) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in env.items())
    return (
        f"<h2>Environment</h2><p><small>created {esc(created)}; measurements on a shared "
        f"machine are noisy</small></p><table>{rows}</table>"
    )


def _assessment_body(a: Assessment) -> str:
    ratings = a.ratings()
    out = [
        f'<p class="tm"><b>Threat model: {esc(a.threat_model.value)}.</b> '
        f"{esc(a.threat_model_words)}</p>",
        '<div class="plots">',
        radar_svg([(a.subject, ratings)]),
        "<table><tr><th>perspective</th><th>rating</th></tr>",
    ]
    out += [f"<tr><td>{esc(p.heading)}</td>{_rating_cell(r)}</tr>" for p, r in ratings.items()]
    out.append("</table></div>")
    for p in Perspective:
        if p in a.perspectives:
            out.append(_result_html(a.perspectives[p]))
    return "".join(out)


def _value(a: Assessment, p: Perspective, name: str) -> str:
    res = a.perspectives.get(p)
    for e in res.evidence if res else ():
        if e.name == name:
            v = e.value
            return f"{v:.4g}" if isinstance(v, float) else str(v)
    return "—"


def _leak(a: Assessment) -> str:
    res = a.perspectives.get(Perspective.SECURITY)
    if res is None:
        return "—"
    adv = [x.advantage for x in res.attacks if x.protected and x.advantage is not None]
    if adv:
        return f"max advantage {max(adv):.3f}"
    ctl = [x.advantage for x in res.attacks if not x.protected and x.advantage is not None]
    return f"unprotected: advantage {max(ctl):.3f}" if ctl else "no scored attack"


def _comparison_body(c: Comparison) -> str:
    out = [
        '<div class="plots">',
        radar_svg([(a.subject, a.ratings()) for a in c.assessments]),
        "</div><h2>Side by side</h2><table><tr><th>perspective</th>",
    ]
    out += [f"<th>{esc(a.subject)}</th>" for a in c.assessments]
    out.append("</tr>")
    for p in Perspective:
        out.append(f"<tr><td>{esc(p.heading)}</td>")
        out += [_rating_cell(a.ratings()[p]) for a in c.assessments]
        out.append("</tr>")
    out.append("</table><h2>Cost next to leakage</h2><table><tr><th></th>")
    out += [f"<th>{esc(a.subject)}</th>" for a in c.assessments]
    out.append("</tr>")
    rows: list[tuple[str, Callable[[Assessment], str]]] = [
        ("threat model", lambda a: a.threat_model.value),
        ("leakage (attacks)", _leak),
        ("accuracy gap", lambda a: _value(a, Perspective.ACCURACY, "gap")),
        ("wall time, s", lambda a: _value(a, Perspective.PERFORMANCE, "wall_s")),
        ("CPU, s", lambda a: _value(a, Perspective.PERFORMANCE, "cpu_s")),
        ("peak memory, MB", lambda a: _value(a, Perspective.PERFORMANCE, "peak_rss_mb")),
        ("bytes sent", lambda a: _value(a, Perspective.COMMUNICATION, "bytes_total")),
        ("rounds", lambda a: _value(a, Perspective.COMMUNICATION, "rounds")),
        ("WAN slowdown", lambda a: _value(a, Perspective.COMMUNICATION, "wan_slowdown")),
    ]
    for label, get in rows:
        out.append(f"<tr><th>{esc(label)}</th>")
        out += [f"<td>{esc(get(a))}</td>" for a in c.assessments]
        out.append("</tr>")
    out.append("</table>")
    for a in c.assessments:
        out.append(f"<h2>{esc(a.subject)}</h2>{_assessment_body(a)}")
    return "".join(out)


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    if isinstance(report, Comparison):
        title = f"Assessment: scenario {report.scenario}, side by side"
        body, env, created = _comparison_body(report), report.environment, report.created
    else:
        title = f"Assessment of {report.kind} {report.subject}"
        body, env, created = _assessment_body(report), report.environment, report.created
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p><small>Ratings 1 (insufficient) to 5 (excellent) by the "
        "rubric of docs/assessment.md; “not measured” means no evidence, not a bad result."
        f"</small></p>{body}{_env_html(env, created)}</body></html>"
    )


# -- files ---------------------------------------------------------------------------------


def load_report(path: str | Path) -> Report:
    """Read a report.json written by :func:`write_report`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("a report is a JSON object")
    if "assessments" in data:
        return Comparison.from_dict(data)
    return Assessment.from_dict(data)


def find_chromium() -> str | None:
    """A Chromium/Chrome binary (``PRIVFIN_CHROMIUM`` first), or ``None``."""
    env = os.environ.get("PRIVFIN_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def to_pdf(html_path: str | Path, pdf_path: str | Path, *, timeout: float = 120.0) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium.

    Raises
    ------
    ConfigError
        No Chromium found (install it: ``apt-get install chromium``, or set
        ``PRIVFIN_CHROMIUM``), or it failed to print.
    """
    from privfin.errors import ConfigError

    exe = find_chromium()
    if exe is None:
        raise ConfigError(
            "PDF export needs Chromium (apt-get install chromium, or set PRIVFIN_CHROMIUM to a "
            "Chrome/Chromium binary); report.html and report.json were written"
        )
    src, dst = Path(html_path).resolve(), Path(pdf_path).resolve()
    dst.unlink(missing_ok=True)
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-pdf-header-footer",
        f"--print-to-pdf={dst}", src.as_uri(),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        raise ConfigError(f"Chromium did not print the PDF within {timeout:g} s") from None
    if not dst.exists() or dst.stat().st_size == 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"Chromium failed to print the PDF (exit {proc.returncode}): {tail[0]}")
    return dst


def write_report(report: Report, out_dir: str | Path, *, pdf: bool = False) -> list[Path]:
    """Write report.json and report.html (and report.pdf with ``pdf``) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.html"]
    data: dict[str, Any] = report.to_dict()
    paths[0].write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    paths[1].write_text(render_html(report), encoding="utf-8")
    if pdf:
        paths.append(to_pdf(paths[1], out / "report.pdf"))
    return paths

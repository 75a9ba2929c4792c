"""Reports: the HTML escapes hostile strings and carries the radar / ROC / scaling SVGs drawn
by us (no external resource), JSON round-trips, a comparison lays cost next to leakage, and
the PDF path prints through Chromium (or says clearly why it cannot)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from privfin.assess import report as rep
from privfin.assess.assess import Comparison, assess_compare, assess_technology
from privfin.assess.model import Assessment, Perspective, PerspectiveResult, Rating, ThreatModel
from privfin.errors import ConfigError

from ._handmade import HOSTILE, patch_parts

CHROMIUM_SKIP = "Chromium not installed: PDF export prints with it (apt-get install chromium)"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Tags()
    p.feed(page)
    return p.tags


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Assessment:
    patch_parts(monkeypatch)
    a = assess_technology("vfl-he")
    # a hostile subject and threat words too (a report may name a job chosen by a peer)
    return Assessment(
        kind="job",
        subject=HOSTILE,
        threat_model=a.threat_model,
        threat_model_words=HOSTILE,
        perspectives=a.perspectives,
        created=a.created,
        environment={HOSTILE: HOSTILE},
    )


def test_html_escapes_everything_and_draws_the_plots(hostile: Assessment) -> None:
    page = rep.render_html(hostile)
    assert "<script" not in page and "<img" not in page
    assert html_escaped(HOSTILE) in page
    tags = _tags(page)
    assert not any(t == "script" for t, _ in tags)
    assert not any(k.startswith("on") for _, attrs in tags for k in attrs)
    # self-contained: no external resource
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) >= 3
    for s in svgs:  # each plot is well-formed XML
        ET.fromstring(s)
    radar = next(s for s in svgs if 'class="radar"' in s)
    polygon = ET.fromstring(radar).find(".//{http://www.w3.org/2000/svg}polygon[@class='series']")
    assert polygon is not None
    pts = [tuple(map(float, p.split(","))) for p in str(polygon.get("points")).split()]
    assert len(pts) == 7  # seven perspectives
    # the rating sets the distance from the centre: functionality 5 reaches the outer ring
    assert pts[0] == pytest.approx((250.0, 70.0))
    roc = [s for s in svgs if 'class="roc"' in s]
    assert len(roc) == 1 and roc[0].count('class="roc"') == 2  # protected and control
    assert 'stroke-dasharray="6 4"' in roc[0]  # the control is dashed
    assert any('class="scaling"' in s for s in svgs)


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_radar_marks_unmeasured_axes() -> None:
    svg = rep.radar_svg([("x", {p: None for p in Perspective})])
    assert svg.count("(n/m)") == 7
    assert rep.roc_svg([]) == "" and rep.scaling_svg([]) == ""


def test_json_round_trip(tmp_path: Path, hostile: Assessment) -> None:
    paths = rep.write_report(hostile, tmp_path / "r")
    assert [p.name for p in paths] == ["report.json", "report.html"]
    back = rep.load_report(paths[0])
    assert isinstance(back, Assessment)
    assert back.to_dict() == hostile.to_dict()
    sec = back.perspectives[Perspective.SECURITY]
    assert sec.rating is Rating.GOOD and len(sec.attacks) == 3 and sec.checks
    assert json.loads(paths[0].read_text())["subject"] == HOSTILE


def test_comparison_side_by_side_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_parts(monkeypatch)
    names = ["vfl-he", "mpc", "tee", "dp-central", "pooled-plaintext"]
    c = assess_compare("credit", names)
    assert [a.subject for a in c.assessments] == names
    assert all(a.kind == "comparison" for a in c.assessments)
    ratings = {a.subject: a.ratings() for a in c.assessments}
    # relative to pooled plaintext: vfl-he 40 s vs 0.5 s is 80x (ADEQUATE), mpc 12x (ADEQUATE),
    # tee 1.6x (EXCELLENT); bytes 2e8 vs 1e5 is 2000x (WEAK)
    assert ratings["vfl-he"][Perspective.PERFORMANCE] is Rating.ADEQUATE
    assert ratings["mpc"][Perspective.PERFORMANCE] is Rating.ADEQUATE
    assert ratings["tee"][Perspective.PERFORMANCE] is Rating.EXCELLENT
    assert ratings["vfl-he"][Perspective.COMMUNICATION] is Rating.WEAK
    assert ratings["tee"][Perspective.SECURITY] is Rating.INSUFFICIENT  # simulated enclave
    assert ratings["pooled-plaintext"][Perspective.SECURITY] is Rating.INSUFFICIENT
    assert ratings["pooled-plaintext"][Perspective.COMPLIANCE] is Rating.INSUFFICIENT
    rep.write_report(c, tmp_path / "c")
    back = rep.load_report(tmp_path / "c" / "report.json")
    assert isinstance(back, Comparison) and back.to_dict() == c.to_dict()
    page = (tmp_path / "c" / "report.html").read_text()
    assert "Cost next to leakage" in page
    table = page.split("Cost next to leakage", 1)[1].split("</table>", 1)[0]
    for row in ("wall time, s", "bytes sent", "rounds", "leakage (attacks)", "threat model"):
        assert row in table
    assert "2e+08" in table and "unprotected: advantage 0.450" in table
    assert page.count('class="series"') == 5 + 5  # the joint radar and one per technology


def test_comparison_rejects_duplicates_and_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_parts(monkeypatch)
    with pytest.raises(ConfigError, match="once"):
        assess_compare("credit", ["mpc", "mpc"])
    with pytest.raises(ConfigError, match="unknown technology"):
        assess_compare("credit", ["quantum"])


def test_not_measured_without_measurements_or_attacks(monkeypatch: pytest.MonkeyPatch) -> None:
    import privfin.assess.attacks as attacks
    import privfin.assess.measure as measure

    monkeypatch.setattr(measure, "measure_technology", lambda *a, **k: {})
    monkeypatch.setattr(attacks, "attacks_for", lambda *a, **k: [])
    a = assess_technology("psi")
    for p in (Perspective.ACCURACY, Perspective.PERFORMANCE, Perspective.SCALABILITY):
        assert a.perspectives[p].rating is None
        assert a.perspectives[p].reasons == ("not measured",)
    sec = a.perspectives[Perspective.SECURITY]
    assert sec.rating is Rating.GOOD and any("no empirical attack" in r for r in sec.reasons)
    assert "not measured" in rep.render_html(a)


def test_pdf(tmp_path: Path) -> None:
    a = Assessment(
        "technology", "x", ThreatModel.NONE, "none",
        {Perspective.ACCURACY: PerspectiveResult(Perspective.ACCURACY, None, ("not measured",))},
    )  # fmt: skip
    if rep.find_chromium() is None:
        with pytest.raises(ConfigError, match="needs Chromium"):
            rep.write_report(a, tmp_path, pdf=True)
        pytest.skip(CHROMIUM_SKIP)
    paths = rep.write_report(a, tmp_path, pdf=True)
    assert paths[-1].name == "report.pdf"
    assert paths[-1].read_bytes().startswith(b"%PDF-")


def test_pdf_without_chromium_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVFIN_CHROMIUM", str(tmp_path / "absent"))
    (tmp_path / "r.html").write_text("<p>x</p>")
    with pytest.raises(ConfigError, match="PDF export needs Chromium"):
        rep.to_pdf(tmp_path / "r.html", tmp_path / "r.pdf")

"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against two node
processes: the telco's operator approves the bank's proposal in the browser and watches it
run; the bank's operator opens the job's ROC curve and verifies the audit chain (and sees a
tampered chain fail). Also: the pages at 1280×800 and on a narrow window, and labelled inputs.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from privfin.federation.tls import fingerprint
from privfin.node.cluster import Cluster

from . import _cluster as C

pytestmark = [pytest.mark.cluster, pytest.mark.skipif(C.browser_missing(), reason=C.SKIP)]
JOB = "credit-e2e"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = C.start(tmp_path_factory.mktemp("dashboard"))
    try:
        C.propose(c, JOB)
        yield c
    finally:
        c.down()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=C.CHROMIUM, args=C.CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _login(browser: Any, cluster: Cluster, party: str, path: str = "/") -> Any:
    url, token = C.operator(cluster, party)
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(20_000)
    page.goto(url + path)
    assert page.locator("h1").inner_text() == "Log in"  # no page without a session
    page.get_by_label("Operator token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    return page


def _fits(page: Any) -> bool:
    """No horizontal scrolling of the page itself (wide tables scroll in their own box)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def _unlabelled(page: Any) -> list[str]:
    return list(
        page.evaluate(
            "Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))"
            ".filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))"
            ".map(e => e.name)"
        )
    )


def test_approve_watch_roc_and_verify_in_the_browser(cluster: Cluster, browser: Any) -> None:
    # -- the telco's operator: overview, approvals inbox, confirmation, live job page
    telco = _login(browser, cluster, "telco")
    assert telco.locator("h1").inner_text() == "Overview"
    bank_fp = fingerprint(cluster.identity("bank").cert.read_bytes())
    peer = telco.locator("tr", has_text="bank")
    assert bank_fp in peer.inner_text().replace("\n", "")
    assert "in contact" in peer.inner_text()  # the bank's node delivered its proposal
    assert _fits(telco)
    telco.get_by_role("link", name="1 proposal waiting for your decision").click()
    assert telco.locator("h1").inner_text() == "Approvals"
    card = telco.locator("section.proposal", has_text=JOB)
    text = card.inner_text()
    for expected in ("joint credit scoring of new applicants", "30 days", "telco_train", "h3"):
        assert expected in text, expected
    assert card.locator("tr", has_text="h0").first.locator(".lv").inner_text() == "C2"
    card.get_by_role("link", name="Approve…").click()
    assert telco.locator("h1").inner_text() == f"Approve {JOB}?"
    assert _unlabelled(telco) == []
    telco.get_by_role("button", name=f"Confirm: approve {JOB}").click()
    assert "You approved job" in telco.locator("[role=status]").first.inner_text()
    # the page follows the job by itself until it is done (then reloads with results)
    telco.wait_for_selector("#job-status[data-status=done]", timeout=90_000)
    telco.wait_for_load_state()
    assert telco.locator('g.dag-step[data-step="psi"]').get_attribute("class") == (
        "dag-step st-done"
    )
    assert telco.locator('g.dag-step[data-step="evaluate"]').get_attribute("class") == (
        "dag-step st-elsewhere"  # the bank's step only
    )
    assert "job_finished" in telco.locator("#h-logs + div").inner_text()

    # -- the bank's operator: the job's ROC curve, as a figure and opened on its own
    bank = _login(browser, cluster, "bank", f"/jobs/{JOB}")
    assert bank.locator("h1").inner_text() == f"Job {JOB}"
    assert bank.locator("#job-status").get_attribute("data-status") == "done"
    captions = bank.locator("figcaption").all_inner_texts()
    assert any(c.startswith("ROC curve (step evaluate)") for c in captions), captions
    assert any(c.startswith("PSI overlap (step psi)") for c in captions), captions
    assert any(c.startswith("Feature importance (step train)") for c in captions), captions
    with cluster.client("bank") as client:
        metrics = json.loads(client.download(JOB, "evaluate", "metrics"))
    bank.get_by_role("link", name="Open ROC curve (SVG)").click()
    bank.wait_for_load_state()
    assert bank.url.endswith(f"/jobs/{JOB}/plots/evaluate/metrics/roc.svg")
    svg = bank.content()
    assert "<title" in svg and "ROC curve" in svg
    shown = re.search(r"AUC = ([0-9.]+)", svg)
    assert shown and float(shown.group(1)) == pytest.approx(metrics["auc"], abs=1e-4)
    points = bank.locator("polyline").first.get_attribute("points")
    assert points and len(points.split()) > 10

    # -- the audit log: search, verify the chain, then see a tampered chain fail
    bank.go_back()
    bank.get_by_role("link", name="Audit").click()
    bank.get_by_label("Job").fill(JOB)
    bank.get_by_role("button", name="Search").click()
    rows = bank.locator("tbody tr")
    assert rows.count() >= 8
    assert all(JOB in r for r in rows.all_inner_texts())
    assert _unlabelled(bank) == []
    bank.get_by_role("button", name="Verify chain").click()
    verdict = bank.locator("#verify-result").inner_text()
    assert verdict.startswith("Chain verified: ok:"), verdict
    store = cluster.root / "bank" / "state" / "node.sqlite"
    with contextlib.closing(sqlite3.connect(store)) as db, db:
        db.execute("UPDATE audit_entries SET actor = 'someone' WHERE seq = 2")
    bank.get_by_role("button", name="Verify chain").click()
    verdict = bank.locator("#verify-result").inner_text()
    assert verdict.startswith("Chain verification FAILED: FAILED at seq 2"), verdict

    # -- a narrow window: the page reflows (navigation wraps, no sideways scrolling)
    for path in ("/", f"/jobs/{JOB}", "/data/bank_train", "/approvals?all=1"):
        bank.set_viewport_size({"width": 390, "height": 800})
        url, _ = C.operator(cluster, "bank")
        bank.goto(url + path)
        assert _fits(bank), path
        assert bank.get_by_role("navigation", name="Main").is_visible()

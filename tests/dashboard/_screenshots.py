"""``make screenshots``: start a bank and a telco node with synthetic data, run the dashboard's
pipeline through the browser and save a PNG of each page under ``docs/screenshots/``.

    PYTHONPATH=tests python -m dashboard._screenshots docs/screenshots
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from dashboard import _cluster as C

JOB = "credit-2026-q4"


def _login(browser: Any, url: str, token: str, width: int = 1280) -> Any:
    page = browser.new_context(viewport={"width": width, "height": 800}).new_page()
    page.set_default_timeout(30_000)
    page.goto(url + "/login")
    page.get_by_label("Operator token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    return page


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="privfin-shots-") as tmp:
        cluster = C.start(Path(tmp))
        try:
            C.set_budget(cluster, "telco", "telco_train", 3.0)
            C.propose(cluster, JOB, dp=True)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=C.CHROMIUM, args=C.CHROMIUM_ARGS)
                telco_url, telco_token = C.operator(cluster, "telco")
                bank_url, bank_token = C.operator(cluster, "bank")
                telco = _login(browser, telco_url, telco_token)

                def shot(page: Any, name: str) -> None:
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                    print(out / f"{name}.png")

                shot(telco, "overview")
                telco.goto(telco_url + "/approvals")
                shot(telco, "approvals")
                telco.get_by_role("link", name="Approve…").click()
                shot(telco, "approve-confirm")
                telco.get_by_role("button", name=f"Confirm: approve {JOB}").click()
                telco.wait_for_selector("#job-status[data-status=done]", timeout=120_000)
                telco.wait_for_load_state()
                shot(telco, "job-telco")
                bank = _login(browser, bank_url, bank_token)
                bank.goto(f"{bank_url}/jobs/{JOB}")
                shot(bank, "job")
                bank.goto(bank_url + "/jobs")
                shot(bank, "jobs")
                telco.goto(telco_url + "/data")
                shot(telco, "data")
                telco.goto(telco_url + "/data/telco_train")
                shot(telco, "dataset")
                bank.goto(bank_url + "/audit")
                bank.get_by_role("button", name="Verify chain").click()
                bank.screenshot(path=str(out / "audit.png"))  # the first entries only
                print(out / "audit.png")
                narrow = _login(browser, bank_url, bank_token, width=390)
                narrow.goto(f"{bank_url}/jobs/{JOB}")
                narrow.screenshot(path=str(out / "narrow-job.png"))
                print(out / "narrow-job.png")
                browser.close()
        finally:
            cluster.down()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))

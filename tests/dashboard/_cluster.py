"""A bank and a telco node with synthetic credit data and a small pipeline for the dashboard's
browser tests and screenshots (``make screenshots``): PSI, SecureBoost, hetero LR, scoring and
an evaluation whose ROC curve the dashboard draws."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from jobs._pipeline_data import pipeline_spec, write_datasets
from privfin.node.cluster import Cluster, cluster_up
from privfin.node.config import load_config
from privfin.node.tokens import read_token, token_path

PARTIES = ("bank", "telco")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP = (
    "Chromium not installed: the dashboard's browser tests drive /usr/bin/chromium "
    "(apt-get install chromium; .ci/chromium.sh) with playwright (pip install -e '.[dev]')"
)


def browser_missing() -> bool:
    """Whether Chromium or playwright is missing (with PRIVFIN_REQUIRE_CHROMIUM=1, set by
    .ci/chromium.sh, it is never missing: the tests then fail instead of skipping)."""
    if os.environ.get("PRIVFIN_REQUIRE_CHROMIUM") == "1":
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return True
    return not (Path(CHROMIUM).exists() and shutil.which(CHROMIUM))


def spec(job: str, *, dp: bool = False) -> dict[str, Any]:
    """The credit pipeline (psi, train, lr, lr_score, evaluate) proposed by the bank; with
    ``dp`` also a DP count of the telco's customers for the bank (charged to the telco's
    budget: see :func:`set_budget`)."""
    s = pipeline_spec(job)
    s["steps"] = {
        k: v for k, v in s["steps"].items() if k in ("psi", "train", "lr", "lr_score", "evaluate")
    }
    if dp:
        s["steps"]["stats"] = {
            "component": "dp_release",
            "roles": {"telco": "data", "bank": "result"},
            "params": {"query": "count", "epsilon": 0.5, "id_column": "id"},
            "inputs": {"table": "datasets.train"},
        }
    return s


def start(root: Path) -> Cluster:
    return cluster_up(
        list(PARTIES), root / "cluster", mode="development", datasets=write_datasets(root)
    )


def operator(cluster: Cluster, party: str) -> tuple[str, str]:
    """``party``'s dashboard URL and operator token."""
    cfg = load_config(cluster.config_path(party))
    return cfg.operator_url(), read_token(token_path(cfg))


def set_budget(cluster: Cluster, party: str, dataset: str, epsilon: float) -> None:
    """Set a dataset's DP budget as its operator does (``privfin data budget``)."""
    from typer.testing import CliRunner

    from privfin.cli.main import app

    res = CliRunner().invoke(
        app,
        ["data", "budget", dataset, "--config", str(cluster.config_path(party)),
         "--epsilon", str(epsilon)],
    )  # fmt: skip
    if res.exit_code != 0:
        raise RuntimeError(res.output)


def propose(cluster: Cluster, job: str, *, dp: bool = False) -> None:
    """The bank proposes the pipeline; the telco's node holds it for its operator."""
    with cluster.client("bank") as client:
        client.propose(spec(job, dp=dp))
    with cluster.client("telco") as client:
        client.wait_proposal(job)

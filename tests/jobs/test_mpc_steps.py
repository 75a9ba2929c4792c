"""``ss_lr`` and ``mpc_stats`` as pipeline steps: PSI aligns the rows, then the parties train
SS-LR / compute secure statistics on them; results against the plaintext reference on the same
aligned rows. Parameters and roles are checked before a job is proposed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.jobs.local import LocalRun
from privfin.jobs.spec import parse_spec_data
from privfin.jobs.validate import check
from privfin.mpc.lr import plaintext_logistic

from ._pipeline_data import split

DEV = Settings(mode="development")
G, H = ["g0", "g1", "g2"], ["h0", "h1", "h2", "h3"]


def _spec(job: str, step: dict[str, Any]) -> dict[str, Any]:
    return {
        "job": job,
        "purpose": "secure statistics and a joint model",
        "retention_days": 30,
        "parties": {
            "bank": {"datasets": {"train": "bank_train"}},
            "telco": {"datasets": {"train": "telco_train"}},
        },
        "results": ["bank"],
        "steps": {
            "psi": {
                "component": "psi",
                "roles": {"bank": "receiver", "telco": "sender"},
                "params": {"reveal_to": "both"},
                "inputs": {"table": "datasets.train"},
            },
            "mpc": {"inputs": {"table": "psi.aligned"}, **step},
        },
    }


ROLES = {"bank": ["data", "compute", "result"], "telco": ["data", "compute"]}


def _aligned(run: LocalRun) -> tuple[np.ndarray, np.ndarray]:
    bank = run.output("bank", "psi", "aligned")
    telco = run.output("telco", "psi", "aligned")
    assert list(bank["id"]) == list(telco["id"])
    x = np.hstack([bank[G].to_numpy(), telco[H].to_numpy()])
    return x, bank["y"].to_numpy()


def test_ss_lr_step_matches_the_plaintext_reference(tmp_path: Path) -> None:
    params = {
        "features": {"bank": G, "telco": H},
        "label": {"party": "bank", "column": "y"},
        "epochs": 3,
        "batch_size": 64,
        "sigmoid": "piecewise",
        "triples": "dealer",
    }
    spec = parse_spec_data(
        _spec("sslr-1", {"component": "ss_lr", "roles": ROLES, "params": params})
    )
    run = LocalRun(spec, split(), tmp_path, settings=DEV, seed=5)
    run.run()
    model = run.output("bank", "mpc", "model")
    assert model["kind"] == "ss_lr" and model["features"] == G + H
    x, y = _aligned(run)
    w = plaintext_logistic(x, y, epochs=3, batch_size=64, learning_rate=0.5)
    got = np.array([*model["coef"], model["intercept"]])
    assert np.max(np.abs(got - w)) < 0.02  # fixed point and the piecewise sigmoid
    auc = roc_auc_score(y, x @ got[:-1] + got[-1])
    assert abs(auc - roc_auc_score(y, x @ w[:-1] + w[-1])) < 0.005
    with pytest.raises(ConfigError, match="no output"):
        run.output("telco", "mpc", "model")  # not a result party: no model


def test_mpc_stats_step_matches_numpy(tmp_path: Path) -> None:
    params = {
        "columns": {"bank": ["g0"], "telco": ["h1"]},
        "statistics": ["count", "sum", "mean"],
        "triples": "dealer",
    }
    spec = parse_spec_data(
        _spec("stats-1", {"component": "mpc_stats", "roles": ROLES, "params": params})
    )
    run = LocalRun(spec, split(), tmp_path, settings=DEV, seed=5)
    run.run()
    stats = run.output("bank", "mpc", "stats")
    bank = run.output("bank", "psi", "aligned")
    telco = run.output("telco", "psi", "aligned")
    want = np.array([bank["g0"].sum(), telco["h1"].sum()])
    np.testing.assert_allclose(stats["sum"], want, atol=1e-2)
    np.testing.assert_allclose(stats["mean"], want / len(bank), atol=1e-3)
    assert stats["count"] == len(bank)


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (
            {"component": "ss_lr", "roles": ROLES, "params": {"features": {"bank": G}}},
            "label",
        ),
        (
            {
                "component": "ss_lr",
                "roles": ROLES,
                "params": {
                    "features": {"bank": G},
                    "label": {"party": "bank", "column": "y"},
                    "sigmoid": "exact",
                },
            },
            "sigmoid",
        ),
        (
            {
                "component": "mpc_stats",
                "roles": ROLES,
                "params": {"columns": ["g0"], "partition": "horizontal", "frac_bits": 99},
            },
            "frac_bits",
        ),
        (
            {
                "component": "mpc_stats",
                "roles": ROLES,
                "params": {"columns": {"bank": ["g0"]}, "statistic": ["sum"]},
            },
            "unknown mpc_stats parameters",
        ),
        (
            {
                "component": "mpc_stats",
                "roles": {"bank": ["data", "compute", "result"], "telco": ["data"]},
                "params": {"columns": {"bank": ["g0"]}},
            },
            "2 or 3 'compute' parties",
        ),
    ],
)
def test_bad_mpc_steps_are_refused_before_proposal(step: dict[str, Any], why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        check(parse_spec_data(_spec("bad-1", step)))

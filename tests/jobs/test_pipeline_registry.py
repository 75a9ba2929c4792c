"""Datasets registered with the CLI while the nodes run are used by the next job (no
restart); a C3 field, a C2 field into a component that reveals it, a partner or a purpose the
dataset's policy does not allow are refused before anything runs (C2 into a revealing
component: tests/data/test_registry.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.errors import ConfigError
from privfin.node.cluster import cluster_up

from ._pipeline_data import negotiate, pipeline_spec, split, until

pytestmark = pytest.mark.cluster
RISK = ["--purpose", "risk grading"]  # the bank's data may also serve risk grading


def test_registry_levels_and_policy_checked_at_every_node(tmp_path: Path) -> None:
    data = split()
    cluster = cluster_up(["bank", "telco"], tmp_path / "c", mode="development")
    try:
        files = {}
        for tables in data.values():
            for name, df in tables.items():
                files[name] = tmp_path / f"{name}.csv"
                df.to_csv(files[name], index=False)
        purpose = pipeline_spec()["purpose"]
        # the bank's g2 is C3 (say, a biometric score); telco data only for the bank
        runner = CliRunner()
        for name, party, extra in (
            ("bank_train", "bank", ["--label", "y", "--level", "g2=C3", *RISK]),
            ("bank_new", "bank", RISK),
            ("telco_train", "telco", []),
            ("telco_new", "telco", []),
        ):
            partner = "telco" if party == "bank" else "bank"
            res = runner.invoke(
                app,
                [
                    "data",
                    "register",
                    name,
                    str(files[name]),
                    "--config",
                    str(cluster.config_path(party)),
                    "--id-column",
                    "id",
                    "--partner",
                    partner,
                    "--purpose",
                    purpose,
                    *extra,
                ],
            )
            assert res.exit_code == 0, res.output
        spec = pipeline_spec("reg-1")
        spec["steps"] = {k: spec["steps"][k] for k in ("psi", "lr", "lr_score")}
        spec["steps"]["lr"]["params"]["feature_counts"] = {"bank": 2, "telco": 4}
        named = copy.deepcopy(spec)
        named["parties"]["bank"]["datasets"]["train"] = {
            "name": "bank_train",
            "fields": ["id", "y", "g0", "g1", "g2"],
        }
        with cluster.client("bank") as c, pytest.raises(ConfigError, match="C3"):
            c.check(named)
        # another purpose is refused by the data owner's policy
        with cluster.client("telco") as c, pytest.raises(ConfigError, match="purpose"):
            c.check({**spec, "purpose": "risk grading"})
        # proposed all the same, the telco's node holds it for its operator with the local
        # reason (an automatic rejection would tell the bank which fields exist there); the
        # operator cannot approve it and rejects it with the reason it chooses to give
        with cluster.client("bank") as c:
            c.propose({**spec, "job": "reg-mkt", "purpose": "risk grading"})
        with cluster.client("telco") as c:
            # listed as soon as it is stored; its local check's reason follows
            held = until(lambda: [h for h in c.proposals("pending") if h.get("reason")])
            assert held[0]["job"] == "reg-mkt"
            assert "local check failed" in held[0]["reason"] and "purpose" in held[0]["reason"]
            with pytest.raises(ConfigError, match="purpose"):
                c.decide("reg-mkt", "approve")
            c.decide("reg-mkt", "reject", "not for risk grading")
        with cluster.client("bank") as c:
            view = until(
                lambda: c.proposal("reg-mkt")["status"] == "rejected" and c.proposal("reg-mkt")
            )
            assert view["reason"] is None or "local check" not in view["reason"]
        assert view["decisions"]["telco"]["decision"] == "reject"
        assert view["decisions"]["telco"]["reason"] == "not for risk grading"
        with cluster.client("bank") as c, pytest.raises(Exception, match="404"):
            c.status("reg-mkt")  # never started anywhere
        # without naming fields the job uses every non-C3 field: g2 never leaves the file
        negotiate(cluster, spec)
        for party in ("bank", "telco"):
            with cluster.client(party) as c:
                status = c.wait("reg-1", timeout=300)
            assert all(s["status"] == "done" for s in status["steps"].values())
        with cluster.client("bank") as c:
            model = c.download("reg-1", "lr", "model")
        assert b'"g2"' not in model and b'"g0"' in model
    finally:
        cluster.down()

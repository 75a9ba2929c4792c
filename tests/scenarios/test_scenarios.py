"""Each scenario of ``scenarios/`` end to end on a small synthetic run over real node processes
(mutual TLS), checked against the plaintext answer the demo can compute (it holds all the
synthetic data)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from rich.console import Console

from privfin.cli.scenarios._runner import fill, load_template, private_root
from privfin.errors import ConfigError

pytestmark = pytest.mark.cluster


def _console() -> Console:
    return Console(file=io.StringIO(), width=100)


def test_credit_joint_beats_bank_only_and_hosts_get_no_scores(tmp_path: Path) -> None:
    from privfin.cli.scenarios.credit import run_credit, synthetic_credit

    console = _console()
    out = run_credit(
        console, tmp_path, rows=1500, seed=7, n_trees=3, max_depth=3, lr_iter=6,
        roc_out=tmp_path / "roc.svg",
    )  # fmt: skip
    data = synthetic_credit(1500, 7)
    both = set(data.telecom["id"]) & set(data.ecommerce["id"])
    assert out["overlap"] == len(set(data.bank_train["id"]) & both)
    assert out["scored"] == len(set(data.bank_new["id"]) & both)
    # job 2 ran on the IV selection of job 1: a subset of each party's features, none empty
    for party, chosen in out["selected"].items():
        assert chosen and set(chosen) <= set(data.features(party)), party
    # the telecom and e-commerce features carry signal the bank lacks
    assert out["joint"]["trees"]["auc"] > out["bank_only"]["trees"]["auc"] + 0.03
    assert out["joint"]["lr"]["auc"] > 0.6
    assert math.isfinite(out["points"]) and 300 < out["points"] < 900
    svg = (tmp_path / "roc.svg").read_text()
    assert svg.startswith("<svg") and "bank only" in svg and "joint SecureBoost" in svg
    for host in ("telecom", "ecommerce"):
        steps = {step for step, name in out["outputs"][host] if name == "scores"}
        assert not steps, (host, steps)
    assert ("score_new", "scores") in out["outputs"]["bank"]
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for shown in ("telecom approved", "ecommerce approved", "PSI overlap", "pooled plaintext"):
        assert shown in text


def test_risk_grades_follow_the_agreed_rule(tmp_path: Path) -> None:
    from privfin.cli.scenarios.risk import grade, run_risk
    from privfin.data.synthetic import generate

    out = run_risk(_console(), tmp_path, rows=400, seed=4, n_ids=80)
    truth = generate("risk", rows=400, seed=4).extras["truth"].set_index("id")
    rules = load_template("risk", {"job": "x", "triples": "rss3"})["grades"]
    expected_lenders = [int(truth["n_lenders"].get(i, 0)) for i in out["ids"]]
    assert out["totals"]["lenders"] == expected_lenders
    assert out["totals"]["outstanding"] == [
        int(truth["total_outstanding_cents"].get(i, 0)) for i in out["ids"]
    ]
    assert out["grades"] == [
        grade(rules, o / 100, d / 100, n)
        for o, d, n in zip(
            *(out["totals"][k] for k in ("outstanding", "overdue", "lenders")), strict=True
        )
    ]
    assert len(set(out["grades"])) >= 2
    for lender in ("lender_b", "lender_c"):  # the totals reach the result party only
        assert not [o for o in out["outputs"][lender] if o[1] == "stats"]
    assert ("totals", "stats") in out["outputs"]["lender_a"]
    with pytest.raises(ValueError, match="catch-all"):
        grade(rules[:1], 1e9, 0.0, 3)


def test_idverify_three_factor_verdicts(tmp_path: Path) -> None:
    from privfin.cli.scenarios.others import run

    out = run("idverify", _console(), tmp_path, rows=400, seed=2)
    assert out["agree"] == out["total"] == 400
    verdicts = set(out["verdicts"].values())
    assert {"match", "no match", "partial: phone differs", "partial: name differs"} <= verdicts
    assert not [o for o in out["telecom_outputs"] if o[1] == "aligned"]  # learns no ids


def test_blacklist_union_of_hits(tmp_path: Path) -> None:
    from privfin.cli.scenarios.others import run
    from privfin.data.synthetic import generate

    out = run("blacklist", _console(), tmp_path, rows=400, seed=2)
    assert out["exact"]
    ds = generate("blacklist", rows=400, seed=2)
    both = set(ds.parties["bank_b"]["id"]) & set(ds.parties["bank_c"]["id"])
    assert out["overlap"]["intersection_size"] == len(both)
    # each list holder's node wrote the legal basis of its list into the audit of its approval
    from privfin.audit import Action, AuditLog
    from privfin.node.config import load_config
    from privfin.store import open_engine

    for holder in ("bank_b", "bank_c"):
        engine = open_engine(load_config(tmp_path / "cluster" / holder / "node.yaml").store_url())
        try:
            mine = [
                e.evidence for e in AuditLog(engine, node=holder).entries()
                if e.action == Action.approval and e.party == holder
            ]  # fmt: skip
        finally:
            engine.dispose()
        assert [m["legal_basis"] for m in mine] == [{f"{holder}_blacklist": "licensed_source"}]


def test_fraud_federated_with_meaningful_dp(tmp_path: Path) -> None:
    from privfin.cli.scenarios.others import FRAUD_CLIP, FRAUD_NOISE, FRAUD_ROUNDS, run
    from privfin.dp import Accountant, GaussianVector

    # one bank per synthetic profile keeps the test small (4 node processes); the demo's
    # alliance of 12 banks, whose model learns at this epsilon, is measured in fraud.md
    out = run("fraud", _console(), tmp_path, rows=3000, seed=7, per_profile=1)
    assert out["banks"] == ["bank_a1", "bank_b1", "bank_c1"]
    # client-level DP: one Gaussian mechanism per round at the effective noise multiplier of
    # the 9 agreed features and the intercept, composed by RDP: epsilon <= 10 at delta 1e-5
    sigma = GaussianVector(FRAUD_NOISE, FRAUD_CLIP).effective_noise_multiplier(10)
    expected = Accountant("rdp").gaussian(sigma, count=FRAUD_ROUNDS).epsilon(1e-5)
    assert out["epsilon"] == pytest.approx(expected, rel=1e-9) and out["epsilon"] <= 10.0
    for bank in out["banks"]:  # each bank evaluated its own held-out rows with the model
        assert 0.0 <= out["federated"][bank] <= 1.0 and 0.5 < out["pooled"][bank] <= 1.0
    assert 0.0 < out["federated_all"] < 1.0


def test_marketing_dp_audience_and_joint_propensity(tmp_path: Path) -> None:
    from privfin.cli.scenarios.marketing import SEGMENTS, audience, run_marketing, top_k_uptake
    from privfin.data.synthetic import generate

    out = run_marketing(_console(), tmp_path, rows=2000, seed=7, n_trees=3)
    ds = generate("marketing", rows=2000, seed=7)
    merchant = ds.parties["merchant"]
    shared = merchant[merchant["id"].isin(set(ds.parties["bank"]["id"]))]
    truth = audience(shared).value_counts()
    release = out["release"]
    assert "intersection_size" not in release and release["epsilon"] == 0.5
    for seg in SEGMENTS:  # the DP count: the truth plus a dummy count in [0, slots]
        got = release["segments"][seg]
        assert out["segments"][seg]["true"] == truth[seg]
        assert 0 <= got["revealed"] - truth[seg] <= release["slots"], seg
    assert out["budget_spent"] == pytest.approx(0.5 * len(SEGMENTS))
    # the merchant's shopping behaviour carries the planted signal the bank lacks
    models = out["models"]
    assert models["joint"]["auc"] > models["bank_only"]["auc"] + 0.01, models
    assert models["joint"]["auc"] == pytest.approx(out["evaluate"]["auc"], abs=1e-9)
    assert models["joint"]["lift"] > 1.5
    assert len(out["top_k"]) == out["k"] == round(0.1 * out["scored_candidates"])
    assert not [f for f in out["merchant_outputs"] if f[1] == "scores" or f[0] == "audience"]
    assert ("score_candidates", "scores") in out["bank_outputs"]
    assert top_k_uptake([0.9, 0.1, 0.8], [1, 1, 0], 2) == 0.5


def test_templates_fill_and_private_root(tmp_path: Path) -> None:
    spec = fill({"a": "{{n}}", "b": ["x-{{n}}"], "c": {"d": "{{m}}"}}, {"n": 3, "m": {"k": 1}})
    assert spec == {"a": 3, "b": ["x-3"], "c": {"d": {"k": 1}}}
    with pytest.raises(ConfigError, match="needs a value"):
        fill({"a": "{{missing}}"}, {})
    with pytest.raises(ConfigError, match="no template"):
        load_template("no-such-scenario", {})
    with private_root(None) as root:
        assert oct(root.stat().st_mode & 0o777) == "0o700"
        (root / "secret").write_text("x")
    assert not root.exists()

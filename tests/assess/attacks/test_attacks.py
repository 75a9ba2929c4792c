"""Every attack of privfin.assess.attacks: the positive control (unprotected target) shows a
clear advantage, the negative control (our protocol) stays near chance. Quick sizes, fixed
seeds; thresholds are explicit and each one can fail."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from privfin.assess.attacks import attacks_for
from privfin.assess.attacks._metrics import clopper_pearson, roc_result
from privfin.assess.attacks.dp_audit import (
    audit_dp_sgd_one_run,
    audit_gaussian_vector,
    claimed_epsilon,
    one_run_epsilon_lower_bound,
)
from privfin.assess.attacks.gradient_inversion import gradient_inversion
from privfin.assess.attacks.he_distinguish import paillier_distinguishing
from privfin.assess.attacks.label_inference import label_inference
from privfin.assess.attacks.membership import membership_inference
from privfin.assess.attacks.mpc_inference import mpc_input_inference
from privfin.assess.attacks.psi_leakage import psi_leakage
from privfin.assess.model import (
    Assessment,
    AttackResult,
    Perspective,
    PerspectiveResult,
    Rating,
    ThreatModel,
)


def by_attack(results: list[AttackResult]) -> dict[str, AttackResult]:
    return {r.attack: r for r in results}


# -- metrics


def test_roc_metrics_on_known_scores() -> None:
    perfect = roc_result("a", "t", protected=False, members=[0, 0, 1, 1], scores=[0, 1, 2, 3])
    assert perfect.auc == 1.0 and perfect.advantage == 1.0
    assert perfect.tpr_at_fpr == {0.01: 1.0, 0.1: 1.0}
    rng = np.random.default_rng(0)
    chance = roc_result(
        "a", "t", protected=True, members=rng.integers(0, 2, 4000), scores=rng.random(4000)
    )
    assert chance.auc is not None and abs(chance.auc - 0.5) < 0.03
    assert chance.roc[0] == (0.0, 0.0) and chance.roc[-1] == (1.0, 1.0)
    assert len(chance.roc) <= 101


def test_clopper_pearson_matches_closed_forms() -> None:
    # zero successes: upper = 1 - (alpha/2)^(1/n); all successes: lower = (alpha/2)^(1/n)
    assert clopper_pearson(0, 10, 0.95) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(10, 10, 0.95) == (pytest.approx(0.025 ** (1 / 10)), 1.0)
    lo, hi = clopper_pearson(50, 100, 0.95)
    assert 0.39 < lo < 0.40 and 0.60 < hi < 0.61


# -- membership inference


def test_membership_inference_plain_leaks_dp_sgd_does_not() -> None:
    plain = by_attack(membership_inference("plain"))
    dp = by_attack(membership_inference("dp-sgd"))
    for name in ("membership-inference/lira", "membership-inference/shadow"):
        p, d = plain[name], dp[name]
        assert not p.protected and d.protected and p.trials == d.trials == 800
        assert p.auc is not None and d.auc is not None
        assert p.auc >= 0.6, (name, p.auc)  # positive control: a clear advantage
        assert abs(d.auc - 0.5) <= 0.06, (name, d.auc)  # negative control: near chance
        assert p.auc - d.auc >= 0.07
    lira_p, lira_d = plain["membership-inference/lira"], dp["membership-inference/lira"]
    assert lira_p.advantage is not None and lira_p.advantage >= 0.2
    assert lira_d.advantage is not None and lira_d.advantage <= 0.12
    assert lira_p.tpr_at_fpr[0.01] >= 0.03  # above the 0.01 of chance
    assert "epsilon" in lira_d.detail


# -- gradient inversion


@pytest.mark.parametrize(("model", "batch"), [("logistic", 1), ("mlp", 1), ("mlp", 4)])
def test_gradient_inversion_plain_update_vs_secure_aggregation(model: str, batch: int) -> None:
    plain = gradient_inversion(secure=False, model=model, batch=batch)
    masked = gradient_inversion(secure=True, model=model, batch=batch)
    assert not plain.protected and masked.protected
    assert plain.value is not None and masked.value is not None
    if batch == 1:
        assert plain.value >= 0.999  # exact reconstruction of the client's row
    else:  # gradient matching beats the analytic per-unit candidates
        assert plain.value >= 0.65
        analytic = float(plain.detail.split("candidates alone: ")[1].split(")")[0])
        assert plain.value > analytic + 0.1
    # masked vectors: no better than as many random candidates (reported in the detail)
    guess = float(masked.detail.split("random candidates): ")[1].split(";")[0])
    assert masked.value <= guess + 0.15, (masked.value, guess)
    assert plain.value - masked.value >= 0.3


# -- label inference


def test_label_inference_naive_split_leaks() -> None:
    res = by_attack(label_inference("naive-split"))
    assert res["label-inference/norm"].auc is not None
    assert res["label-inference/norm"].auc >= 0.85
    assert res["label-inference/direction"].auc == pytest.approx(1.0)
    assert not res["label-inference/norm"].protected


@pytest.mark.parametrize("target", ["hetero-lr", "secureboost"])
def test_label_inference_on_ciphertexts_is_near_chance(target: str) -> None:
    for r in label_inference(target):
        assert r.protected and r.trials >= 399
        assert r.auc is not None and abs(r.auc - 0.5) <= 0.12, (r.attack, r.auc)
        assert "test-only 1024-bit" in r.detail


# -- DP auditing


def test_dp_audit_catches_a_noise_bug_and_passes_the_correct_mechanism() -> None:
    claim = claimed_epsilon()
    assert 1.5 < claim < 3.0
    buggy = audit_gaussian_vector(buggy=True)
    correct = audit_gaussian_vector(buggy=False)
    assert buggy.value is not None and correct.value is not None
    assert buggy.value > claim + 1.0, (buggy.value, claim)  # the audit catches the bug
    assert 0.0 <= correct.value <= claim, (correct.value, claim)
    assert "EXCEEDS" in buggy.detail and "within the claim" in correct.detail


def test_one_run_audit_of_dp_sgd_catches_a_noise_bug() -> None:
    buggy = audit_dp_sgd_one_run(buggy=True)
    correct = audit_dp_sgd_one_run(buggy=False)
    claim = float(correct.detail.split("epsilon ")[1].split(" at delta")[0])
    assert buggy.value is not None and correct.value is not None
    assert buggy.value > claim + 0.5, (buggy.value, claim)
    assert correct.value <= claim, (correct.value, claim)
    assert buggy.auc is not None and buggy.auc >= 0.9
    assert correct.auc is not None and abs(correct.auc - 0.5) <= 0.1


def test_one_run_bound_matches_the_binomial_tail() -> None:
    # all r guesses right: p^r = beta  =>  epsilon = logit(beta^(1/r))
    p = 0.05 ** (1 / 40)
    assert one_run_epsilon_lower_bound(40, 40, 0.05) == pytest.approx(
        math.log(p / (1 - p)), abs=1e-6
    )
    assert one_run_epsilon_lower_bound(20, 40, 0.05) == 0.0
    assert 0 < one_run_epsilon_lower_bound(30, 40, 0.05) < one_run_epsilon_lower_bound(35, 40, 0.05)


def test_dp_audit_bound_is_zero_without_signal() -> None:
    from privfin.assess.attacks.dp_audit import epsilon_lower_bound

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=1000), rng.normal(size=1000)
    assert epsilon_lower_bound(a, b, 0.0, 1e-5) < 0.2
    assert epsilon_lower_bound(a, b + 10, 5.0, 1e-5) > math.log(100)


# -- MPC input inference


def test_mpc_naive_float_masks_leak_ring_shares_do_not() -> None:
    naive = mpc_input_inference("naive-float-masks")
    real = mpc_input_inference("ss-2pc")
    assert naive.auc is not None and real.auc is not None
    assert not naive.protected and real.protected and real.trials == 400
    assert naive.auc >= 0.85 and naive.advantage is not None and naive.advantage >= 0.5
    assert abs(real.auc - 0.5) <= 0.08, real.auc
    assert real.tpr_at_fpr[0.01] <= 0.05


# -- HE distinguishing


def test_paillier_with_reused_r_is_distinguishable_fresh_r_is_not() -> None:
    reused = paillier_distinguishing("paillier-reused-r")
    fresh = paillier_distinguishing("paillier")
    assert reused.auc == 1.0 and reused.advantage == 1.0 and not reused.protected
    assert fresh.auc is not None and abs(fresh.auc - 0.5) <= 0.08, fresh.auc
    assert fresh.tpr_at_fpr[0.01] <= 0.05 and fresh.protected


# -- PSI leakage


def test_psi_naive_hash_leaks_ecdh_does_not() -> None:
    naive = by_attack(psi_leakage("naive-hash"))
    ecdh = by_attack(psi_leakage("ecdh"))
    for name in ("psi/receiver-dictionary", "psi/sender-membership"):
        n, e = naive[name], ecdh[name]
        assert n.auc is not None and e.auc is not None
        assert n.auc >= 0.99 and n.advantage is not None and n.advantage >= 0.99
        assert abs(e.auc - 0.5) <= 0.08, (name, e.auc)
        assert e.tpr_at_fpr[0.01] <= 0.05
    assert ecdh["psi/sender-membership"].value == 0.0  # bytes received depend on |X| only


# -- entry point


def test_attacks_for_pairs_protected_and_control() -> None:
    assert attacks_for("no-such-technology") == []
    assert attacks_for("tee") == []
    results = attacks_for("psi")
    assert {r.protected for r in results} == {True, False}
    assert {r.attack for r in results} == {"psi/receiver-dictionary", "psi/sender-membership"}
    # the results survive the assessment's JSON round trip
    result = PerspectiveResult(
        Perspective.SECURITY, Rating.GOOD, reasons=("test",), attacks=tuple(results)
    )
    assessment = Assessment(
        "technology", "psi", ThreatModel.SEMI_HONEST, "semi-honest parties",
        {Perspective.SECURITY: result},
    )  # fmt: skip
    back = Assessment.from_dict(json.loads(json.dumps(assessment.to_dict())))
    assert back.perspectives[Perspective.SECURITY].attacks == tuple(results)

"""The rubric: every band and its boundaries, the caps, missing evidence, and the bits of
security table (NIST SP 800-57 Part 1 Table 2)."""

from __future__ import annotations

import pytest

from privfin.assess import rubric
from privfin.assess.model import AttackResult, Check, Evidence, Perspective, Rating, ThreatModel
from privfin.assess.rubric import CryptoParam

R = Rating


def _acc(gap: float) -> Rating | None:
    return rubric.rate_accuracy([Evidence("metric", "auc"), Evidence("gap", gap)]).rating


@pytest.mark.parametrize(
    ("gap", "want"),
    [
        (0.0, R.EXCELLENT),
        (0.005, R.EXCELLENT),  # upper bounds are inclusive
        (0.0051, R.GOOD),
        (0.01, R.GOOD),
        (0.015, R.ADEQUATE),
        (0.02, R.ADEQUATE),
        (0.05, R.WEAK),
        (0.0501, R.INSUFFICIENT),
        (-0.03, R.WEAK),  # a gap is a distance
    ],
)
def test_accuracy_bands(gap: float, want: Rating) -> None:
    assert _acc(gap) is want


def test_accuracy_gap_from_value_and_pooled_and_missing() -> None:
    res = rubric.rate_accuracy([Evidence("value", 0.79), Evidence("pooled_value", 0.80)])
    assert res.rating is R.GOOD and "0.01" in res.reasons[0]
    for none in ([], [Evidence("value", 0.7)], [Evidence("metric", "auc")]):
        res = rubric.rate_accuracy(none)
        assert res.rating is None and res.reasons == (rubric.NOT_MEASURED,)


@pytest.mark.parametrize(
    ("wall", "pooled", "want"),
    [
        (1.0, None, R.EXCELLENT),
        (1.01, None, R.GOOD),
        (10.0, None, R.GOOD),
        (60.0, None, R.ADEQUATE),
        (600.0, None, R.WEAK),
        (601.0, None, R.INSUFFICIENT),
        (2.0, 1.0, R.EXCELLENT),  # relative to pooled plaintext when it is given
        (2.5, 1.0, R.GOOD),
        (100.0, 1.0, R.ADEQUATE),
        (1000.0, 1.0, R.WEAK),
        (1001.0, 1.0, R.INSUFFICIENT),
    ],
)
def test_performance_bands(wall: float, pooled: float | None, want: Rating) -> None:
    base = None if pooled is None else [Evidence("wall_s", pooled)]
    res = rubric.rate_performance([Evidence("wall_s", wall), Evidence("cpu_s", 3.0)], pooled=base)
    assert res.rating is want
    assert ("pooled" in res.reasons[0]) is (pooled is not None)


def test_performance_missing() -> None:
    res = rubric.rate_performance([Evidence("cpu_s", 1.0)])
    assert res.rating is None and res.reasons == ("not measured",)


def _comm(total: float, **extra: object) -> rubric.PerspectiveResult:
    ev = [Evidence("bytes_total", total)]
    ev += [Evidence(k, v) for k, v in extra.items()]  # type: ignore[arg-type]
    return rubric.rate_communication(ev)


@pytest.mark.parametrize(
    ("total", "want"),
    [
        (1e6, R.EXCELLENT),
        (1e6 + 1, R.GOOD),
        (1e8, R.ADEQUATE),
        (1e9, R.WEAK),
        (2e9, R.INSUFFICIENT),
    ],
)
def test_communication_bands(total: float, want: Rating) -> None:
    assert _comm(total, interruption="recovered").rating is want


def test_communication_relative_and_caps() -> None:
    rel = rubric.rate_communication(
        [Evidence("bytes_total", 1000.0)], pooled=[Evidence("bytes_total", 100.0)]
    )
    assert rel.rating is R.EXCELLENT and "10x pooled" in rel.reasons[0]
    assert _comm(10.0, interruption="hung").rating is R.INSUFFICIENT
    assert _comm(10.0, interruption="failed-cleanly").rating is R.GOOD
    assert _comm(10.0, interruption="recovered", wan_slowdown=10.0).rating is R.EXCELLENT
    slow = _comm(10.0, interruption="recovered", wan_slowdown=10.5, wan_mode="netem")
    assert slow.rating is R.ADEQUATE and any("(netem)" in r for r in slow.reasons)
    assert "interruption not tested" in _comm(10.0).reasons
    assert rubric.rate_communication([Evidence("rounds", 3)]).rating is None


@pytest.mark.parametrize(
    ("exp", "want"),
    [
        (1.1, R.EXCELLENT),
        (1.11, R.GOOD),
        (1.5, R.GOOD),
        (2.0, R.ADEQUATE),
        (3.0, R.WEAK),
        (3.01, R.INSUFFICIENT),
    ],
)
def test_scalability_bands_use_the_worst_dimension(exp: float, want: Rating) -> None:
    res = rubric.rate_scalability(
        [
            Evidence("exponent[rows]", 0.9),
            Evidence("exponent[parties]", exp),
            Evidence("r2[parties]", 0.5),
        ]
    )
    assert res.rating is want
    assert any("parties" in r and "unreliable" in r for r in res.reasons)
    assert any("not measured: growth with features" in r for r in res.reasons)


def test_scalability_missing() -> None:
    assert rubric.rate_scalability([Evidence("time[rows=10]", 1.0)]).rating is None


@pytest.mark.parametrize(
    ("passed", "total", "want"),
    [
        (5, 5, R.EXCELLENT),
        (4, 5, R.GOOD),
        (3, 5, R.ADEQUATE),
        (2, 5, R.WEAK),
        (1, 5, R.INSUFFICIENT),
    ],
)
def test_compliance_share(passed: int, total: int, want: Rating) -> None:
    checks = [Check(f"c{i}", i < passed, clause="X §1") for i in range(total)]
    assert rubric.rate_compliance(checks).rating is want


def test_compliance_mandatory_failure_caps() -> None:
    checks = [Check(f"c{i}", True) for i in range(9)] + [Check("audit-chain", False, "edited")]
    res = rubric.rate_compliance(checks)  # 90 % passed would be GOOD
    assert res.rating is R.WEAK
    assert any("(mandatory)" in r and "audit-chain" in r for r in res.reasons)
    assert rubric.rate_compliance([]).rating is None


def test_functionality_counts_capabilities() -> None:
    checks = [Check(f"c{i}", i < 3) for i in range(5)]
    assert rubric.rate_functionality(checks).rating is R.GOOD  # 1 + 3
    assert rubric.rate_functionality([Check("a", True)] * 5).rating is R.EXCELLENT
    assert rubric.rate_functionality([Check("a", False)]).rating is R.INSUFFICIENT
    assert rubric.rate_functionality([]).rating is None


@pytest.mark.parametrize(
    ("kind", "size", "bits"),
    [
        ("ifc", 1024, 80),
        ("ifc", 2047, 80),
        ("ifc", 2048, 112),
        ("ifc", 3072, 128),
        ("ifc", 7680, 192),
        ("ifc", 15360, 256),
        ("ifc", 512, 0),
        ("ecc", 160, 80),
        ("ecc", 224, 112),
        ("ecc", 255, 128),
        ("ecc", 256, 128),
        ("ecc", 384, 192),
        ("ecc", 521, 256),
        ("symmetric", 128, 128),
        ("symmetric", 256, 256),
        ("lattice", 128, 128),
        ("statistical", 40, None),
        ("information-theoretic", 64, None),
    ],
)
def test_bits_of_security(kind: str, size: int, bits: int | None) -> None:
    assert rubric.bits_of_security(kind, size) == bits


def test_bits_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown parameter kind"):
        rubric.bits_of_security("quantum", 1)


def _sec(**kw: object) -> rubric.PerspectiveResult:
    return rubric.rate_security(**kw)  # type: ignore[arg-type]


def test_security_strength_and_threat_model() -> None:
    aes = CryptoParam("aes", "symmetric", 128, "here")
    rsa2k = CryptoParam("paillier", "ifc", 2048, "here")
    rsa1k = CryptoParam("paillier", "ifc", 1024, "here")
    assert _sec(threat_model=ThreatModel.MALICIOUS, params=[aes]).rating is R.EXCELLENT
    assert _sec(threat_model=ThreatModel.MALICIOUS, params=[aes, rsa2k]).rating is R.GOOD
    assert _sec(threat_model=ThreatModel.MALICIOUS, params=[rsa1k]).rating is R.WEAK
    low = CryptoParam("toy", "ifc", 512, "here")
    assert _sec(threat_model=ThreatModel.MALICIOUS, params=[low]).rating is R.INSUFFICIENT
    assert _sec(threat_model=ThreatModel.SEMI_HONEST, params=[aes]).rating is R.GOOD
    assert _sec(threat_model=ThreatModel.NONE).rating is R.INSUFFICIENT
    sim = _sec(threat_model=ThreatModel.TRUSTED_HARDWARE, params=[aes], simulated=True)
    assert sim.rating is R.INSUFFICIENT and any("simulated" in r for r in sim.reasons)
    res = _sec(threat_model=ThreatModel.MALICIOUS, params=[aes, rsa2k])
    assert any("112 bits" in r and "paillier" in r for r in res.reasons)
    assert {e.name: e.value for e in res.evidence}["bits[paillier]"] == 112
    assert _sec(threat_model=None).rating is None


def _att(adv: float, protected: bool = True, attack: str = "mia", trials: int = 0) -> AttackResult:
    return AttackResult(attack, "model", protected, trials, 0.5 + adv / 2, adv)


@pytest.mark.parametrize(
    ("adv", "want"),
    [
        (0.05, R.EXCELLENT),
        (0.06, R.GOOD),
        (0.1, R.GOOD),
        (0.2, R.ADEQUATE),
        (0.4, R.WEAK),
        (0.41, R.INSUFFICIENT),
    ],
)
def test_security_attack_advantage_bands(adv: float, want: Rating) -> None:
    res = _sec(threat_model=ThreatModel.MALICIOUS, attacks=[_att(0.5, False), _att(adv)])
    assert res.rating is want
    assert len(res.attacks) == 2


def test_chance_advantage_is_discounted() -> None:
    assert rubric.chance_advantage(400) == pytest.approx(0.1358)
    assert rubric.chance_advantage(0) == 0.0
    assert rubric.chance_advantage(1) == 1.0
    ctl = _att(0.8, False, trials=400)
    # 0.1858 is 0.05 beyond chance in 400 trials: still EXCELLENT; 0.19 is not
    assert (
        _sec(threat_model=ThreatModel.MALICIOUS, attacks=[ctl, _att(0.1858, trials=400)]).rating
        is R.EXCELLENT
    )
    res = _sec(threat_model=ThreatModel.MALICIOUS, attacks=[ctl, _att(0.19, trials=400)])
    assert res.rating is R.GOOD
    assert any("beyond what chance reaches in 400 trials (0.1358)" in r for r in res.reasons)
    # a control that does not beat chance proves nothing either
    weak_ctl = _att(0.12, False, trials=400)
    res = _sec(threat_model=ThreatModel.MALICIOUS, attacks=[weak_ctl, _att(0.5, trials=400)])
    assert res.rating is R.EXCELLENT and any("proves nothing" in r for r in res.reasons)


def test_security_attack_whose_control_failed_proves_nothing() -> None:
    res = _sec(threat_model=ThreatModel.MALICIOUS, attacks=[_att(0.05, False), _att(0.5)])
    assert res.rating is R.EXCELLENT
    assert any("proves nothing" in r for r in res.reasons)


def test_security_undetected_probe_caps() -> None:
    probes = [Check("probe: a", True), Check("probe: b", False, "accepted")]
    res = _sec(threat_model=ThreatModel.MALICIOUS, probes=probes)
    assert res.rating is R.WEAK
    assert any("1 of 2" in r for r in res.reasons)
    assert any("undetected deviation: probe: b" in r for r in res.reasons)


def test_rate_dispatch() -> None:
    assert rubric.rate(Perspective.ACCURACY, [Evidence("gap", 0.0)]).rating is R.EXCELLENT
    assert rubric.rate(Perspective.SCALABILITY).rating is None
    with pytest.raises(ValueError):
        rubric.rate(Perspective.SECURITY)


def _audit(
    lower: float, protected: bool, claim: str = "accountant (RDP) epsilon 1.500"
) -> AttackResult:
    detail = f"1000 releases; {claim} at delta 1e-05; empirical lower bound {lower:.3f}"
    return AttackResult(
        "dp-audit/canary", "GaussianVector", protected, 1000, 0.8, 0.45,
        metric=rubric.AUDIT_METRIC, value=lower, detail=detail,
    )  # fmt: skip


def test_dp_audit_is_rated_by_epsilon_not_advantage() -> None:
    ok = _sec(threat_model=ThreatModel.MALICIOUS, attacks=[_audit(3.2, False), _audit(0.9, True)])
    assert ok.rating is R.EXCELLENT  # advantage 0.45 is what epsilon 1.5 allows
    assert any("within the accountant's 1.5" in r for r in ok.reasons)
    assert any("caught (the audit works)" in r for r in ok.reasons)
    at = _sec(threat_model=ThreatModel.MALICIOUS, attacks=[_audit(1.5, True)])
    assert at.rating is R.EXCELLENT  # a bound equal to the claim is within it
    broken = _sec(threat_model=ThreatModel.MALICIOUS, attacks=[_audit(1.51, True)])
    assert broken.rating is R.INSUFFICIENT
    assert any("EXCEEDS the accountant's 1.5" in r for r in broken.reasons)
    weak = _sec(threat_model=ThreatModel.MALICIOUS, attacks=[_audit(1.0, False)])
    assert any("NOT caught" in r for r in weak.reasons)
    unknown = _sec(threat_model=ThreatModel.MALICIOUS, attacks=[_audit(9.0, True, claim="")])
    assert unknown.rating is R.EXCELLENT and any("no claimed epsilon" in r for r in unknown.reasons)

"""Declared facts and probes: parameters are read from the code (a changed default changes
the bits of security), every technology states its threat model in words and what each party
learns with the SPEC section, and the deviating-party probes detect the deviations (and fail
when the check they exercise is switched off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from privfin.assess import probes
from privfin.assess.assess import assess_technology, technology_checks
from privfin.assess.model import Perspective, Rating, ThreatModel
from privfin.assess.technologies import TECHNOLOGIES

from ._handmade import patch_parts

NAMES = ["hfl", "hfl-dp", "vfl-he", "mpc", "psi", "dp-central", "he", "tee", "pooled-plaintext"]
ROOT = Path(__file__).resolve().parents[2]


def test_every_technology_is_declared_with_its_spec_sections() -> None:
    assert list(TECHNOLOGIES) == NAMES
    for t in TECHNOLOGIES.values():
        assert len(t.threat_model_words) > 80
        assert t.learns
        for lr in t.learns:
            if t.name == "pooled-plaintext":
                continue
            path, _, section = lr.spec.partition(" §")
            text = (ROOT / "src" / "privfin" / path).read_text()
            heading = section.split(" (")[0]
            assert heading in text, (t.name, lr.spec)  # the cited section exists
        assert len(t.functionality_checks()) == 5


def test_parameters_are_read_from_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    from privfin.he import paillier

    he = {p.name: p.bits() for p in TECHNOLOGIES["he"].params()}
    assert he["paillier-modulus"] == 112  # 2048-bit default
    monkeypatch.setattr(paillier, "DEFAULT_KEY_BITS", 3072)
    he = {p.name: p.bits() for p in TECHNOLOGIES["he"].params()}
    assert he["paillier-modulus"] == 128
    psi = {p.name: (p.kind, p.size) for p in TECHNOLOGIES["psi"].params()}
    assert psi["ot-kappa"] == ("symmetric", 128) and psi["ot-statistical"] == ("statistical", 40)
    vfl = {p.name: p.size for p in TECHNOLOGIES["vfl-he"].params()}
    assert vfl["paillier (hetero LR)"] == 2048 and vfl["paillier (SecureBoost)"] == 2048


def test_probes_detect_the_deviations() -> None:
    for name, probe in probes.PROBES.items():
        c = probe(0)
        assert c.passed, (name, c.detail)
        assert c.clause.startswith("tests/")
    assert [c.name for c in probes.probes_for("he")] == [
        "probe: malformed Paillier modulus (n = p^2 q)"
    ]
    assert probes.probes_for("unknown") == []


def test_a_probe_fails_when_the_check_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from privfin.he import paillier
    from privfin.jobs import negotiation

    monkeypatch.setattr(paillier, "verify_modulus", lambda n, proof: None)
    c = probes.probe_malformed_paillier_modulus()
    assert not c.passed and "ACCEPTED" in c.detail
    monkeypatch.setattr(negotiation, "verify_decision", lambda d, pem: True)
    c = probes.probe_forged_approval()
    assert not c.passed and "ACCEPTED" in c.detail
    # an undetected deviation caps security at WEAK
    patch_parts(monkeypatch)
    sec = assess_technology("he").perspectives[Perspective.SECURITY]
    assert sec.rating is Rating.WEAK
    assert any("undetected deviation" in r for r in sec.reasons)


def test_technology_compliance_checks() -> None:
    assert all(c.passed for c in technology_checks(TECHNOLOGIES["dp-central"]))
    hfl_dp = {c.name: c.passed for c in technology_checks(TECHNOLOGIES["hfl-dp"])}
    assert hfl_dp["dp-budget"] is False  # client-level DP is not charged to the ledger
    assert not any(c.passed for c in technology_checks(TECHNOLOGIES["pooled-plaintext"]))
    assert TECHNOLOGIES["pooled-plaintext"].threat_model is ThreatModel.NONE

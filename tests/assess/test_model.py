"""The assessment model: validation and a lossless JSON round trip."""

from __future__ import annotations

import json

import pytest

from privfin.assess.model import (
    Assessment,
    AttackResult,
    Check,
    Evidence,
    Perspective,
    PerspectiveResult,
    Rating,
    ThreatModel,
)


def _assessment() -> Assessment:
    attack = AttackResult(
        attack="membership-lira",
        target="hfl-lr",
        protected=True,
        trials=200,
        auc=0.52,
        advantage=0.04,
        tpr_at_fpr={0.01: 0.015, 0.1: 0.12},
        roc=((0.0, 0.0), (0.5, 0.52), (1.0, 1.0)),
    )
    security = PerspectiveResult(
        Perspective.SECURITY,
        Rating.GOOD,
        reasons=("128-bit curves", "membership advantage 0.04"),
        evidence=(Evidence("curve security", 128, "bits", "crypto/x25519.py"),),
        checks=(Check("audit chain verifies", True, "", "JR/T 0196-2020 §7.6"),),
        attacks=(attack,),
    )
    accuracy = PerspectiveResult(Perspective.ACCURACY, None, reasons=("no model in this job",))
    return Assessment(
        kind="technology",
        subject="hfl",
        threat_model=ThreatModel.SEMI_HONEST,
        threat_model_words="the server follows the protocol",
        perspectives={Perspective.SECURITY: security, Perspective.ACCURACY: accuracy},
        environment={"cores": "2"},
    )


def test_round_trip_through_json() -> None:
    a = _assessment()
    again = Assessment.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again == a
    assert again.ratings()[Perspective.SECURITY] is Rating.GOOD
    assert again.ratings()[Perspective.SCALABILITY] is None
    assert [p["perspective"] for p in a.to_dict()["perspectives"]] == ["security", "accuracy"]


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError, match="reasons"):
        PerspectiveResult(Perspective.SECURITY, Rating.GOOD)
    with pytest.raises(ValueError, match="finite"):
        Evidence("time", float("nan"), "s")
    with pytest.raises(ValueError, match="rates"):
        AttackResult("a", "t", False, 10, tpr_at_fpr={0.01: 1.5})
    with pytest.raises(ValueError, match="kind"):
        Assessment("bank", "x", ThreatModel.NONE, "", {})
    wrong = PerspectiveResult(Perspective.ACCURACY, Rating.WEAK, reasons=("r",))
    with pytest.raises(ValueError, match="holds the result"):
        Assessment("job", "x", ThreatModel.NONE, "", {Perspective.SECURITY: wrong})
    data = _assessment().to_dict()
    data["schema"] = 99
    with pytest.raises(ValueError, match="schema"):
        Assessment.from_dict(data)

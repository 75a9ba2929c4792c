"""What an assessment is made of: seven perspectives, each with measured evidence, a rating and
the reasons for it (docs/assessment.md explains the rubric that turns evidence into ratings).

These types are the contract between the parts of :mod:`privfin.assess`: probes and attacks
produce :class:`Evidence`, :class:`Check` and :class:`AttackResult`; the rubric turns them into a
:class:`PerspectiveResult`; an :class:`Assessment` holds the seven results of one subject (a
technology, a job, or one technology's run inside a comparison) and round-trips through JSON
(``to_dict`` / ``from_dict``) so reports can be stored, diffed and rendered later.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "Assessment",
    "AttackResult",
    "Check",
    "Evidence",
    "Perspective",
    "PerspectiveResult",
    "Rating",
    "ThreatModel",
]

SCHEMA_VERSION = 1


class Perspective(StrEnum):
    """The seven perspectives, in the order reports show them."""

    FUNCTIONALITY = "functionality"
    SECURITY = "security"
    ACCURACY = "accuracy"
    PERFORMANCE = "performance"
    COMMUNICATION = "communication"
    SCALABILITY = "scalability"
    COMPLIANCE = "compliance"

    @property
    def heading(self) -> str:
        return _TITLES[self]


_TITLES = {
    Perspective.FUNCTIONALITY: "Functionality",
    Perspective.SECURITY: "Security and leakage",
    Perspective.ACCURACY: "Accuracy",
    Perspective.PERFORMANCE: "Performance",
    Perspective.COMMUNICATION: "Communication and network tolerance",
    Perspective.SCALABILITY: "Scalability",
    Perspective.COMPLIANCE: "Compliance and auditability",
}


class Rating(IntEnum):
    """A perspective's rating, 1 (worst) to 5 (best); the rubric says what earns each."""

    INSUFFICIENT = 1
    WEAK = 2
    ADEQUATE = 3
    GOOD = 4
    EXCELLENT = 5

    @property
    def label(self) -> str:
        return self.name.lower()


class ThreatModel(StrEnum):
    """Which adversary a protocol's guarantees hold against."""

    SEMI_HONEST = "semi-honest"
    COVERT = "covert"
    MALICIOUS = "malicious"
    TRUSTED_HARDWARE = "trusted-hardware"
    NONE = "none"  # pooled plaintext: no protection, the baseline of a comparison


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Evidence:
    """One measured or declared fact: ``value`` in ``unit``, and how it was obtained."""

    name: str
    value: float | int | str | bool
    unit: str = ""
    source: str = ""  # how it was measured or where it is declared (e.g. "psi/SPEC.md §3")

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("evidence needs a name")
        if isinstance(self.value, float):
            _finite(self.name, self.value)


@dataclasses.dataclass(frozen=True)
class Check:
    """A pass/fail check, citing the clause it maps to (e.g. "JR/T 0196-2020 §7.6")."""

    name: str
    passed: bool
    detail: str = ""
    clause: str = ""


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """One empirical attack against one target.

    ``auc`` and ``advantage`` (``max(TPR - FPR)``, 0 = chance) describe how well the attacker
    separated its two hypotheses; ``tpr_at_fpr`` maps a false-positive rate (e.g. 0.01) to the
    true-positive rate reached there; ``roc`` is the curve as ``(fpr, tpr)`` points for plots.
    An attack whose output is not a score (gradient inversion, PSI leakage) sets ``metric`` and
    ``value`` instead and leaves the ROC fields empty. ``protected`` says whether the target was
    the protected one (our protocol) or the unprotected control.
    """

    attack: str
    target: str
    protected: bool
    trials: int
    auc: float | None = None
    advantage: float | None = None
    tpr_at_fpr: Mapping[float, float] = dataclasses.field(default_factory=dict)
    roc: Sequence[tuple[float, float]] = ()
    metric: str = ""
    value: float | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.trials < 0:
            raise ValueError("trials must be non-negative")
        for name in ("auc", "advantage", "value"):
            v = getattr(self, name)
            if v is not None:
                _finite(name, v)
        for fpr, tpr in self.tpr_at_fpr.items():
            if not (0.0 <= fpr <= 1.0 and 0.0 <= tpr <= 1.0):
                raise ValueError("tpr_at_fpr holds rates in [0, 1]")


@dataclasses.dataclass(frozen=True)
class PerspectiveResult:
    """A perspective's rating (None: not assessed, with the reason) and what it rests on."""

    perspective: Perspective
    rating: Rating | None
    reasons: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    checks: tuple[Check, ...] = ()
    attacks: tuple[AttackResult, ...] = ()

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError(f"{self.perspective}: a rating needs its reasons")


@dataclasses.dataclass(frozen=True)
class Assessment:
    """The seven perspectives of one subject.

    ``kind`` is "technology", "job" or "comparison"; ``subject`` names it (``vfl-he``, a job id);
    ``threat_model`` with ``threat_model_words`` states, in words a compliance officer
    understands, which adversary the guarantees hold against; ``environment`` records where
    it was measured (machine, load, versions) so a lab can reproduce it.
    """

    kind: str
    subject: str
    threat_model: ThreatModel
    threat_model_words: str
    perspectives: Mapping[Perspective, PerspectiveResult]
    created: str = ""
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.kind not in ("technology", "job", "comparison"):
            raise ValueError(f"unknown assessment kind {self.kind!r}")
        for key, result in self.perspectives.items():
            if result.perspective is not key:
                raise ValueError(f"perspective {key} holds the result of {result.perspective}")

    def ratings(self) -> dict[Perspective, Rating | None]:
        return {
            p: self.perspectives[p].rating if p in self.perspectives else None for p in Perspective
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "kind": self.kind,
            "subject": self.subject,
            "threat_model": self.threat_model.value,
            "threat_model_words": self.threat_model_words,
            "created": self.created,
            "environment": dict(self.environment),
            "perspectives": [
                _result_to_dict(self.perspectives[p]) for p in Perspective if p in self.perspectives
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment:
        schema = int(data.get("schema", 0))
        if schema != SCHEMA_VERSION:
            raise ValueError(f"assessment schema {schema} is not {SCHEMA_VERSION}")
        results = [_result_from_dict(r) for r in data["perspectives"]]
        return cls(
            kind=str(data["kind"]),
            subject=str(data["subject"]),
            threat_model=ThreatModel(data["threat_model"]),
            threat_model_words=str(data["threat_model_words"]),
            created=str(data.get("created", "")),
            environment={str(k): str(v) for k, v in dict(data.get("environment", {})).items()},
            perspectives={r.perspective: r for r in results},
        )


def _result_to_dict(r: PerspectiveResult) -> dict[str, Any]:
    return {
        "perspective": r.perspective.value,
        "rating": None if r.rating is None else int(r.rating),
        "reasons": list(r.reasons),
        "evidence": [dataclasses.asdict(e) for e in r.evidence],
        "checks": [dataclasses.asdict(c) for c in r.checks],
        "attacks": [
            {
                **dataclasses.asdict(a),
                "tpr_at_fpr": [[f, t] for f, t in a.tpr_at_fpr.items()],
                "roc": [list(p) for p in a.roc],
            }
            for a in r.attacks
        ],
    }


def _result_from_dict(d: Mapping[str, Any]) -> PerspectiveResult:
    rating = d.get("rating")
    return PerspectiveResult(
        perspective=Perspective(d["perspective"]),
        rating=None if rating is None else Rating(int(rating)),
        reasons=tuple(str(x) for x in d.get("reasons", ())),
        evidence=tuple(Evidence(**e) for e in d.get("evidence", ())),
        checks=tuple(Check(**c) for c in d.get("checks", ())),
        attacks=tuple(
            AttackResult(
                **{
                    **a,
                    "tpr_at_fpr": {float(f): float(t) for f, t in a.get("tpr_at_fpr", ())},
                    "roc": tuple((float(f), float(t)) for f, t in a.get("roc", ())),
                }
            )
            for a in d.get("attacks", ())
        ),
    )

"""The rubric: deterministic rules that turn evidence, checks and attacks into a rating per
perspective, with the reasons in plain words (docs/assessment.md is the same rubric for a
testing lab; a change here is a change there).

Every rule is a pure function of its inputs: the same evidence always gives the same rating.
A perspective with no evidence it can rate gets ``rating=None`` and the reason "not measured".
Ratings are 1 (insufficient) to 5 (excellent); bands are inclusive at their upper bound (a gap
of exactly 0.005 is still excellent), compared after rounding to 9 decimals (floating-point
noise does not move a value across a bound).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from privfin.assess.model import (
    AttackResult,
    Check,
    Evidence,
    Perspective,
    PerspectiveResult,
    Rating,
    ThreatModel,
)

__all__ = [
    "ACCURACY_BANDS",
    "ADVANTAGE_BANDS",
    "AUDIT_METRIC",
    "BYTES_ABS_BANDS",
    "BYTES_REL_BANDS",
    "EXPONENT_BANDS",
    "MANDATORY_CHECKS",
    "NOT_MEASURED",
    "THREAT_CAPS",
    "WALL_ABS_BANDS",
    "WALL_REL_BANDS",
    "CryptoParam",
    "bits_of_security",
    "chance_advantage",
    "rate",
    "rate_accuracy",
    "rate_communication",
    "rate_compliance",
    "rate_functionality",
    "rate_performance",
    "rate_scalability",
    "rate_security",
]

NOT_MEASURED = "not measured"

# (upper bound inclusive, rating): the first band the value fits in gives the rating; above
# the last bound the rating is 1.
Bands = tuple[tuple[float, Rating], ...]

#: |value - pooled| of the task metric (e.g. AUC) against the same model on pooled plaintext.
ACCURACY_BANDS: Bands = (
    (0.005, Rating.EXCELLENT),
    (0.01, Rating.GOOD),
    (0.02, Rating.ADEQUATE),
    (0.05, Rating.WEAK),
)
#: wall time / wall time of pooled plaintext on the same workload.
WALL_REL_BANDS: Bands = (
    (2.0, Rating.EXCELLENT),
    (10.0, Rating.GOOD),
    (100.0, Rating.ADEQUATE),
    (1000.0, Rating.WEAK),
)
#: wall time in seconds of the standard workload (no pooled run to compare with).
WALL_ABS_BANDS: Bands = (
    (1.0, Rating.EXCELLENT),
    (10.0, Rating.GOOD),
    (60.0, Rating.ADEQUATE),
    (600.0, Rating.WEAK),
)
#: bytes sent by all parties / bytes of pooled plaintext (the data shipped once).
BYTES_REL_BANDS: Bands = (
    (10.0, Rating.EXCELLENT),
    (100.0, Rating.GOOD),
    (1000.0, Rating.ADEQUATE),
    (10000.0, Rating.WEAK),
)
#: bytes sent by all parties on the standard workload (no pooled run to compare with).
BYTES_ABS_BANDS: Bands = (
    (1e6, Rating.EXCELLENT),
    (1e7, Rating.GOOD),
    (1e8, Rating.ADEQUATE),
    (1e9, Rating.WEAK),
)
#: the largest fitted power-law exponent of wall time (rows, features, parties).
EXPONENT_BANDS: Bands = (
    (1.1, Rating.EXCELLENT),
    (1.5, Rating.GOOD),
    (2.0, Rating.ADEQUATE),
    (3.0, Rating.WEAK),
)
#: an attack's advantage (max TPR - FPR) against the protected target.
ADVANTAGE_BANDS: Bands = (
    (0.05, Rating.EXCELLENT),
    (0.1, Rating.GOOD),
    (0.2, Rating.ADEQUATE),
    (0.4, Rating.WEAK),
)
#: the best security rating a threat model allows.
THREAT_CAPS: Mapping[ThreatModel, Rating] = {
    ThreatModel.MALICIOUS: Rating.EXCELLENT,
    ThreatModel.COVERT: Rating.GOOD,
    ThreatModel.SEMI_HONEST: Rating.GOOD,
    ThreatModel.TRUSTED_HARDWARE: Rating.GOOD,
    ThreatModel.NONE: Rating.INSUFFICIENT,
}
#: the rating a cryptographic strength allows (bits, inclusive lower bound).
STRENGTH_BANDS: tuple[tuple[int, Rating], ...] = (
    (128, Rating.EXCELLENT),
    (112, Rating.GOOD),
    (80, Rating.WEAK),
)
#: checks whose failure caps compliance at WEAK whatever the share passed.
MANDATORY_CHECKS = frozenset(
    {"audit-chain", "approvals", "jrt0171-levels", "dp-budget", "jrt0196-roles"}
)
#: the two-sample Kolmogorov-Smirnov coefficient at 95 % (c(alpha=0.05) = 1.358).
KS_95 = 1.358
#: control attacks below this advantage did not work: a low protected advantage proves nothing.
CONTROL_MIN_ADVANTAGE = 0.1
#: a fit with r² below this is reported as unreliable (the rating still uses the exponent).
MIN_R2 = 0.8
#: WAN wall time / loopback wall time above which communication is capped at ADEQUATE.
WAN_SLOWDOWN_CAP = 10.0


def chance_advantage(trials: int) -> float:
    """What ``max(TPR - FPR)`` of random scores stays below with 95 % probability over
    ``trials`` trials (half members, half not): the two-sample Kolmogorov-Smirnov critical
    value ``1.358 * sqrt(4 / trials)``. An advantage up to it is indistinguishable from chance.
    Without trials (0): 0."""
    return 0.0 if trials <= 0 else min(1.0, KS_95 * math.sqrt(4.0 / trials))


def _band(value: float, bands: Bands) -> Rating:
    # rounded to 9 decimals first, so 0.80 - 0.79 (0.010000000000000009) is a gap of 0.01
    value = round(value, 9)
    for bound, rating in bands:
        if value <= bound:
            return rating
    return Rating.INSUFFICIENT


def _fmt(v: float) -> str:
    return f"{v:.4g}"


# -- bits of security (NIST SP 800-57 Part 1 Rev. 5, Table 2) -----------------------------

#: (modulus bits, security strength) for RSA-like moduli (RSA, Paillier, OU, finite-field DH).
_IFC = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))
#: (group order bits, security strength) for elliptic curves.
_ECC = ((512, 256), (384, 192), (256, 128), (224, 112), (160, 80))


@dataclass(frozen=True)
class CryptoParam:
    """One cryptographic parameter as used by default, and where it is read from.

    ``kind``: ``ifc`` (RSA/Paillier modulus bits), ``ecc`` (group order bits), ``symmetric``
    (key bits, e.g. AES-128, OT κ), ``lattice`` (CKKS: the bits the parameter set is rated at
    by the HE standard), ``statistical`` (statistical security parameter, e.g. σ=40),
    ``information-theoretic`` (secret sharing: no computational assumption)."""

    name: str
    kind: str
    size: int
    source: str

    def bits(self) -> int | None:
        """Security strength in bits, or ``None`` when it does not rest on a computational
        assumption (information-theoretic) or is a statistical parameter."""
        return bits_of_security(self.kind, self.size)


def bits_of_security(kind: str, size: int) -> int | None:
    """Security strength in bits of a parameter, per NIST SP 800-57 Part 1 Rev. 5 Table 2.

    IFC moduli (RSA, Paillier, OU) and ECC group orders map to the largest row they reach
    (2048-bit modulus: 112; 3072: 128; 256-bit order: 128); below the smallest row: 0.
    Symmetric keys and lattice parameter sets are their own strength. Statistical and
    information-theoretic parameters: ``None`` (no computational assumption to rate).

    Curve25519 / Ristretto255 (a 255-bit field, order about 2^252) are counted in the 256-bit
    class, as is conventional: orders of 250-255 bits are taken as 256.
    """
    if kind == "ifc":
        return next((s for m, s in _IFC if size >= m), 0)
    if kind == "ecc":
        size = 256 if 250 <= size < 256 else size
        return next((s for m, s in _ECC if size >= m), 0)
    if kind in ("symmetric", "lattice"):
        return size
    if kind in ("statistical", "information-theoretic"):
        return None
    raise ValueError(f"unknown parameter kind {kind!r}")


# -- the perspectives ----------------------------------------------------------------------


def _by_name(evidence: Iterable[Evidence]) -> dict[str, Evidence]:
    return {e.name: e for e in evidence}


def _num(ev: Mapping[str, Evidence], name: str) -> float | None:
    e = ev.get(name)
    if e is None or isinstance(e.value, (str, bool)):
        return None
    return float(e.value)


def _not_measured(p: Perspective, **kw: object) -> PerspectiveResult:
    return PerspectiveResult(p, None, (NOT_MEASURED,), **kw)  # type: ignore[arg-type]


def rate_functionality(
    checks: Sequence[Check], evidence: Sequence[Evidence] = ()
) -> PerspectiveResult:
    """1 + the number of capability checks passed, at most 5 (the capability checks are:
    two-party, multi-party, data types, training and inference, interoperability)."""
    p = Perspective.FUNCTIONALITY
    if not checks:
        return _not_measured(p, evidence=tuple(evidence))
    passed = [c for c in checks if c.passed]
    rating = Rating(min(5, 1 + len(passed)))
    reasons = [f"{len(passed)} of {len(checks)} capabilities present, so rating {int(rating)}"]
    reasons += [f"missing: {c.name} ({c.detail})" for c in checks if not c.passed]
    return PerspectiveResult(p, rating, tuple(reasons), tuple(evidence), tuple(checks))


def rate_security(
    *,
    threat_model: ThreatModel | None,
    params: Sequence[CryptoParam] = (),
    attacks: Sequence[AttackResult] = (),
    probes: Sequence[Check] = (),
    evidence: Sequence[Evidence] = (),
    simulated: bool = False,
) -> PerspectiveResult:
    """The lowest of: the cap of the threat model, the strength of the weakest computational
    parameter, the band of the largest advantage of an attack on the protected target beyond
    what chance reaches in its number of trials (:func:`chance_advantage`; only where the
    control attack worked), and WEAK if a deviating-party probe went undetected.
    A simulated enclave (no hardware protection) is INSUFFICIENT."""
    p = Perspective.SECURITY
    ev = list(evidence)
    if threat_model is None and not params and not attacks and not probes:
        return _not_measured(p, evidence=tuple(ev))
    reasons: list[str] = []
    rating = Rating.EXCELLENT
    if threat_model is not None:
        cap = THREAT_CAPS[threat_model]
        if threat_model is ThreatModel.NONE:
            reasons.append("no protection: every party sees the pooled data, so rating 1")
        elif cap < rating:
            reasons.append(
                f"guarantees hold against {threat_model.value} parties only: at most {int(cap)}"
            )
        rating = min(rating, cap)
    if simulated:
        rating = Rating.INSUFFICIENT
        reasons.append("simulated enclave: no hardware protection (development only), so rating 1")
    computational = [(q, q.bits()) for q in params]
    strengths = [(q, b) for q, b in computational if b is not None]
    for q in params:
        b = q.bits()
        ev.append(
            Evidence(
                f"bits[{q.name}]",
                -1 if b is None else b,
                "bits",
                f"{q.kind} {q.size}; {q.source}",
            )
        )
    if strengths:
        weakest, bits = min(strengths, key=lambda t: t[1])
        cap = next((r for lo, r in STRENGTH_BANDS if bits >= lo), Rating.INSUFFICIENT)
        reasons.append(
            f"weakest parameter {weakest.name} ({weakest.kind} {weakest.size}) gives {bits} bits "
            f"of security (NIST SP 800-57 Part 1 Table 2): at most {int(cap)}"
        )
        rating = min(rating, cap)
    elif params:
        reasons.append("no computational assumption (information-theoretic or statistical)")
    controls = {(a.attack, a.target): a for a in attacks if not a.protected}
    for a in attacks:
        if a.metric == AUDIT_METRIC and a.value is not None:
            rating = min(rating, _dp_audit(a, reasons))
            continue
        if not a.protected:
            continue
        if a.advantage is None:
            ctl_v = next(
                (c.value for c in attacks if not c.protected and c.attack == a.attack), None
            )
            vs = "" if ctl_v is None else f" (unprotected control {_fmt(ctl_v)})"
            shown = "?" if a.value is None else _fmt(a.value)
            reasons.append(
                f"attack {a.attack}: {a.metric or 'result'} {shown}{vs} (listed, not rated)"
            )
            continue
        ctl = controls.get((a.attack, a.target)) or next(
            (c for c in attacks if not c.protected and c.attack == a.attack), None
        )
        if ctl is not None and (ctl.advantage or 0.0) < max(
            CONTROL_MIN_ADVANTAGE, chance_advantage(ctl.trials)
        ):
            reasons.append(
                f"attack {a.attack}: the unprotected control reached advantage "
                f"{_fmt(ctl.advantage or 0.0)} only, so the protected result proves nothing"
            )
            continue
        crit = chance_advantage(a.trials)
        excess = max(0.0, a.advantage - crit)
        cap = _band(excess, ADVANTAGE_BANDS)
        reasons.append(
            f"attack {a.attack} on {a.target}: advantage {_fmt(a.advantage)}"
            + (f" (control {_fmt(ctl.advantage or 0.0)})" if ctl is not None else "")
            + f", {_fmt(excess)} beyond what chance reaches in {a.trials} trials "
            f"({_fmt(crit)}): at most {int(cap)}"
        )
        rating = min(rating, cap)
    missed = [c for c in probes if not c.passed]
    if probes:
        reasons.append(
            f"{len(probes) - len(missed)} of {len(probes)} deviating-party probes detected"
        )
    for c in missed:
        reasons.append(f"undetected deviation: {c.name} ({c.detail}): at most 2")
        rating = min(rating, Rating.WEAK)
    if not reasons:
        reasons.append("no weakness found")
    return PerspectiveResult(p, rating, tuple(reasons), tuple(ev), tuple(probes), tuple(attacks))


#: A DP audit reports its empirical epsilon lower bound under this metric; the accountant's
#: epsilon is read from its detail ("accountant (RDP) epsilon 1.234").
AUDIT_METRIC = "epsilon_lower_bound"
_CLAIM = re.compile(r"accountant\b[^;]*?\bepsilon ([0-9]+(?:\.[0-9]+)?)")


def _dp_audit(a: AttackResult, reasons: list[str]) -> Rating:
    """A DP audit is rated by its epsilon lower bound against the accountant's epsilon, not
    by its advantage (DP allows an advantage up to what epsilon permits)."""
    m = _CLAIM.search(a.detail)
    lower = float(a.value or 0.0)
    if m is None:
        reasons.append(f"DP audit {a.attack}: lower bound {_fmt(lower)} (no claimed epsilon)")
        return Rating.EXCELLENT
    claim = float(m.group(1))
    if not a.protected:
        caught = lower > claim
        reasons.append(
            f"DP audit {a.attack} on a planted bug: lower bound {_fmt(lower)} vs claim "
            f"{_fmt(claim)}: "
            + ("caught (the audit works)" if caught else "NOT caught (weak audit)")
        )
        return Rating.EXCELLENT
    if lower > claim:
        reasons.append(
            f"DP audit {a.attack}: empirical epsilon >= {_fmt(lower)} EXCEEDS the accountant's "
            f"{_fmt(claim)}: the privacy claim does not hold, so rating 1"
        )
        return Rating.INSUFFICIENT
    reasons.append(
        f"DP audit {a.attack}: empirical epsilon >= {_fmt(lower)}, within the accountant's "
        f"{_fmt(claim)}"
    )
    return Rating.EXCELLENT


def rate_accuracy(evidence: Sequence[Evidence]) -> PerspectiveResult:
    """The band of ``gap`` (|value - pooled|, or computed from ``value`` and ``pooled_value``)."""
    p = Perspective.ACCURACY
    ev = _by_name(evidence)
    gap = _num(ev, "gap")
    value, pooled = _num(ev, "value"), _num(ev, "pooled_value")
    if gap is None and value is not None and pooled is not None:
        gap = abs(value - pooled)
    if gap is None:
        return _not_measured(p, evidence=tuple(evidence))
    metric = ev["metric"].value if "metric" in ev else "metric"
    rating = _band(abs(gap), ACCURACY_BANDS)
    reason = f"{metric} differs from pooled plaintext by {_fmt(abs(gap))}"
    if value is not None and pooled is not None:
        reason += f" ({_fmt(value)} vs {_fmt(pooled)})"
    return PerspectiveResult(p, rating, (reason + f", so rating {int(rating)}",), tuple(evidence))


def rate_performance(
    evidence: Sequence[Evidence], *, pooled: Sequence[Evidence] | None = None
) -> PerspectiveResult:
    """Wall time relative to pooled plaintext on the same workload when that run is given
    (``pooled``), otherwise the absolute band of the standard workload's wall time."""
    p = Perspective.PERFORMANCE
    ev = _by_name(evidence)
    wall = _num(ev, "wall_s")
    if wall is None:
        return _not_measured(p, evidence=tuple(evidence))
    base = _num(_by_name(pooled), "wall_s") if pooled else None
    reasons = []
    if base is not None and base > 0:
        ratio = wall / base
        rating = _band(ratio, WALL_REL_BANDS)
        reasons.append(
            f"{_fmt(wall)} s wall time, {_fmt(ratio)}x pooled plaintext ({_fmt(base)} s), "
            f"so rating {int(rating)}"
        )
    else:
        rating = _band(wall, WALL_ABS_BANDS)
        reasons.append(
            f"{_fmt(wall)} s wall time on the standard workload, so rating {int(rating)}"
        )
    cpu, rss = _num(ev, "cpu_s"), _num(ev, "peak_rss_mb")
    if cpu is not None:
        reasons.append(f"{_fmt(cpu)} s CPU over all parties")
    if rss is not None:
        reasons.append(f"peak memory {_fmt(rss)} MB in the largest party")
    return PerspectiveResult(p, rating, tuple(reasons), tuple(evidence))


def rate_communication(
    evidence: Sequence[Evidence], *, pooled: Sequence[Evidence] | None = None
) -> PerspectiveResult:
    """Bytes relative to pooled plaintext (or absolute), capped by network tolerance: an
    interrupted run that hung is INSUFFICIENT, one that failed cleanly at most GOOD, a WAN
    slowdown above 10x at most ADEQUATE."""
    p = Perspective.COMMUNICATION
    ev = _by_name(evidence)
    total = _num(ev, "bytes_total")
    if total is None:
        return _not_measured(p, evidence=tuple(evidence))
    base = _num(_by_name(pooled), "bytes_total") if pooled else None
    reasons = []
    if base is not None and base > 0:
        ratio = total / base
        rating = _band(ratio, BYTES_REL_BANDS)
        reasons.append(
            f"{_fmt(total)} bytes sent, {_fmt(ratio)}x pooled plaintext ({_fmt(base)} bytes), "
            f"so rating {int(rating)}"
        )
    else:
        rating = _band(total, BYTES_ABS_BANDS)
        reasons.append(
            f"{_fmt(total)} bytes sent on the standard workload, so rating {int(rating)}"
        )
    rounds = _num(ev, "rounds")
    if rounds is not None:
        reasons.append(f"{int(rounds)} rounds")
    slowdown = _num(ev, "wan_slowdown")
    mode = ev.get("wan_mode")
    if slowdown is not None:
        where = f" ({mode.value})" if mode is not None else ""
        reasons.append(f"{_fmt(slowdown)}x slower on the emulated WAN{where}")
        if slowdown > WAN_SLOWDOWN_CAP:
            rating = min(rating, Rating.ADEQUATE)
            reasons.append(f"WAN slowdown above {WAN_SLOWDOWN_CAP:g}x: at most 3")
    interruption = ev.get("interruption")
    if interruption is not None:
        detail = ev.get("interruption_detail")
        extra = f": {detail.value}" if detail is not None else ""
        if interruption.value == "hung":
            rating = Rating.INSUFFICIENT
            reasons.append(f"an interruption mid-run left it hanging{extra}, so rating 1")
        elif interruption.value == "failed-cleanly":
            rating = min(rating, Rating.GOOD)
            reasons.append(f"an interruption mid-run failed cleanly, no recovery{extra}: at most 4")
        else:
            reasons.append(f"an interruption mid-run: {interruption.value}{extra}")
    else:
        reasons.append("interruption not tested")
    return PerspectiveResult(p, rating, tuple(reasons), tuple(evidence))


def rate_scalability(evidence: Sequence[Evidence]) -> PerspectiveResult:
    """The band of the largest fitted exponent of wall time over rows, features and parties."""
    p = Perspective.SCALABILITY
    ev = _by_name(evidence)
    fits = {
        dim: v
        for dim in ("rows", "features", "parties")
        if (v := _num(ev, f"exponent[{dim}]")) is not None
    }
    if not fits:
        return _not_measured(p, evidence=tuple(evidence))
    dim, worst = max(fits.items(), key=lambda t: t[1])
    rating = _band(worst, EXPONENT_BANDS)
    reasons = [f"time grows as {d}^{_fmt(v)}" + _r2_note(ev, d) for d, v in fits.items()]
    reasons.append(f"worst growth is with {dim} (exponent {_fmt(worst)}), so rating {int(rating)}")
    missing = [d for d in ("rows", "features", "parties") if d not in fits]
    if missing:
        reasons.append(f"not measured: growth with {', '.join(missing)}")
    return PerspectiveResult(p, rating, tuple(reasons), tuple(evidence))


def _r2_note(ev: Mapping[str, Evidence], dim: str) -> str:
    r2 = _num(ev, f"r2[{dim}]")
    if r2 is None:
        return ""
    return f" (r² {r2:.2f}{', unreliable fit' if r2 < MIN_R2 else ''})"


def rate_compliance(checks: Sequence[Check]) -> PerspectiveResult:
    """By the share of checks passed (all: 5, ≥80 %: 4, ≥60 %: 3, ≥40 %: 2, else 1); a failed
    mandatory check (:data:`MANDATORY_CHECKS`) caps the rating at 2."""
    p = Perspective.COMPLIANCE
    if not checks:
        return _not_measured(p)
    passed = sum(c.passed for c in checks)
    share = passed / len(checks)
    if passed == len(checks):
        rating = Rating.EXCELLENT
    elif share >= 0.8:
        rating = Rating.GOOD
    elif share >= 0.6:
        rating = Rating.ADEQUATE
    elif share >= 0.4:
        rating = Rating.WEAK
    else:
        rating = Rating.INSUFFICIENT
    reasons = [f"{passed} of {len(checks)} checks passed"]
    for c in checks:
        if not c.passed:
            mandatory = c.name in MANDATORY_CHECKS
            reasons.append(
                f"failed{' (mandatory)' if mandatory else ''}: {c.name} [{c.clause}] {c.detail}"
            )
            if mandatory:
                rating = min(rating, Rating.WEAK)
    reasons.append(f"so rating {int(rating)}")
    return PerspectiveResult(p, rating, tuple(reasons), checks=tuple(checks))


def rate(
    perspective: Perspective,
    evidence: Sequence[Evidence] = (),
    *,
    pooled: Sequence[Evidence] | None = None,
) -> PerspectiveResult:
    """Rate a measured perspective (accuracy, performance, communication, scalability)."""
    if perspective is Perspective.ACCURACY:
        return rate_accuracy(evidence)
    if perspective is Perspective.PERFORMANCE:
        return rate_performance(evidence, pooled=pooled)
    if perspective is Perspective.COMMUNICATION:
        return rate_communication(evidence, pooled=pooled)
    if perspective is Perspective.SCALABILITY:
        return rate_scalability(evidence)
    raise ValueError(f"{perspective} is not rated from measurements alone")

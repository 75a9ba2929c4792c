"""Hand-made evidence and attacks standing in for privfin.assess.measure / .attacks (built on
other branches) in the core's tests: fixed numbers whose ratings the tests derive by hand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from privfin.assess.model import AttackResult, Evidence, Perspective

HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


def measured(
    wall: float, nbytes: float, gap: float, exponent: float
) -> dict[Perspective, list[Evidence]]:
    """One technology's measurements (the names and units of assess_common.md)."""
    return {
        Perspective.ACCURACY: [
            Evidence("metric", "auc"),
            Evidence("value", 0.80 - gap),
            Evidence("pooled_value", 0.80),
            Evidence("gap", gap),
        ],
        Perspective.PERFORMANCE: [
            Evidence("wall_s", wall, "s"),
            Evidence("cpu_s", wall * 1.5, "s"),
            Evidence("peak_rss_mb", 120.0, "MB"),
            Evidence("cpu_s[bank]", wall, "s"),
        ],
        Perspective.COMMUNICATION: [
            Evidence("bytes_total", nbytes, "B"),
            Evidence("bytes[bank]", nbytes / 2, "B"),
            Evidence("rounds", 12),
            Evidence("wan_wall_s", wall * 3, "s"),
            Evidence("wan_slowdown", 3.0),
            Evidence("wan_mode", "loopback-fallback: no netns"),
            Evidence("interruption", "recovered"),
            Evidence("interruption_detail", HOSTILE),
        ],
        Perspective.SCALABILITY: [
            Evidence("exponent[rows]", exponent),
            Evidence("r2[rows]", 0.99),
            Evidence("exponent[features]", 1.0),
            Evidence("r2[features]", 0.5),
            *[
                Evidence(f"time[rows={n}]", wall * (n / 100) ** exponent, "s")
                for n in (100, 200, 400)
            ],
            *[Evidence(f"time[features={n}]", wall * n / 4, "s") for n in (4, 8, 16)],
        ],
    }


def roc(strength: float) -> tuple[tuple[float, float], ...]:
    pts = [i / 10 for i in range(11)]
    return tuple((f, min(1.0, f + strength * (1 - f) * (f > 0))) for f in pts)


def attacks(technology: str) -> list[AttackResult]:
    """A membership-inference attack: strong on the control, near chance on the target."""
    if technology == "pooled-plaintext":
        return [
            AttackResult(
                "membership-lira", "plain model", False, 400, 0.8, 0.45, {0.01: 0.2}, roc(0.45)
            ),
        ]
    return [
        AttackResult(
            "membership-lira", "plain model", False, 400, 0.8, 0.45, {0.01: 0.2}, roc(0.45)
        ),
        AttackResult(
            "membership-lira",
            "plain model",
            True,
            400,
            0.52,
            0.03,
            {0.01: 0.012},
            roc(0.03),
            detail=HOSTILE,
        ),
        AttackResult("psi-leakage", "sizes", True, 1, metric="bits_leaked", value=0.0),
    ]


WALLS = {"pooled-plaintext": 0.5, "vfl-he": 40.0, "mpc": 6.0, "tee": 0.8, "dp-central": 0.6}
BYTES = {"pooled-plaintext": 1e5, "vfl-he": 2e8, "mpc": 3e7, "tee": 2e5, "dp-central": 1e3}


def fake_measure_technology(
    technology: str,
    *,
    quick: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[Perspective, list[Evidence]]:
    if progress is not None:
        progress(f"{technology}: measuring (hand-made)")
    return measured(WALLS.get(technology, 2.0), BYTES.get(technology, 1e6), 0.004, 1.2)


def fake_compare(
    scenario: str,
    technologies: Sequence[str],
    *,
    quick: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[Perspective, list[Evidence]]]:
    return {t: fake_measure_technology(t, progress=progress) for t in technologies}


def fake_attacks_for(technology: str, *, quick: bool = True, seed: int = 0) -> list[AttackResult]:
    return attacks(technology)


def patch_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Install the stand-ins as privfin.assess.measure and privfin.assess.attacks."""
    import sys
    import types

    measure: Any = types.ModuleType("privfin.assess.measure")
    measure.measure_technology = fake_measure_technology
    measure.compare = fake_compare
    attack: Any = types.ModuleType("privfin.assess.attacks")
    attack.attacks_for = fake_attacks_for
    monkeypatch.setitem(sys.modules, "privfin.assess.measure", measure)
    monkeypatch.setitem(sys.modules, "privfin.assess.attacks", attack)

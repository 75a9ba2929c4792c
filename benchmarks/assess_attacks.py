"""Empirical attacks of ``privfin.assess.attacks`` at full size: every attack against the
protected target and its unprotected control, per technology.

    .venv/bin/python benchmarks/assess_attacks.py            # full sizes (~5 min, busy 2 cores)
    .venv/bin/python benchmarks/assess_attacks.py --quick    # the sizes the tests use

Prints one table (attack, target, protected, trials, AUC, advantage, TPR at FPR 0.01 / 0.1,
metric value) and one JSON line per technology (``ours``: the worst protected-target AUC
distance from chance, ``|AUC - 0.5|``, the figure a protected target should keep small; DP
audits are left out, their criterion is the epsilon bound; no peer). Attacks are seeded
(``--seed``); hetero LR's Paillier randomness is not, so its AUCs move by a few hundredths
between runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _harness import emit, machine, print_table
from privfin.assess.attacks import TECHNOLOGIES, attacks_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--technologies", default=",".join(TECHNOLOGIES))
    args = ap.parse_args()
    print(f"machine: {machine()}; quick={args.quick}")
    for tech in args.technologies.split(","):
        start = time.perf_counter()
        results = attacks_for(tech, quick=args.quick, seed=args.seed)
        wall = time.perf_counter() - start
        rows = [
            {
                "attack": r.attack,
                "target": r.target[:48],
                "protected": r.protected,
                "trials": r.trials,
                "auc": r.auc,
                "advantage": r.advantage,
                "tpr@0.01": r.tpr_at_fpr.get(0.01),
                "tpr@0.1": r.tpr_at_fpr.get(0.1),
                "metric": r.metric,
                "value": r.value,
            }
            for r in results
        ]
        print_table(f"{tech} ({wall:.1f} s)", rows)
        # the DP audits' AUCs are allowed away from 0.5 (their criterion is the epsilon bound)
        protected = [
            abs(r.auc - 0.5)
            for r in results
            if r.protected and r.auc is not None and not r.attack.startswith("dp-audit")
        ]
        emit(
            f"assess_attacks.{tech}", "max |AUC-0.5| (protected)",
            max(protected) if protected else 0.0, None, "", False,
            "quick" if args.quick else "full",
        )  # fmt: skip


if __name__ == "__main__":
    main()

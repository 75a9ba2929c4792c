"""The assessment's measured evidence (issue [19]) for every technology, and the credit
comparison: what ``privfin assess`` rates from the accuracy, performance, communication and
scalability perspectives (src/privfin/assess/measure, src/privfin/assess/netem.py).

Per technology: the base run in one process (wall, CPU, peak RSS, bytes, rounds, accuracy gap
to pooled plaintext), the power-law exponents of wall time over rows / features / parties, the
two-node run under the emulated WAN (netem, else the userspace delay proxy) and the cut-link
outcome. Usage: ``python benchmarks/assess.py [--quick] [--only hfl,mpc]``; ``--quick``: the
quick sizes (seconds to a minute per technology), else the full sizes (minutes to hours).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, machine, print_table
from privfin.assess.measure import TECHNOLOGIES, compare, measure_technology
from privfin.assess.model import Perspective

FIELDS = [
    ("gap", Perspective.ACCURACY),
    ("wall_s", Perspective.PERFORMANCE),
    ("cpu_s", Perspective.PERFORMANCE),
    ("peak_rss_mb", Perspective.PERFORMANCE),
    ("bytes_total", Perspective.COMMUNICATION),
    ("rounds", Perspective.COMMUNICATION),
    ("wan_wall_s", Perspective.COMMUNICATION),
    ("wan_slowdown", Perspective.COMMUNICATION),
    ("interruption", Perspective.COMMUNICATION),
    ("exponent[rows]", Perspective.SCALABILITY),
    ("exponent[features]", Perspective.SCALABILITY),
    ("exponent[parties]", Perspective.SCALABILITY),
]


def _row(name: str, ev: dict[Perspective, list[Any]]) -> dict[str, Any]:
    flat = {(p, e.name): e.value for p, items in ev.items() for e in items}
    row: dict[str, Any] = {"technology": name}
    acc = {e.name: e.value for e in ev.get(Perspective.ACCURACY, [])}
    row["metric"] = acc.get("metric")
    row["value"] = acc.get("value")
    for field, p in FIELDS:
        v = flat.get((p, field))
        row[field] = round(v, 4) if isinstance(v, float) else v
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="quick sizes")
    ap.add_argument("--only", default="", help="comma-separated technologies")
    args = ap.parse_args()
    quick = bool(args.quick)
    techs = [t for t in args.only.split(",") if t] or list(TECHNOLOGIES)
    rows, modes = [], set()
    for tech in techs:
        start = time.perf_counter()
        ev = measure_technology(tech, quick=quick, progress=lambda s: print(f"[bench] {s}",
                                file=sys.stderr))  # fmt: skip
        rows.append(_row(tech, ev))
        comm = {e.name: e.value for e in ev[Perspective.COMMUNICATION]}
        modes |= {comm["wan_mode"]} if "wan_mode" in comm else set()
        if "interruption_detail" in comm:
            print(f"[bench] {tech}: {comm['interruption']}: {comm['interruption_detail']}",
                  file=sys.stderr)  # fmt: skip
        print(f"[bench] {tech}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    load = os.getloadavg()
    size = "quick" if quick else "full"
    print_table(
        f"Assessment evidence per technology ({size} sizes, {machine()}, load "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f})",
        rows,
    )
    for m in sorted(str(x) for x in modes):
        print(f"WAN: {m}")
    cmp = compare("credit", ["vfl-he", "mpc", "tee", "dp-central", "pooled-plaintext"],
                  quick=quick)  # fmt: skip
    cmp_rows = [_row(t, ev) for t, ev in cmp.items()]
    print_table(f"Credit comparison ({size}): AUC on the common held-out rows", cmp_rows)
    for r in rows:
        emit(f"assess.{r['technology']}.wall_s", "s", r["wall_s"], None, "none named", False, size)
    print(json.dumps({"technologies": rows, "compare": cmp_rows}, default=str))


if __name__ == "__main__":
    main()

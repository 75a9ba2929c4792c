"""``privfin demo [SCENARIO]``: a scenario of ``scenarios/`` run end to end on a local cluster
of node processes over mutual TLS, with progress bars and a one-screen summary.

The demo's keys, certificates, data and node state live in a private temporary directory
(mode 0700) that is removed when the demo ends, however it ends; ``keep`` keeps them in a
directory of your choice instead (and the nodes' state can then be read again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from privfin.errors import ConfigError

__all__ = ["SCENARIOS", "run_demo"]

SCENARIOS = ("credit", "risk", "idverify", "fraud", "blacklist", "marketing")
"""Scenarios ``privfin demo`` runs."""

console = Console()


def run_demo(
    scenario: str = "credit",
    *,
    rows: int | None = None,
    seed: int = 7,
    keep: Path | None = None,
    wait: bool = False,
    data: Path | None = None,
    key_bits: int = 1024,
    roc: Path = Path("credit_roc.svg"),
) -> dict[str, Any]:
    """Run ``scenario``; returns its summary figures."""
    from privfin.cli.scenarios._runner import private_root

    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    if data is not None and scenario != "credit":
        raise ConfigError("--data is for the credit scenario (the default_credit split)")
    with private_root(keep) as root:
        if scenario == "credit":
            from privfin.cli.scenarios.credit import run_credit

            out = run_credit(
                console,
                root,
                rows=rows or (6000 if data else 4000),
                seed=seed,
                data_dir=data,
                key_bits=key_bits,
                roc_out=roc,
                keep_up=wait,
            )
        elif scenario == "risk":
            from privfin.cli.scenarios.risk import run_risk

            out = run_risk(console, root, rows=rows or 2000, seed=seed, keep_up=wait)
        elif scenario == "marketing":
            from privfin.cli.scenarios.marketing import run_marketing

            out = run_marketing(
                console, root, rows=rows or 6000, seed=seed, key_bits=key_bits, keep_up=wait
            )
        else:
            from privfin.cli.scenarios import others

            out = others.run(scenario, console, root, rows=rows, seed=seed, keep_up=wait)
        if keep is not None and "initiator" in out:
            party = out["initiator"]
            cfg = root / "cluster" / party / "node.yaml"
            console.print(
                f"kept in {root}. The {party}'s dashboard: [bold]{out.get('dashboard')}[/] once "
                f"its node runs again: privfin node start --config {cfg} (operator token: "
                f"{root / 'cluster' / party / 'state' / 'operator.token'})"
            )
        elif "dashboard" in out and not wait:
            console.print(
                "the cluster is stopped and its directory removed; rerun with --wait to look at "
                "the job in the initiator's dashboard, or --keep DIR to keep the nodes' state"
            )
    return out

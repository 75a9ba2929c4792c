"""The price of a job before it is approved: cost estimates of its MPC steps.

``privfin job validate`` prints, for a job whose component is an MPC one (``ss_lr``,
``mpc_stats``), the rounds, bytes per computing party and expected time with the provider
the job will use and with the other dealer-free one the roles allow
(:mod:`privfin.mpc.cost`). Time needs this machine's unit costs: :func:`load_calibration`
measures them once (≈ 1 s) and caches them per machine in
``$PRIVFIN_CACHE_DIR`` (default ``~/.cache/privfin``) as ``mpc-calibration.json``, refreshed
after :data:`MAX_AGE_S` or on request.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from privfin.errors import ConfigError
from privfin.mpc.cost import (
    Calibration,
    Estimate,
    Network,
    calibrate,
    estimate_mpc_stats,
    estimate_ss_lr,
    production_provider,
)

__all__ = [
    "ESTIMATED",
    "MAX_AGE_S",
    "estimate_step",
    "load_calibration",
    "machine_id",
    "render",
]

#: Components with a cost model.
ESTIMATED = {"ss_lr": estimate_ss_lr, "mpc_stats": estimate_mpc_stats}
#: A cached calibration older than this is measured again (30 days).
MAX_AGE_S = 30 * 24 * 3600
_FILE = "mpc-calibration.json"


def machine_id() -> str:
    """What the calibration is valid for: host, CPU, core count and Python."""
    return "/".join(
        [
            platform.node(),
            platform.machine(),
            platform.processor() or "cpu",
            str(os.cpu_count() or 0),
            platform.python_version(),
        ]
    )


def _cache_dir() -> Path:
    env = os.environ.get("PRIVFIN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "privfin"


def load_calibration(
    cache_dir: Path | None = None, *, refresh: bool = False, now: float | None = None
) -> tuple[Calibration, bool]:
    """This machine's calibration and whether it was measured now (else read from the
    cache). A cache for another machine, older than :data:`MAX_AGE_S` or unreadable is
    replaced; a cache that cannot be written is skipped (the estimate still runs)."""
    path = (cache_dir or _cache_dir()) / _FILE
    me = machine_id()
    now = time.time() if now is None else now
    if not refresh and path.is_file():
        try:
            cal = Calibration.from_json(json.loads(path.read_text()))
            if cal.machine == me and 0 <= now - cal.measured_at < MAX_AGE_S:
                return cal, False
        except (ValueError, KeyError, TypeError, OSError):
            pass
    cal = calibrate(machine=me)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cal.to_json(), indent=1))
        tmp.replace(path)
    except OSError:
        pass
    return cal, True


def _providers(roles: Mapping[str, Sequence[str]], params: Mapping[str, Any]) -> list[str]:
    """The provider the job asks for (``auto``: the production default), then the other
    dealer-free one its computing parties allow, if any."""
    compute = sum("compute" in rs for rs in roles.values())
    asked = str(params.get("triples", "auto"))
    first = production_provider(compute) if asked == "auto" else asked
    out = [first]
    if first == "dealer" and compute in (2, 3):
        out.append(production_provider(compute))
    return out


def estimate_step(
    component: str,
    roles: Mapping[str, Sequence[str]],
    params: Mapping[str, Any],
    rows: int,
    calibration: Calibration,
    network: Network | None = None,
) -> list[Estimate | str]:
    """Estimates of one MPC step with each provider of :func:`_providers` (a string says
    why one could not be estimated). Empty for a component without a cost model."""
    fn = ESTIMATED.get(component)
    if fn is None:
        return []
    out: list[Estimate | str] = []
    for provider in _providers(roles, params):
        try:
            out.append(
                fn(roles, params, rows, provider=provider, calibration=calibration, network=network)
            )
        except (ConfigError, ValueError, KeyError, TypeError) as exc:
            out.append(f"{provider}: not estimated ({exc})")
    return out


def render(
    step: str, rows: int, rows_source: str, estimates: Sequence[Estimate | str]
) -> list[str]:
    """Lines for the validation output."""
    lines = [f"cost estimate of {step} ({rows:,} rows, {rows_source}):"]
    for e in estimates:
        if isinstance(e, str):
            lines.append(f"  {e}")
            continue
        lines.append(f"  {e.summary()}")
        lines.append(
            f"    {e.ots_max:,} OTs, {e.messages_max:,} messages per party; compute "
            f"{e.compute_seconds:.2f} s; network assumed: {e.network}"
        )
    return lines

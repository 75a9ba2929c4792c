"""Input inference by a computing party in secret-shared MPC.

Two computing parties ``a`` (also the data owner) and ``b`` run a secure computation on ``a``'s
column ``x`` (its square and its mean, revealed to a result party ``r`` only); ``b`` is
semi-honest and tries to learn the **sign** of each of ``a``'s values from everything it
receives: its input share (sent as a PRG seed, which it expands) and every opening of the
multiplication protocol (Beaver's ``x − a``). Each received per-element ring element is read
as a signed fixed-point number, as the protocol itself would decode it, and the score of
element ``i`` is the sum of those readings. Truth: ``x_i > 0``. One trial per element.

- **Protected**: :class:`privfin.mpc.Session` with the production default (dealer-free OT
  triples), run in-process with every message captured. Shares and openings are uniform in
  Z_2^64 (SPEC: "uniformly masked: reveals nothing"): AUC ≈ 0.5.
- **Control**: a naive sharing with real-valued masks of the data's own scale (``x = s_a +
  s_b``, ``s_a ~ N(0, σ²)`` with ``σ`` the data's standard deviation) — the mistake of masking
  in floating point instead of in a ring: ``b``'s share ``s_b = x − s_a`` keeps the sign of
  ``x`` most of the time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.assess.attacks._metrics import roc_result
from privfin.assess.model import AttackResult
from privfin.config import Settings
from privfin.crypto.prg import expand_uint64
from privfin.errors import ConfigError
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.mpc.messages import InputShare, Opening
from privfin.mpc.ring import decode_fixed
from privfin.mpc.session import Session
from privfin.runtime import Context, simulate

__all__ = ["TARGETS", "mpc_input_inference"]

Arr = npt.NDArray[np.float64]
TARGETS = ("ss-2pc", "naive-float-masks")
ROLES = {"a": ("data", "compute"), "b": ("compute",), "r": ("result",)}
FRAC_BITS = 16  # the session's fixed-point precision (its default, passed explicitly)


def _program(ctx: Context, params: Any, inputs: Any) -> Any:
    s = Session.from_params(ctx, params)
    x = s.share("a", inputs.get("x"))
    return {"square": (x * x).reveal("r"), "sum": x.sum().reveal("r")}


def _values(n: int, seed: int) -> Arr:
    rng = np.random.default_rng(seed)
    return np.asarray(rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.5, 2.0, size=n))


def _protected_view(x: Arr, seed: int) -> tuple[Arr, int]:
    """Per element, the sum of the fixed-point readings of everything ``b`` received."""
    hub = MemoryHub()
    out = simulate(
        _program, ROLES, params={"frac_bits": FRAC_BITS}, inputs={"a": {"x": x}}, seed=seed,
        hub=hub, settings=Settings(), timeout=120,
    )  # fmt: skip
    if np.abs(out["r"]["square"] - x * x).max() > 1e-3:
        raise RuntimeError("the secure computation returned a wrong result")
    frac = FRAC_BITS
    n = len(x)
    score = np.zeros(n)
    views = 0
    for key, payload in hub.wire:
        if key.receiver != "b":
            continue
        msg = codec.decode(payload)
        ring: Any = None
        if isinstance(msg, InputShare):
            ring = msg.values if msg.values is not None else expand_uint64(msg.seed or b"", n)
        elif isinstance(msg, Opening):
            ring = msg.values
        if ring is None or ring.size % n:
            continue
        for chunk in np.asarray(ring, dtype=np.uint64).reshape(-1, n):
            score += np.clip(decode_fixed(chunk, frac), -1e12, 1e12)
            views += 1
    if views == 0:
        raise RuntimeError("b received no per-element share or opening")
    return score, views


def mpc_input_inference(target: str, *, quick: bool = True, seed: int = 0) -> AttackResult:
    """The sign-inference game against ``target`` (``"ss-2pc"`` or the naive control)."""
    if target not in TARGETS:
        raise ConfigError(f"unknown MPC target {target!r}; one of {TARGETS}")
    n = 400 if quick else 4000
    x = _values(n, seed)
    if target == "ss-2pc":
        score, views = _protected_view(x, seed)
        name = "2PC additive sharing over Z_2^64 (privfin.mpc, OT triples)"
        what = (
            f"its input share (PRG seed) and the Beaver openings ({views} per-element ring "
            "vectors), read as fixed point"
        )
    else:
        rng = np.random.default_rng(seed + 1)
        score = x - rng.normal(scale=float(np.std(x)), size=n)  # b's share s_b = x - s_a
        name = "naive sharing with real-valued masks of the data's scale"
        what = "its share x - s_a with s_a ~ N(0, std(x)^2)"
    return roc_result(
        "mpc/input-inference", name, protected=target == "ss-2pc", members=(x > 0).astype(int),
        scores=score, detail=f"computing party b guesses the sign of each of a's {n} values "
        f"from {what}",
    )  # fmt: skip

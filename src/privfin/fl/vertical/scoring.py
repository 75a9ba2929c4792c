"""Joint scoring of new applicants with a trained vertical linear model (component
``vertical_lr_scoring``).

All parties are online and hold PSI-aligned rows of the applicants (the guest usually scores
one id at a time). Each host computes its partial predictor ``u_k = X_k w_k``; hosts add
pairwise masks that cancel in the sum (X25519 + HKDF + AES-CTR, as the exposure protocol), so
the guest learns ``sum_k u_k`` and hence the score ``sigmoid(X_g w_g + b + sum_k u_k)`` only.

What each party learns
----------------------
- Guest: the scores (and ``sum_k u_k``, which it can compute from a score and its own part).
  With a single host, ``sum_k u_k`` *is* that host's partial predictor: inherent in the output.
- Hosts: the number of rows scored; nothing about the guest's features, weights or the scores.
- Semi-honest; a coalition of the guest and all hosts but one learns that host's ``u_k``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from privfin.crypto.kex import KeyPair, derive_seed
from privfin.crypto.prg import expand_uint64
from privfin.errors import ConfigError, ProtocolAbort
from privfin.federation.codec import Message, wire_message
from privfin.runtime import Context

__all__ = ["FRAC_BITS", "MaskedPartial", "ScoringKey", "vertical_lr_scoring"]

#: Fixed-point fractional bits of the partial predictors in Z_2^64.
FRAC_BITS = 24
#: Partial predictors must satisfy ``|u| < 2**VALUE_BITS`` (the sum never wraps mod 2**64).
VALUE_BITS = 30
_CONTEXT = b"privfin/vfl-scoring/v1"


@wire_message("vfl.score.Key")
class ScoringKey(Message, frozen=True, kw_only=True):
    """Host -> other hosts: an ephemeral X25519 public key."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise ValueError("public key must be 32 bytes")


@wire_message("vfl.score.MaskedPartial")
class MaskedPartial(Message, frozen=True, kw_only=True):
    """Host -> guest: its partial predictors in fixed point plus pairwise masks (Z_2^64)."""

    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.dtype != np.uint64 or self.values.ndim != 1:
            raise ValueError("masked partials must be a 1-D uint64 array")


def _features(inputs: Mapping[str, Any]) -> np.ndarray:
    x = np.asarray(inputs.get("X"), dtype=np.float64)
    if x.ndim != 2 or not np.all(np.isfinite(x)):
        raise ConfigError("scoring needs a finite 2-D feature matrix 'X'")
    return x


def _partial(inputs: Mapping[str, Any]) -> np.ndarray:
    x = _features(inputs)
    coef = np.asarray(inputs.get("coef"), dtype=np.float64).reshape(-1)
    if coef.shape != (x.shape[1],):
        raise ConfigError(f"'coef' must have {x.shape[1]} entries (one per feature column)")
    u: np.ndarray = x @ coef
    return u


def _host(ctx: Context, guest: str, hosts: list[str], inputs: Mapping[str, Any]) -> None:
    u = _partial(inputs)
    if not np.all(np.abs(u) < 2.0**VALUE_BITS):
        raise ConfigError(f"a partial predictor exceeds 2**{VALUE_BITS}")
    fixed = np.rint(np.ldexp(u, FRAC_BITS)).astype(np.int64).view(np.uint64).copy()
    peers = [h for h in hosts if h != ctx.party]
    if peers:
        pair = KeyPair.generate(ctx.random)
        ctx.channel.broadcast("key", ScoringKey(key=pair.public), peers=peers)
        keys = ctx.channel.gather("key", peers=peers, expect=ScoringKey)
        for peer, msg in sorted(keys.items()):
            try:
                shared = pair.exchange(msg.key)
            except ValueError as exc:
                raise ProtocolAbort(f"bad public key from {peer!r}: {exc}", party=peer) from None
            low, high = sorted((ctx.party, peer))
            info = b"|".join(
                [_CONTEXT, ctx.job.encode(), ctx.component.encode(), low.encode(), high.encode()]
            )
            mask = expand_uint64(derive_seed(shared, info), fixed.size)
            with np.errstate(over="ignore"):
                fixed = fixed + mask if ctx.party < peer else fixed - mask
    ctx.channel.send(guest, "partial", MaskedPartial(values=fixed))


def vertical_lr_scoring(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Score aligned rows with a trained vertical LR; only the guest learns the scores.

    Roles: one ``guest`` (inputs ``X``, ``coef``, ``intercept``) and one or more ``host``
    (inputs ``X``, ``coef``). Returns ``{"score": [...], "z": [...]}`` at the guest and
    ``{"score": None}`` at hosts. See the module docstring for the leakage.
    """
    guests, hosts = ctx.parties_with("guest"), ctx.parties_with("host")
    if len(guests) != 1 or not hosts:
        raise ConfigError("scoring needs exactly one guest and at least one host")
    if ctx.has_role("host"):
        _host(ctx, guests[0], hosts, inputs)
        return {"score": None}
    u_g = _partial(inputs) + float(inputs.get("intercept", 0.0))
    total = np.zeros(u_g.size, dtype=np.uint64)
    for peer, msg in ctx.channel.gather("partial", peers=hosts, expect=MaskedPartial).items():
        if msg.values.shape != u_g.shape:
            raise ProtocolAbort(
                f"{peer!r} scored {msg.values.size} rows, not {u_g.size}", party=peer
            )
        with np.errstate(over="ignore"):
            total += msg.values
    hosts_sum = np.ldexp(total.view(np.int64).astype(np.float64), -FRAC_BITS)
    z = u_g + hosts_sum
    score = [1.0 / (1.0 + math.exp(-v)) if v > -700 else 0.0 for v in z.tolist()]
    return {"score": score, "z": z.tolist()}

"""Lender role: mask own amounts with pairwise masks that cancel in the sum."""

from __future__ import annotations

import numpy as np

from privfin.crypto.kex import KeyPair, derive_seed
from privfin.crypto.prg import expand_uint64
from privfin.errors import ProtocolAbort
from privfin.mpc.exposure.messages import MASK_CONTEXT, MaskedAmounts, PublicKey
from privfin.runtime import Context

__all__ = ["masked_amounts", "run_lender"]

_KEY_ARTIFACT = "exposure.x25519.key"


def _ephemeral_key(ctx: Context) -> KeyPair:
    """The job's ephemeral key, checkpointed before first use so a restarted node resends
    byte-identical messages (peers then drop them as duplicates)."""
    saved = ctx.artifacts.get(_KEY_ARTIFACT)
    if saved is not None:
        return KeyPair.from_private_bytes(saved)
    pair = KeyPair.generate(ctx.random)
    ctx.artifacts.put(_KEY_ARTIFACT, pair.private_bytes_for_checkpoint())
    return pair


def masked_amounts(
    ctx: Context, pair: KeyPair, amounts: np.ndarray, peer_keys: dict[str, bytes]
) -> np.ndarray:
    """``amounts + sum_{j > me} m_ij - sum_{j < me} m_ji`` in Z_2^64."""
    out = amounts.astype(np.uint64, copy=True)
    for peer, key in sorted(peer_keys.items()):
        try:
            shared = pair.exchange(key)
        except ValueError as exc:
            raise ProtocolAbort(f"bad public key from {peer!r}: {exc}", party=peer) from None
        low, high = sorted((ctx.party, peer))
        info = b"|".join(
            [MASK_CONTEXT, ctx.job.encode(), ctx.component.encode(), low.encode(), high.encode()]
        )
        mask = expand_uint64(derive_seed(shared, info), len(out))
        with np.errstate(over="ignore"):
            if ctx.party < peer:
                out += mask
            else:
                out -= mask
    return out


def run_lender(ctx: Context, amounts: np.ndarray, lenders: list[str], result: str) -> np.ndarray:
    """Run the lender role; returns the masked vector (sent to ``result`` unless that is us)."""
    pair = _ephemeral_key(ctx)
    others = [p for p in lenders if p != ctx.party]
    ctx.channel.broadcast("pk", PublicKey(key=pair.public), peers=others)
    keys = ctx.channel.gather("pk", peers=others, expect=PublicKey)
    masked = masked_amounts(ctx, pair, amounts, {p: m.key for p, m in keys.items()})
    if result != ctx.party:
        ctx.channel.send(result, "masked", MaskedAmounts(values=masked))
    ctx.metrics.add("exposure.values_masked", float(len(masked)))
    return masked

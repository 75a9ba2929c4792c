"""Result role: add the lenders' masked vectors; the masks cancel, the totals remain."""

from __future__ import annotations

import numpy as np

from privfin.errors import ProtocolAbort
from privfin.mpc.exposure.messages import MAX_AMOUNT, MaskedAmounts
from privfin.runtime import Context

__all__ = ["run_result"]


def run_result(
    ctx: Context, n_ids: int, lenders: list[str], own: np.ndarray | None = None
) -> np.ndarray:
    """Gather the masked vectors of every lender (``own`` if we are a lender too) and sum."""
    total = np.zeros(n_ids, dtype=np.uint64) if own is None else own.copy()
    others = [p for p in lenders if p != ctx.party]
    for peer, msg in ctx.channel.gather("masked", peers=others, expect=MaskedAmounts).items():
        if msg.values.shape != (n_ids,):
            raise ProtocolAbort(
                f"lender {peer!r} sent {msg.values.shape[0]} values for {n_ids} agreed ids",
                party=peer,
            )
        with np.errstate(over="ignore"):
            total += msg.values
    bound = MAX_AMOUNT * len(lenders)
    if np.any(total >= np.uint64(min(bound, 2**64 - 1))):
        raise ProtocolAbort("a total is outside the declared range: a lender deviated")
    return total

"""n-party ECDH-PSI, member role (see SPEC.md §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto.kex import KeyPair, derive_seed
from privfin.crypto.prg import expand_uint64
from privfin.crypto.ristretto import POINT_BYTES
from privfin.errors import ProtocolAbort
from privfin.psi.common import (
    blind_stream,
    collect,
    fingerprints,
    handshake,
    hash_and_blind,
    job_random,
    recv_stream,
    rows_in,
    send_stream,
    suite_domain,
    suite_key,
)
from privfin.psi.ids import PreparedIds
from privfin.psi.messages import FINGERPRINT_BYTES, Count, KeyShare, Masked, RevealedKeys
from privfin.runtime import Context

__all__ = ["run_member"]

MASK_CONTEXT = b"privfin/psi/ecdh-n/mask/v1"


def run_member(
    ctx: Context,
    prepared: PreparedIds,
    leader: str,
    members: Sequence[str],
    params: Mapping[str, Any],
    *,
    cardinality_only: bool,
    reveal_all: bool,
) -> npt.NDArray[np.int64] | int | None:
    """Run a member.

    Returns
    -------
    numpy.ndarray, int or None
        With ``reveal_all``: positions in ``prepared.keys`` of the intersection of all sets
        (or its size); otherwise ``None``.

    Security
    --------
    A member learns the set sizes and the size of its own intersection with the leader's set
    (it sees which of the leader's randomly ordered, blinded items it holds, not which of its
    own items they are); nothing about the other members' sets. Its membership vector reaches
    the leader only masked by pairwise masks shared with the other members.
    """
    protocol = "ecdh-n-cardinality" if cardinality_only else "ecdh-n"
    n_i = len(prepared)
    peers = [leader, *[m for m in members if m != ctx.party]]
    counts = handshake(ctx, protocol, {**params, "members": list(members)}, n_i, peers)
    n_l = counts[leader]
    others = [m for m in members if m != ctx.party]

    # Pairwise mask seeds with the other members; the first member also deals the seed of a
    # common permutation (cardinality mode) so the leader cannot tell which item matched.
    rand = job_random(ctx, f"psi.{protocol}.member.seed.key")
    pair = KeyPair.generate(rand)
    first = sorted(members)[0]
    seed = rand.bytes(32) if (cardinality_only and ctx.party == first) else b""
    ctx.channel.broadcast("kex", KeyShare(key=pair.public, seed=seed), peers=others)
    shares = ctx.channel.gather("kex", peers=others, expect=KeyShare)
    if cardinality_only and ctx.party != first:
        seed = shares[first].seed
        if len(seed) != 32:
            raise ProtocolAbort("the first member sent no permutation seed", party=first)

    curve = str(params.get("curve", "ristretto255"))

    key = suite_key(ctx, f"psi.{protocol}.member.key", curve)
    dst = suite_domain(ctx, "ecdh-n", curve)
    send_stream(ctx, leader, "b", hash_and_blind(ctx, key, prepared, dst, "psi.blind"))
    incoming = recv_stream(ctx, leader, "a", n_l, POINT_BYTES)
    fa = collect(
        (fingerprints(c) for c in blind_stream(ctx, key, incoming, leader, "psi.reblind", n_l)),
        n_l,
        FINGERPRINT_BYTES,
    )
    fba = collect(recv_stream(ctx, leader, "ba", n_i, FINGERPRINT_BYTES), n_i, FINGERPRINT_BYTES)
    held = rows_in(fa, fba)
    noise = np.frombuffer(rand.bytes(8 * n_l), dtype=np.uint64)
    values = np.where(held, np.uint64(0), noise).astype(np.uint64)
    for peer, share in sorted(shares.items()):
        try:
            shared = pair.exchange(share.key)
        except ValueError as exc:
            raise ProtocolAbort(f"bad key share from {peer!r}: {exc}", party=peer) from None
        low, high = sorted((ctx.party, peer))
        info = b"|".join([MASK_CONTEXT, ctx.job.encode(), low.encode(), high.encode()])
        mask = expand_uint64(derive_seed(shared, info), n_l)
        with np.errstate(over="ignore"):
            if ctx.party < peer:
                values += mask
            else:
                values -= mask
    if cardinality_only:
        perm = np.argsort(expand_uint64(seed, n_l, stream=1), kind="stable")
        values = values[perm]
    ctx.channel.send(leader, "masked", Masked(values=values))
    if not reveal_all:
        return None
    if cardinality_only:
        count: Count = ctx.channel.recv(leader, "result", expect=Count)
        return count.value
    revealed: RevealedKeys = ctx.channel.recv(leader, "result", expect=RevealedKeys)
    out: list[int] = []
    for k in revealed.keys:
        pos = prepared.index_of(k)
        if pos is None:
            raise ProtocolAbort("leader revealed an id that is not in our set", party=leader)
        out.append(pos)
    return np.asarray(out, dtype=np.int64)

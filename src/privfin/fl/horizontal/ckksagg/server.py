"""The server role of CKKS aggregation: add the clients' ciphertexts, get the sum decrypted by
the clients, check that the decryptions agree (see SPEC.md)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from privfin.errors import DecodeError, PeerTimeout, ProtocolAbort
from privfin.fl.horizontal.ckksagg.client import key_client
from privfin.fl.horizontal.ckksagg.common import (
    CKKS,
    CKKSAggParams,
    CKKSThresholdError,
    ckks_error_bound,
    tag,
)
from privfin.fl.horizontal.ckksagg.messages import CKKSInput, CKKSPlain, CKKSPublic, CKKSSum
from privfin.fl.horizontal.secagg.messages import Excluded
from privfin.fl.horizontal.secagg.server import SecAggResult
from privfin.he.ckks import CKKSContext, CKKSVector
from privfin.runtime import Context

__all__ = ["CKKSAggServer", "server_setup"]


def server_setup(
    ctx: Context, clients: Sequence[str], *, prefix: str, timeout: float
) -> CKKSContext:
    """The public context from the key client; a context carrying a secret key is refused (the
    server must never hold it)."""
    kc = key_client(clients)
    msg = ctx.channel.recv(kc, f"{prefix}.pub", expect=CKKSPublic, timeout=timeout)
    try:
        pub = CKKSContext.from_bytes(msg.context, allow_secret_key=False)
    except DecodeError as exc:
        raise ProtocolAbort(f"the CKKS public context is refused: {exc}", party=kc) from None
    if pub.poly_modulus_degree != CKKS.poly_modulus_degree:
        raise ProtocolAbort("the CKKS context has other parameters than agreed", party=kc)
    return pub


class CKKSAggServer:
    """The server's side of one round. It holds only the public context: it adds ciphertexts it
    cannot decrypt and learns the sum the clients release (and who sent inputs in time).

    Raises
    ------
    CKKSThresholdError
        Fewer than ``min_clients`` inputs in time, or no decryption in time.
    ProtocolAbort
        A malformed ciphertext (naming the client), or released sums that disagree (a
        decrypting client lied; the minority is named).
    """

    def __init__(
        self,
        ctx: Context,
        clients: Sequence[str],
        params: CKKSAggParams,
        round_id: int,
        public: CKKSContext,
        *,
        prefix: str = "ck",
    ) -> None:
        self.ctx, self.clients, self.params = ctx, sorted(clients), params
        self.round, self.public, self.prefix = round_id, public, prefix
        self.dropped: dict[str, str] = {}

    def _collect(self, peers: Sequence[str], step: str, expect: type[Any]) -> dict[str, Any]:
        deadline = time.monotonic() + self.params.stage_timeout
        got: dict[str, Any] = {}
        for p in peers:
            try:
                msg = self.ctx.channel.recv(
                    p,
                    tag(self.prefix, self.round, step),
                    expect=expect,
                    timeout=max(0.0, deadline - time.monotonic()),
                )
            except PeerTimeout:
                self.dropped[p] = step
                continue
            if msg.round != self.round:
                raise ProtocolAbort(f"{p!r} sent a message of round {msg.round}", party=p)
            got[p] = msg
        return got

    def _exclude(self, peers: Sequence[str], reason: str) -> None:
        msg = Excluded(round=self.round, reason=reason)
        for p in peers:
            self.ctx.channel.send(p, tag(self.prefix, self.round, "sum"), msg)

    def run(self) -> SecAggResult:
        p = self.params
        inputs = self._collect(self.clients, "in", CKKSInput)
        included = sorted(inputs)
        self._exclude([c for c in self.clients if c not in inputs], "late input")
        if len(included) < p.min_clients:
            reason = f"only {len(included)} inputs in time, below min_clients={p.min_clients}"
            self._exclude(included, reason)
            raise CKKSThresholdError(f"CKKS aggregation round {self.round} failed: {reason}")
        total: list[CKKSVector] = []
        for c in included:
            if len(inputs[c].cts) != p.chunks:
                raise ProtocolAbort(f"{c!r} sent {len(inputs[c].cts)} ciphertexts", party=c)
            for i, ct in enumerate(inputs[c].cts):
                try:
                    vec = CKKSVector.from_bytes(self.public, ct)
                except DecodeError as exc:
                    raise ProtocolAbort(
                        f"{c!r} sent a malformed ciphertext: {exc}", party=c
                    ) from None
                if len(vec) != min(CKKS.slots, p.dim - i * CKKS.slots):
                    raise ProtocolAbort(f"{c!r} sent a ciphertext of the wrong length", party=c)
                if len(total) <= i:
                    total.append(vec)
                else:
                    total[i] = total[i] + vec
        msg = CKKSSum(round=self.round, included=included, cts=[v.to_bytes() for v in total])
        for c in included:
            self.ctx.channel.send(c, tag(self.prefix, self.round, "sum"), msg)
        answers = self._collect(included, "out", CKKSPlain)
        if not answers:
            raise CKKSThresholdError(f"CKKS aggregation round {self.round}: no decryption in time")
        for c, a in answers.items():
            if a.values.shape != (p.dim,):
                raise ProtocolAbort(f"{c!r} released a sum of the wrong length", party=c)
        groups: dict[bytes, list[str]] = {}
        for c, a in sorted(answers.items()):
            groups.setdefault(a.values.tobytes(), []).append(c)
        if len(groups) > 1:
            ranked = sorted(groups.values(), key=len)
            raise ProtocolAbort(
                f"the decrypted sums disagree (groups {ranked}): a decrypting client lied",
                party=ranked[0][0] if len(ranked[0]) < len(ranked[-1]) else None,
            )
        out = np.array(next(iter(answers.values())).values, dtype=np.float64)
        self.ctx.metrics.add("ckksagg.rounds")
        return SecAggResult(
            total=out,
            survivors=included,
            dropped=dict(self.dropped),
            error_bound=ckks_error_bound(len(included), p.precision_bits, out),
        )

"""The server role of secure aggregation (see SPEC.md)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from privfin.crypto import shamir
from privfin.crypto.kex import KeyPair
from privfin.errors import PeerTimeout, ProtocolAbort
from privfin.fl.horizontal.secagg.common import (
    SecAggParams,
    SecAggThresholdError,
    mask_seed,
    pairwise_mask,
    self_mask,
    tag,
)
from privfin.fl.horizontal.secagg.messages import (
    AdvertiseKeys,
    EncryptedShares,
    Excluded,
    ForwardedShares,
    KeyList,
    MaskedInput,
    UnmaskRequest,
    UnmaskShares,
)
from privfin.runtime import Context

__all__ = ["SecAggResult", "SecAggServer"]


@dataclass
class SecAggResult:
    """What the server learns: the sum of the survivors' vectors and who dropped when.

    Attributes
    ----------
    total:
        Sum of the survivors' vectors, within ``error_bound`` per coordinate.
    survivors:
        Clients whose vectors are in the sum (sorted).
    dropped:
        Client -> the step it missed (``"advertise"``, ``"share"``, ``"masked"``,
        ``"unmask"``; a client that missed ``"unmask"`` is still in the sum).
    error_bound:
        Quantisation (and float conversion) error bound of ``total``.
    """

    total: np.ndarray
    survivors: list[str]
    dropped: dict[str, str] = field(default_factory=dict)
    error_bound: float = 0.0


class SecAggServer:
    """The server's side of one round: relays keys and shares, removes the masks, learns the
    sum of the survivors' vectors and nothing else about any of them (semi-honest server;
    see SPEC.md for the threat model).

    Raises
    ------
    SecAggThresholdError
        Fewer than ``threshold`` clients left at a step (the clients are told and the round
        reveals nothing).
    ProtocolAbort
        A client deviated: wrong-length vector, shares for the wrong parties, an unmask answer
        that is not the requested set, shares that do not reconstruct its published key
        (``party`` names it where known).
    """

    def __init__(
        self,
        ctx: Context,
        clients: Sequence[str],
        params: SecAggParams,
        round_id: int,
        *,
        prefix: str = "sa",
    ) -> None:
        params.check_clients(len(clients))
        self.ctx = ctx
        self.clients = sorted(clients)
        self.params = params
        self.round = round_id
        self.prefix = prefix
        self.scope = f"{ctx.job}/{ctx.component}/{prefix}"
        self.dropped: dict[str, str] = {}

    def _collect(
        self, peers: Sequence[str], step: str, stage: str, expect: type[Any]
    ) -> dict[str, Any]:
        """Receive ``step`` from every peer until the stage deadline; late peers are dropped."""
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
                self.dropped[p] = stage
                continue
            if msg.round != self.round:
                raise ProtocolAbort(f"{p!r} sent a message of round {msg.round}", party=p)
            got[p] = msg
        self.ctx.metrics.add(f"secagg.dropped.{stage}", len(peers) - len(got))
        return got

    def _exclude(self, peers: Sequence[str], step: str, reason: str) -> None:
        msg = Excluded(round=self.round, reason=reason)
        for p in peers:
            self.ctx.channel.send(p, tag(self.prefix, self.round, step), msg)

    def _need(self, alive: Sequence[str], stage: str, next_step: str | None) -> None:
        t = self.params.threshold
        if len(alive) >= t:
            return
        reason = f"only {len(alive)} clients left after {stage!r}, below the threshold {t}"
        if next_step is not None:
            self._exclude(alive, next_step, reason)
        raise SecAggThresholdError(f"secure aggregation round {self.round} failed: {reason}")

    def run(self) -> SecAggResult:
        p = self.params
        dim, t = p.dim, p.threshold
        # Step 0: public keys.
        adv = self._collect(self.clients, "adv", "advertise", AdvertiseKeys)
        u1 = sorted(adv)
        # Late clients are told first, so none is left waiting when the round fails.
        self._exclude([c for c in self.clients if c not in adv], "keys", "late key advertisement")
        self._need(u1, "advertise", "keys")
        keys = KeyList(
            round=self.round,
            parties=u1,
            c_pks=[adv[u].c_pk for u in u1],
            s_pks=[adv[u].s_pk for u in u1],
        )
        for u in u1:
            self.ctx.channel.send(u, tag(self.prefix, self.round, "keys"), keys)
        # Step 1: encrypted shares, relayed.
        sh = self._collect(u1, "shares", "share", EncryptedShares)
        for u, m in sh.items():
            if m.to != [v for v in u1 if v != u]:
                raise ProtocolAbort(f"{u!r} sent shares for the wrong set of clients", party=u)
        u2 = sorted(sh)
        self._exclude([u for u in u1 if u not in sh], "fwd", "late shares")
        self._need(u2, "share", "fwd")
        for v in u2:
            senders = [u for u in u2 if u != v]
            cts = [sh[u].ciphertexts[sh[u].to.index(v)] for u in senders]
            fwd = ForwardedShares(round=self.round, senders=senders, ciphertexts=cts)
            self.ctx.channel.send(v, tag(self.prefix, self.round, "fwd"), fwd)
        # Step 2: masked inputs.
        masked = self._collect(u2, "masked", "masked", MaskedInput)
        for u, m in masked.items():
            if m.y.shape != (dim,):
                raise ProtocolAbort(
                    f"{u!r} sent a masked vector of length {m.y.size}, not {dim}", party=u
                )
        u3 = sorted(masked)
        gone = [v for v in u2 if v not in masked]
        self._exclude(gone, "unmask", "late masked input")
        self._need(u3, "masked", "unmask")
        req = UnmaskRequest(round=self.round, survivors=u3, dropped=gone)
        for u in u3:
            self.ctx.channel.send(u, tag(self.prefix, self.round, "unmask"), req)
        # Step 3: shares to unmask.
        answers = self._collect(u3, "shares2", "unmask", UnmaskShares)
        for u, m in answers.items():
            if sorted(m.b_shares) != u3 or sorted(m.s_shares) != gone:
                raise ProtocolAbort(f"{u!r} answered the unmask request wrongly", party=u)
        u4 = sorted(answers)
        self._need(u4, "unmask", None)
        index = {u: i + 1 for i, u in enumerate(u1)}

        def recover(owner: str, which: str) -> bytes:
            shares = [
                shamir.Share.from_bytes(
                    index[a],
                    answers[a].b_shares[owner] if which == "b" else answers[a].s_shares[owner],
                )
                for a in u4
            ]
            try:
                secret = shamir.recombine(shares[:t], t)
                if len(shares) > t and shamir.recombine(shares[-t:], t) != secret:
                    raise ValueError("inconsistent shares")
            except ValueError as exc:
                raise ProtocolAbort(
                    f"the shares of {owner!r}'s {'self-mask seed' if which == 'b' else 'mask key'}"
                    f" do not agree ({exc}): a client sent a wrong share"
                ) from None
            if len(secret) != 32:
                raise ProtocolAbort(f"a recovered secret of {owner!r} has the wrong length")
            return secret

        total = np.zeros(dim, dtype=np.uint64)
        for u in u3:
            total += masked[u].y
            total -= self_mask(recover(u, "b"), dim)
        s_pk = dict(zip(u1, keys.s_pks, strict=True))
        for v in gone:
            kp = KeyPair.from_private_bytes(recover(v, "s"))
            if kp.public != s_pk[v]:
                raise ProtocolAbort(
                    f"the recovered mask key of {v!r} does not match its public key"
                )
            for u in u3:
                seed = mask_seed(kp.exchange(s_pk[u]), self.scope, self.round, u, v)
                total -= pairwise_mask(seed, dim, u, v)
        out = p.quantizer.decode_sum(total)
        self.ctx.metrics.add("secagg.rounds")
        return SecAggResult(
            total=out,
            survivors=u3,
            dropped=dict(self.dropped),
            error_bound=p.quantizer.error_bound(len(u3), out),
        )

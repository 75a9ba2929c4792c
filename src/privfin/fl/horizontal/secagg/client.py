"""The client role of secure aggregation (see SPEC.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.crypto import shamir
from privfin.crypto.kex import KeyPair
from privfin.errors import InputError, ProtocolAbort
from privfin.fl.horizontal.secagg.common import (
    SecAggParams,
    decrypt_shares,
    encrypt_shares,
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

__all__ = ["SecAggClient"]


class SecAggClient:
    """One client's side of one aggregation round.

    :meth:`run` does every step; the steps are public so a test can stop a client after any
    of them (a dropout) and a benchmark can time them. Each step returns ``False`` once the
    server has excluded this client from the round (it was late).

    Security: the server receives only ``x + PRG(b) + sum of pairwise masks`` (uniform in
    Z_2^64 to anyone missing one of the masks) and, at the end, shares of ``b`` (if this client
    survived) or of the mask key (if it dropped), never both: the client refuses a request for
    both (:class:`ProtocolAbort`).
    """

    def __init__(
        self,
        ctx: Context,
        server: str,
        params: SecAggParams,
        round_id: int,
        x: np.ndarray,
        *,
        prefix: str = "sa",
    ) -> None:
        arr = np.asarray(x, dtype=np.float64)
        if arr.shape != (params.dim,):
            raise InputError(f"the vector to aggregate has shape {arr.shape}, not ({params.dim},)")
        self.ctx = ctx
        self.server = server
        self.params = params
        self.round = round_id
        self.prefix = prefix
        self.scope = f"{ctx.job}/{ctx.component}/{prefix}"
        self._q = params.quantizer.encode(arr)
        self._c = KeyPair.generate(ctx.random)
        self._s = KeyPair.generate(ctx.random)
        self._b = ctx.random.bytes(32)
        self._u1: list[str] = []
        self._s_pks: dict[str, bytes] = {}
        self._c_pks: dict[str, bytes] = {}
        self._u2: list[str] = []
        #: Shares this client holds, per owner: (share of s_sk, share of b).
        self._held: dict[str, tuple[bytes, bytes]] = {}
        self._answered = False

    # ------------------------------------------------------------------ helpers
    def _recv(self, step: str, expect: type[Any]) -> Any:
        msg = self.ctx.channel.recv(
            self.server, tag(self.prefix, self.round, step), timeout=self.params.client_timeout
        )
        if isinstance(msg, Excluded):
            self.ctx.log.info("excluded from round %d: %s", self.round, msg.reason)
            return None
        if not isinstance(msg, expect) or getattr(msg, "round", None) != self.round:
            raise ProtocolAbort(
                f"server sent {type(msg).__name__} for step {step!r} of round {self.round}",
                party=self.server,
            )
        return msg

    def _abort(self, why: str) -> ProtocolAbort:
        return ProtocolAbort(f"secure aggregation round {self.round}: {why}", party=self.server)

    # ------------------------------------------------------------------ steps
    def advertise(self) -> bool:
        """Step 0: send the two public keys."""
        msg = AdvertiseKeys(round=self.round, c_pk=self._c.public, s_pk=self._s.public)
        self.ctx.channel.send(self.server, tag(self.prefix, self.round, "adv"), msg)
        return True

    def share(self) -> bool:
        """Step 1: check the key list, share ``s_sk`` and ``b`` among U1, encrypted."""
        keys: KeyList | None = self._recv("keys", KeyList)
        if keys is None:
            return False
        me = self.ctx.party
        t = self.params.threshold
        if me not in keys.parties:
            raise self._abort("the key list leaves this client out")
        i = keys.parties.index(me)
        if keys.c_pks[i] != self._c.public or keys.s_pks[i] != self._s.public:
            raise self._abort("the key list has the wrong keys for this client")
        n = len(keys.parties)
        if not t <= n < 2 * t:
            raise self._abort(
                f"{n} clients in the key list: need at least the threshold {t} and fewer than "
                f"2t={2 * t} (else the server could learn both secrets of a client)"
            )
        if len(set(keys.s_pks)) != n or len(set(keys.c_pks)) != n:
            raise self._abort("the key list repeats a public key")
        self._u1 = list(keys.parties)
        self._s_pks = dict(zip(keys.parties, keys.s_pks, strict=True))
        self._c_pks = dict(zip(keys.parties, keys.c_pks, strict=True))
        s_sh = shamir.split(self._s.private_bytes_for_checkpoint(), n, t, self.ctx.random)
        b_sh = shamir.split(self._b, n, t, self.ctx.random)
        to: list[str] = []
        cts: list[bytes] = []
        for j, (v, c_pk) in enumerate(zip(keys.parties, keys.c_pks, strict=True)):
            payload = s_sh[j].y_bytes() + b_sh[j].y_bytes()
            if v == me:
                self._held[me] = (s_sh[j].y_bytes(), b_sh[j].y_bytes())
                continue
            try:
                shared = self._c.exchange(c_pk)
            except ValueError as exc:
                raise self._abort(f"bad public key of {v!r}: {exc}") from None
            nonce = self.ctx.random.bytes(12)
            to.append(v)
            cts.append(encrypt_shares(shared, self.scope, self.round, me, v, payload, nonce))
        msg = EncryptedShares(round=self.round, to=to, ciphertexts=cts)
        self.ctx.channel.send(self.server, tag(self.prefix, self.round, "shares"), msg)
        return True

    def send_masked(self) -> bool:
        """Step 2: take the shares addressed to this client, send the masked input."""
        fwd: ForwardedShares | None = self._recv("fwd", ForwardedShares)
        if fwd is None:
            return False
        me = self.ctx.party
        others = set(self._u1) - {me}
        if not set(fwd.senders) <= others:
            raise self._abort("forwarded shares from parties outside the key list")
        for v, ct in zip(fwd.senders, fwd.ciphertexts, strict=True):
            shared = self._c.exchange(self._c_pks[v])
            plain = decrypt_shares(shared, self.scope, self.round, v, me, ct)
            self._held[v] = (plain[: shamir.SHARE_BYTES], plain[shamir.SHARE_BYTES :])
        self._u2 = sorted([*fwd.senders, me])
        if len(self._u2) < self.params.threshold:
            raise self._abort(f"only {len(self._u2)} clients shared keys (threshold reached?)")
        dim = self.params.dim
        y = self._q + self_mask(self._b, dim)
        for v in self._u2:
            if v == me:
                continue
            seed = mask_seed(self._s.exchange(self._s_pks[v]), self.scope, self.round, me, v)
            y += pairwise_mask(seed, dim, me, v)
        self.ctx.channel.send(
            self.server, tag(self.prefix, self.round, "masked"), MaskedInput(round=self.round, y=y)
        )
        return True

    def unmask(self) -> bool:
        """Step 3: reveal b-shares of survivors and s-shares of dropped clients (never both)."""
        req: UnmaskRequest | None = self._recv("unmask", UnmaskRequest)
        if req is None:
            return False
        if self._answered:
            raise self._abort("a second unmask request in one round")
        survivors, dropped = set(req.survivors), set(req.dropped)
        both = sorted(survivors & dropped)
        if both:
            raise self._abort(f"the server asked for both secrets of {both}")
        if survivors | dropped != set(self._u2):
            raise self._abort("the unmask request does not partition the clients that shared")
        if self.ctx.party not in survivors:
            raise self._abort("the unmask request lists this client as dropped")
        if len(survivors) < self.params.threshold:
            raise self._abort(f"only {len(survivors)} survivors, below the threshold")
        self._answered = True
        msg = UnmaskShares(
            round=self.round,
            b_shares={u: self._held[u][1] for u in req.survivors},
            s_shares={v: self._held[v][0] for v in req.dropped},
        )
        self.ctx.channel.send(self.server, tag(self.prefix, self.round, "shares2"), msg)
        return True

    def run(self) -> bool:
        """All steps; ``True`` if this client's input went into the sum's last step."""
        return self.advertise() and self.share() and self.send_masked() and self.unmask()

"""The client role of CKKS aggregation: key set-up (the key client generates, the others
receive), encrypt the input, decrypt and release the sum (see SPEC.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from privfin.errors import DecodeError, InputError, ProtocolAbort
from privfin.fl.horizontal.ckksagg.common import (
    CKKS,
    MAX_VALUE,
    CKKSAggParams,
    release,
    tag,
)
from privfin.fl.horizontal.ckksagg.messages import (
    CKKSInput,
    CKKSKey,
    CKKSPlain,
    CKKSPublic,
    CKKSSum,
)
from privfin.fl.horizontal.secagg.messages import Excluded
from privfin.he.ckks import CKKSContext, CKKSVector
from privfin.runtime import Context

__all__ = ["CKKSAggClient", "CKKSClientKey", "client_setup", "key_client"]


@dataclass
class CKKSClientKey:
    """The secret CKKS context every client holds, and the shared flooding seed."""

    context: CKKSContext
    flood_seed: bytes


def key_client(clients: Sequence[str]) -> str:
    """The client that generates the key: the first by name."""
    return sorted(clients)[0]


def client_setup(
    ctx: Context, server: str, clients: Sequence[str], *, prefix: str, timeout: float
) -> CKKSClientKey:
    """Once per job, before any round. The key client generates the CKKS key pair and a 32-byte
    flooding seed, sends both to every other client **directly** (over the job's authenticated
    channel between the two, never through the server) and the public context to the server."""
    kc = key_client(clients)
    if ctx.party == kc:
        c = CKKSContext.generate(CKKS, galois_keys=False)
        seed = ctx.random.bytes(32)
        secret = CKKSKey(context=c.serialize_secret(), flood_seed=seed)
        for other in sorted(clients):
            if other != kc:
                ctx.channel.send(other, f"{prefix}.key", secret)
        ctx.channel.send(
            server, f"{prefix}.pub", CKKSPublic(context=c.serialize_public(galois_keys=False))
        )
        return CKKSClientKey(c, seed)
    msg = ctx.channel.recv(kc, f"{prefix}.key", expect=CKKSKey, timeout=timeout)
    try:
        c = CKKSContext.from_bytes(msg.context, allow_secret_key=True)
    except DecodeError as exc:
        raise ProtocolAbort(f"the CKKS key is refused: {exc}", party=kc) from None
    if not c.is_private or c.poly_modulus_degree != CKKS.poly_modulus_degree:
        raise ProtocolAbort("the CKKS key is not a secret key of the agreed parameters", party=kc)
    return CKKSClientKey(c, msg.flood_seed)


class CKKSAggClient:
    """One client's side of one round: :meth:`send_input` then :meth:`decrypt` (each returns
    ``False`` once the server has excluded this client). What leaves the client: its vector
    encrypted under the clients' key (the server cannot decrypt it), and the released sum."""

    def __init__(
        self,
        ctx: Context,
        server: str,
        params: CKKSAggParams,
        round_id: int,
        x: np.ndarray,
        key: CKKSClientKey,
        *,
        prefix: str = "ck",
    ) -> None:
        arr = np.asarray(x, dtype=np.float64)
        if arr.shape != (params.dim,):
            raise InputError(f"the vector to aggregate has shape {arr.shape}, not ({params.dim},)")
        if not np.all(np.isfinite(arr)) or (arr.size and float(np.abs(arr).max()) > MAX_VALUE):
            raise InputError(f"the vector must be finite and within ±{MAX_VALUE:g}")
        self.ctx, self.server, self.params = ctx, server, params
        self.round, self.prefix, self.key = round_id, prefix, key
        self.x = arr

    def _abort(self, why: str) -> ProtocolAbort:
        return ProtocolAbort(f"CKKS aggregation round {self.round}: {why}", party=self.server)

    def send_input(self) -> bool:
        slots = CKKS.slots
        cts = [
            self.key.context.encrypt(self.x[i : i + slots]).to_bytes()
            for i in range(0, self.params.dim, slots)
        ]
        msg = CKKSInput(round=self.round, cts=cts)
        self.ctx.channel.send(self.server, tag(self.prefix, self.round, "in"), msg)
        return True

    def decrypt(self) -> bool:
        p = self.params
        msg: Any = self.ctx.channel.recv(
            self.server, tag(self.prefix, self.round, "sum"), timeout=p.client_timeout
        )
        if isinstance(msg, Excluded) and msg.round == self.round:
            self.ctx.log.info("excluded from round %d: %s", self.round, msg.reason)
            return False
        if not isinstance(msg, CKKSSum) or msg.round != self.round:
            raise self._abort(f"the server sent {type(msg).__name__}, not the round's sum")
        if self.ctx.party not in msg.included:
            raise self._abort("the sum leaves out this client's input")
        if len(msg.included) < p.min_clients:
            raise self._abort(
                f"a sum of {len(msg.included)} inputs, below min_clients={p.min_clients}: "
                "refusing to decrypt"
            )
        if len(msg.cts) != p.chunks:
            raise self._abort("the sum has the wrong number of ciphertexts")
        parts = []
        for i, ct in enumerate(msg.cts):
            try:
                vec = CKKSVector.from_bytes(self.key.context, ct)
            except DecodeError as exc:
                raise self._abort(f"a ciphertext of the sum is refused: {exc}") from None
            want = min(CKKS.slots, p.dim - i * CKKS.slots)
            if len(vec) != want:
                raise self._abort("a ciphertext of the sum has the wrong length")
            parts.append(self.key.context.decrypt(vec))
        values = release(np.concatenate(parts), self.key.flood_seed, self.round, p.precision_bits)
        self.ctx.channel.send(
            self.server,
            tag(self.prefix, self.round, "out"),
            CKKSPlain(round=self.round, values=values),
        )
        return True

    def run(self) -> bool:
        """Both steps; ``True`` if this client's input is in the sum it decrypted."""
        return self.send_input() and self.decrypt()

"""What an MPC job will cost before it runs: rounds, bytes and expected time.

The estimate runs the component's own program (:func:`privfin.mpc.lr.train_logistic`, the
statistics of :mod:`privfin.mpc.stats`) on *shapes only*: a :class:`TracingSession` stands in
for the session as if at a party that holds no share, so no arithmetic is done and nothing
is sent, and its engine (:class:`CostEngine`) adds the cost of every interactive step to a
:class:`Tally` by the per-operation model below. The program's structure (which steps, of
which shapes, in which order) is therefore the real one, and the per-step formulas mirror
the protocol code:

* **online** (every provider): an opening of ``L`` words is one round and ``8 L`` bytes to
  every other computing party; a replicated (``rss3``) product sends the operands'
  components to one party; matmul opens ``m·k + k·n`` words; a truncation opens ``n``
  words (``rss3``: one round, 5 words per element); a comparison opens ``c = x + r`` and
  then one round per Kogge-Stone level (6 levels for 64 bits, 5 for a 32-bit window with
  two lanes per word); the bit conversion opens one packed bit per element (and
  ``y - mask`` when fused with a product);
* **offline, ``ot``** (IKNP): per batch of OTs the receiver sends ``u`` (16 bytes per OT,
  padded to 64 OTs) and a correlated-OT sender its corrections trimmed to the bytes used
  (:mod:`privfin.mpc.providers.ot` lists the OTs of every item: 128 per Beaver triple,
  ``64·k·n`` of ``m`` words per matrix triple, 63 one-way per edaBit, ...);
* **offline, ``dealer``**: nothing at the computing parties when the dealer is one of them
  (it expands seeds); ``rss3`` has no offline phase.

Bytes add each message's framing (:func:`framing`: the codec's envelope measured on a
message of the same kind and size class), so they are exact up to a few bytes per message
(tests: rounds exact, bytes within 0.2 % of real runs of every provider). Time comes from a
:class:`Calibration` measured on this machine by :func:`calibrate` (IKNP extension per OT,
correlation-robust hashing per row and per word, packing trimmed corrections, online ring
work per word, local matmul per multiply-add, a round's fixed cost, the base OTs) and the
network assumed (:class:`Network`: latency per round, bandwidth, parties on one machine or
not): an order of magnitude (tests: within 6× of a run on a shared 2-core machine).

Every party of a job can compute the estimate alone: it needs the public parameters and
shapes only, no data and no message.

Not modelled: the ``paillier`` provider (its cost is dominated by exponentiations, see
:mod:`privfin.mpc.providers.paillier`) and the traffic of a dealer that is not a computing
party (the estimate counts the computing parties only).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from math import ceil, prod
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto import ot as otm
from privfin.errors import ConfigError
from privfin.federation.transport import CancelToken
from privfin.mpc.ot import DEFAULT_BATCH, _batch_sizes, _run_bytes
from privfin.mpc.protocol import Engine, MaskedDesign
from privfin.mpc.providers.base import Shape
from privfin.mpc.providers.ot import MUL_CHUNK
from privfin.mpc.ring import U64
from privfin.mpc.roles import MPCRoles
from privfin.mpc.session import Session, _bound_bits, reuse_ots_wanted
from privfin.mpc.tensor import PlainTensor, SharedTensor
from privfin.runtime.context import Progress

__all__ = [
    "ASSUMED_BOUND",
    "COSTED_PROVIDERS",
    "MESSAGE_OVERHEAD",
    "Calibration",
    "CostEngine",
    "Estimate",
    "Network",
    "Tally",
    "TracingSession",
    "calibrate",
    "estimate_mpc_stats",
    "estimate_ss_lr",
    "framing",
    "production_provider",
]

#: The feature bound assumed for reused OT products when the job states none (each owner
#: then announces the bit count of its own data; the estimate is exact with a stated bound).
ASSUMED_BOUND = 32.0
#: Providers the model covers.
COSTED_PROVIDERS = ("ot", "rss3", "dealer")
#: Framing of a message of a kind :func:`framing` does not know (the codec envelope of a
#: typical protocol message is 39-52 bytes).
MESSAGE_OVERHEAD = 46
_KAPPA_BYTES = otm.KAPPA // 8
#: bits of the trimmed Gilboa correction of bit k: only 64 - k bits of it are used (packed
#: to the bit: 2080 bits, 260 bytes per 64 OTs of one word)
_GILBOA = [64 - k for k in range(64)]
_GILBOA_SUM = sum(_GILBOA) // 8


def production_provider(compute: int) -> str:
    """The provider ``triples: auto`` picks in production mode for ``compute`` computing
    parties (see :func:`privfin.mpc.session.make_provider`)."""
    return {2: "ot", 3: "rss3"}.get(compute, "dealer")


# ------------------------------------------------------------------------------ framing


@functools.lru_cache(maxsize=4096)
def _frame(kind: str, size: int, extra: int) -> int:
    from privfin.federation import codec
    from privfin.mpc import messages as m

    msg: object
    if kind == "open":
        msg = m.Opening(values=np.zeros(size // 8, dtype=np.uint64))
    elif kind == "reveal":
        msg = m.RevealShare(label="x" * extra, values=np.zeros(size // 8, dtype=np.uint64))
    elif kind == "u":
        msg = m.OtExtend(counter=0, cols=size // otm.KAPPA, u=bytes(size))
    elif kind == "corr":
        msg = m.OtCorrections(counter=0, data=bytes(size))
    elif kind == "seed":
        msg = m.Seed(seed=bytes(size))
    elif kind == "input":
        msg = m.InputShare(shape=[1] * extra, seed=bytes(size))
    elif kind == "header":
        msg = m.InputHeader(shape=[1] * extra)
    elif kind == "header_bits":
        msg = m.InputHeader(shape=[1] * extra, bits=32)
    elif kind == "base_setup":
        msg = m.OtBaseSetup(point=bytes(32), hash_key=bytes(16))
    elif kind == "base_reply":
        msg = m.OtBaseReply(points=bytes(size))
    else:
        return MESSAGE_OVERHEAD
    return len(codec.encode(msg)) - size


def framing(kind: str, nbytes: int, extra: int = 0) -> int:
    """Bytes the codec adds to a message of ``kind`` carrying ``nbytes`` (measured on a
    message of the same size class: the envelope grows with the msgpack length headers)."""
    cap = 1 << 17  # beyond, every length header has its largest (fixed) size
    return _frame(kind, min(nbytes, cap), extra)


# ------------------------------------------------------------------------------ the tally


@dataclass
class Tally:
    """Costs accumulated per computing party (index in the sorted computing parties)."""

    parties: int
    rounds: int = 0
    #: bytes each computing party sends (online + offline)
    sent: list[int] = field(default_factory=list)
    #: of which for correlated randomness (OT extension)
    offline: list[int] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    #: whether the parties run base OTs first (the ``ot`` provider's setup)
    setup_ot: bool = False
    #: OTs each party takes part in (as receiver or sender) and correlation-robust-hash words
    ots: list[int] = field(default_factory=list)
    hash_rows: list[int] = field(default_factory=list)
    hash_words: list[int] = field(default_factory=list)
    #: trimmed correction bytes each party packs (sent) or unpacks (received)
    corr_bytes: list[int] = field(default_factory=list)
    #: words each party handles online (opened, reshared) and local multiply-adds of matmuls
    words: list[int] = field(default_factory=list)
    macs: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in (
            "sent",
            "offline",
            "messages",
            "ots",
            "hash_rows",
            "hash_words",
            "corr_bytes",
            "words",
            "macs",
        ):
            if not getattr(self, name):
                setattr(self, name, [0] * self.parties)

    def send(
        self,
        party: int,
        nbytes: int,
        *,
        offline: bool = False,
        messages: int = 1,
        kind: str = "",
        extra: int = 0,
    ) -> None:
        """``messages`` messages of ``kind`` (see :func:`framing`) carrying ``nbytes`` in all."""
        each = -(-nbytes // messages) if messages else 0
        total = nbytes + framing(kind, each, extra) * messages
        self.sent[party] += total
        self.messages[party] += messages
        if offline:
            self.offline[party] += total


# ------------------------------------------------------------------------------ the engine


class CostEngine(Engine):
    """An :class:`~privfin.mpc.protocol.Engine` at a party without shares that records what
    every step costs the computing parties instead of running it (every method returns
    ``None``, as at a party that holds no share)."""

    def __init__(
        self,
        roles: MPCRoles,
        provider: str,
        tally: Tally,
        *,
        parties: Sequence[str] = (),
        batch: int = DEFAULT_BATCH,
    ) -> None:
        if provider not in COSTED_PROVIDERS:
            raise ConfigError(
                f"no cost model for triples={provider!r} (modelled: {', '.join(COSTED_PROVIDERS)})"
            )
        n = len(roles.compute)
        if provider == "ot" and n != 2:
            raise ConfigError("OT triples are for exactly 2 computing parties")
        if provider == "rss3" and n != 3:
            raise ConfigError("replicated sharing needs exactly 3 computing parties")
        # no Engine.__init__: there is no context, channel or provider object here
        self.roles = roles
        self.compute = roles.compute
        self.parties = tuple(parties) or tuple(
            dict.fromkeys((*roles.data, *roles.compute, *roles.result))
        )
        self.is_compute = False
        self.is_leader = False
        self.index = -1
        self.kind = provider
        self.replicated = provider == "rss3"
        self.truncation = "pair"
        self.fan_in = 2
        self.tally = tally
        self.batch = batch
        self._pool: dict[tuple[int, int, int], int] = {}
        self.rounds = 0
        self.comm_seconds = 0.0
        self.n = n

    # ----------------------------------------------------------------- communication

    def _open(self, words: int, xor_words: int = 0) -> None:
        """An opening: every computing party sends its words to every other one."""
        total = words + xor_words
        for i in range(self.n):
            self.tally.send(i, 8 * total * (self.n - 1), messages=self.n - 1, kind="open")
            self.tally.words[i] += total * self.n
        self._round()

    def _pairs(self, words: int) -> None:
        """Replicated sharing: every party sends its components to its predecessor."""
        for i in range(self.n):
            self.tally.send(i, 8 * words, kind="open")
            self.tally.words[i] += 2 * words
        self._round()

    def _round(self) -> None:
        self.rounds += 1
        self.tally.rounds += 1

    @property
    def packed_bits(self) -> bool:
        return True

    @property
    def paired_ands(self) -> bool:
        return True

    # --------------------------------------------------------------- OT extension cost

    def _cot(
        self,
        party: int,
        n_r: int,
        w_r: int,
        n_s: int,
        w_s: int,
        corr_bytes: int | None,
    ) -> None:
        """One call of :meth:`OtExtension.cot` / ``rot`` at ``party``: it receives ``n_r`` OTs
        of ``w_r`` words (sends their ``u``) and sends ``n_s`` of ``w_s`` words, with
        ``corr_bytes`` of trimmed corrections (``None``: random OT, no corrections)."""
        t = self.tally
        sizes_r = _batch_sizes(n_r, w_r, self.batch)
        sizes_s = _batch_sizes(n_s, w_s, self.batch)
        for b in sizes_r:
            t.send(party, _KAPPA_BYTES * otm.pad_count(b), offline=True, kind="u")
        if corr_bytes is not None and sizes_s:
            t.send(party, corr_bytes, offline=True, messages=len(sizes_s), kind="corr")
            t.corr_bytes[party] += corr_bytes
        t.ots[party] += n_r + n_s
        t.hash_rows[party] += n_r + 2 * n_s
        t.hash_words[party] += n_r * w_r + 2 * n_s * w_s

    def _both(self, n: int, width: int, corr_bytes: int | None) -> None:
        """The same OTs in both directions (Gilboa, AND triples)."""
        for i in range(2):
            self._cot(i, n, width, n, width, corr_bytes)
            if corr_bytes is not None:
                self.tally.corr_bytes[i] += corr_bytes  # the peer's, unpacked here

    def _one_way(self, n: int, corr_bytes: int) -> None:
        """Bit products: P0 sends ``n`` correlated OTs of one word, P1 receives them."""
        self._cot(0, 0, 1, n, 1, corr_bytes)
        self._cot(1, n, 1, 0, 1, None)
        self.tally.corr_bytes[1] += corr_bytes

    def _ot_mul(self, size: int) -> None:
        for s in range(0, size, MUL_CHUNK):
            c = min(size, s + MUL_CHUNK) - s
            self._both(64 * c, 1, c * _GILBOA_SUM)

    def _ot_matmul(self, m: int, k: int, n: int) -> None:
        if m < n:
            m, n = n, m
        step = max(1, (1 << 21) // max(64 * n * m, 1))
        for s in range(0, k, step):
            kc = min(k, s + step) - s
            self._both(64 * kc * n, m, kc * n * _GILBOA_SUM * m)
        for i in range(2):
            self.tally.macs[i] += m * k * n

    def _ot_decomposed(self, n: int, widths: Sequence[int]) -> None:
        bits = [w for w in widths if w > 0]
        self._one_way(len(bits) * n, (n * sum(bits) + 7) // 8)

    # ------------------------------------------------------------------ correlations

    def _mul_triple(self, size: int) -> None:
        if self.kind == "ot":
            self._ot_mul(size)

    def prefetch_trunc(self, requests: Sequence[tuple[int, ...]]) -> None:
        if self.kind != "ot":
            return
        groups: dict[tuple[int, int], list[int]] = {}
        for req in requests:
            n, f, ring = (*req, 64) if len(req) == 2 else req
            groups.setdefault((f, ring), []).append(n)
        for f, ring in sorted(groups):
            self._trunc_pair(sum(groups[(f, ring)]), f, ring)
            for n in groups[(f, ring)]:
                self._pool[(n, f, ring)] = self._pool.get((n, f, ring), 0) + 1

    def _trunc_pair(self, n: int, f: int, ring: int = 64) -> None:
        if self.kind == "ot":
            widths = [max(ring - 1 - k, 63 - k + f if k >= f else 0) for k in range(ring)]
            widths[ring - 1] = 63
            self._ot_decomposed(n, widths)

    def _edabits(self, n: int) -> None:
        if self.kind == "ot":
            self._ot_decomposed(n, [63 - k for k in range(64)])
        elif self.kind == "rss3":
            # the parties' words, a carry-save step, the first carry, 5 Kogge-Stone levels
            self._pairs(n)
            self._pairs(n)
            self._pairs(n)
            for _ in range(5):
                self._pairs(2 * n)

    def _and_pair(self, words: int) -> None:
        if self.kind == "ot":
            self._both(64 * words, 1, None)
        if self.kind == "rss3":
            self._pairs(3 * words)
        else:
            self._open(3 * words)

    def _and(self, words: int) -> None:
        if self.kind == "ot":
            self._both(64 * words, 1, None)
        if self.kind == "rss3":
            self._pairs(2 * words)
        else:
            self._open(2 * words)

    # --------------------------------------------------------------------- the steps

    def public_share(self, value: U64) -> U64 | None:
        return None

    def mul(self, x: U64 | None, y: U64 | None, shape: Shape) -> U64 | None:
        n = prod(shape)
        if self.replicated:
            self._pairs(2 * n)
            return None
        self._mul_triple(n)
        self._open(2 * n)
        return None

    def matmul(self, x: U64 | None, y: U64 | None, m: int, k: int, n: int) -> U64 | None:
        words = m * k + k * n
        for i in range(self.n):
            self.tally.macs[i] += 2 * m * k * n
        if self.replicated:
            self._pairs(words)
            return None
        if self.kind == "ot":
            self._ot_matmul(m, k, n)
        self._open(words)
        return None

    @property
    def masked_design(self) -> bool:
        return self.kind == "dealer"

    def mask_design(self, x: U64 | None, y: U64 | None, n: int, k: int) -> MaskedDesign:
        self._open(n * k + n)
        return MaskedDesign(n, k, None, None, None)

    def design_forward(
        self,
        h: MaskedDesign,
        rows: slice | npt.NDArray[np.int64],
        w: U64 | None,
        raw: U64 | None = None,
        frac_bits: int = 0,
    ) -> tuple[U64, U64] | None:
        m = h.count(rows)
        for i in range(self.n):
            self.tally.macs[i] += (3 if frac_bits > 0 else 2) * m * h.k
        self._open(2 * h.k if frac_bits > 0 else h.k)
        return None

    def design_backward(
        self,
        h: MaskedDesign,
        rows: slice | npt.NDArray[np.int64],
        s: U64 | None,
        y: U64 | None,
        frac_bits: int,
        offset: int = 0,
    ) -> tuple[U64, U64] | None:
        m = h.count(rows)
        for i in range(self.n):
            self.tally.macs[i] += 3 * m * h.k
        self._open(m)
        return None

    def rss_next(self, share: U64 | None, shape: Shape) -> U64 | None:
        self._pairs(prod(shape))
        return None

    def rss_matmul_paired(
        self, x: U64 | None, x_next: U64 | None, y: U64 | None, m: int, k: int, n: int
    ) -> U64 | None:
        for i in range(self.n):
            self.tally.macs[i] += 2 * m * k * n
        self._pairs(k * n)
        return None

    def rss_local_matmul(
        self,
        x: U64 | None,
        x_next: U64 | None,
        y: U64 | None,
        y_next: U64 | None,
        m: int,
        k: int,
        n: int,
    ) -> U64 | None:
        for i in range(self.n):
            self.tally.macs[i] += 2 * m * k * n
        return None

    def rss_trunc_tmatmul(
        self, z: U64 | None, x: U64 | None, x_next: U64 | None, m: int, k: int, frac_bits: int
    ) -> U64 | None:
        self.rss_trunc_tmatmul_ex(z, x, x_next, m, k, frac_bits)
        return None

    def rss_trunc_tmatmul_ex(
        self,
        z: U64 | None,
        x: U64 | None,
        x_next: U64 | None,
        m: int,
        k: int,
        frac_bits: int,
        *,
        pair_send: U64 | None = None,
        pair_size: int = 0,
    ) -> tuple[U64, U64, U64 | None] | None:
        """One round: ``P0`` sends ``m + k·m`` words to ``P1`` and ``3 m`` (+ its pair
        component) to ``P2``; ``P1`` sends ``m`` to ``P2`` (and its pair component to ``P0``),
        ``P2`` ``m`` (+ its pair component) to ``P1``."""
        e = pair_size
        self.tally.send(0, 8 * (m + k * m), kind="open")
        self.tally.send(0, 8 * (3 * m + e), kind="open")
        self.tally.send(1, 8 * m, kind="open")
        if e:
            self.tally.send(1, 8 * e, kind="open")
        self.tally.send(2, 8 * (m + e), kind="open")
        for i, words in (
            (0, 4 * m + k * m + 2 * e),
            (1, 3 * m + k * m + 2 * e),
            (2, 5 * m + 2 * e),
        ):
            self.tally.words[i] += words
            self.tally.macs[i] += 4 * m * k
        self._round()
        return None

    @property
    def ring_trunc(self) -> bool:
        return self.kind == "ot" and self.n == 2

    @property
    def plain_products(self) -> bool:
        return self.kind == "ot" and self.n == 2

    def plain_matmul(
        self,
        mats: dict[str, U64 | None],
        ys: dict[str, U64 | None],
        dims: dict[str, tuple[int, int]],
        n: int,
        ring_bits: int = 64,
    ) -> dict[str, U64] | None:
        """Gilboa with a plaintext matrix (:meth:`OtProvider.plain_cross`): each owner sends
        ``ring_bits·q·n`` correlated OTs of ``p`` words (trimmed to ``ring_bits − k`` bits),
        its peer receives them; the owner's local product."""
        if not self.plain_products:
            raise ConfigError("products with a plaintext matrix need the ot provider")
        sent = [0, 0]
        for i, party in enumerate(self.compute):
            peer = self.compute[1 - i]
            p_i, q_i = dims.get(party, (0, 0))
            p_j, q_j = dims.get(peer, (0, 0))
            if not p_i:
                q_i = 0
            if not p_j:
                q_j = 0
            sent[i] = (p_i * n * q_i * ring_bits * (ring_bits + 1) // 2 + 7) // 8
            self._cot(
                i,
                ring_bits * q_j * n,
                max(p_j, 1) if q_j else 1,
                ring_bits * q_i * n,
                p_i if q_i else 1,
                sent[i] if q_i else None,
            )
            self.tally.macs[i] += p_i * q_i * n
        for i in range(2):
            self.tally.corr_bytes[i] += sent[1 - i]  # the peer's, unpacked here
        return None

    @property
    def plain_fixed(self) -> bool:
        return self.plain_products

    def plain_fix(
        self,
        mats: dict[str, U64 | None],
        dims: dict[str, tuple[int, int]],
        bits: dict[str, int],
        block: int,
    ) -> object | None:
        """:meth:`OtProvider.fixed_prepare`: each owner receives ``K·p·q`` OTs (sends their
        ``u``, once) and sends its peer's; no corrections."""
        if not self.plain_fixed:
            raise ConfigError("reused OT products need the ot provider")
        counts = [bits.get(p, 0) * prod(dims.get(p, (0, 0))) for p in self.compute]
        for i in range(2):
            self._cot(i, counts[i], 1, counts[1 - i], 1, None)
        return {"dims": dict(dims), "bits": dict(bits)}

    def plain_fixed_matmul(
        self,
        fixed: object | None,
        rows: slice | np.ndarray,
        mats: dict[str, U64 | None],
        ys: dict[str, U64 | None],
        dims: dict[str, tuple[int, int]],
        *,
        transpose: bool,
        ring_bits: int = 64,
    ) -> dict[str, U64] | None:
        """:meth:`OtProvider.fixed_cross`: for each matrix, its owner's peer sends the
        trimmed corrections of ``min(K, L)·b·q`` reused OTs (one message per batch of
        OTs); nothing else."""
        assert isinstance(fixed, dict)
        full = fixed["dims"]
        sent = [0, 0]
        for i in range(2):
            peer = self.compute[1 - i]
            if peer not in dims:
                continue
            p, q = full[peer]
            b = len(range(*rows.indices(p))) if isinstance(rows, slice) else np.asarray(rows).size
            k = min(fixed["bits"][peer], ring_bits)
            n = k * b * q
            sizes = _batch_sizes(n, 1, self.batch)
            at, total = 0, 0
            for c in sizes:
                total += _run_bytes(k, b * q, ring_bits, at, at + c)
                at += c
            if sizes:
                self.tally.send(i, total, offline=True, messages=len(sizes), kind="corr")
            sent[i] = total
            self.tally.hash_rows[i] += 2 * n
            self.tally.hash_rows[1 - i] += n
            self.tally.hash_words[i] += 2 * n
            self.tally.hash_words[1 - i] += n
            self.tally.macs[1 - i] += b * q
        for i in range(2):
            self.tally.corr_bytes[i] += sent[i] + sent[1 - i]
        return None

    def trunc(self, x: U64 | None, shape: Shape, frac_bits: int, ring_bits: int = 64) -> U64 | None:
        if frac_bits == 0 and ring_bits == 64:
            return None
        n = prod(shape)
        if self.replicated:
            # one round: P0 sends its masked share to P1 and it with t2 to P2; P1 and P2
            # exchange their masked shares
            self.tally.send(0, 8 * n, kind="open")
            self.tally.send(0, 16 * n, kind="open")
            self.tally.send(1, 8 * n, kind="open")
            self.tally.send(2, 8 * n, kind="open")
            for i, words in ((0, 3 * n), (1, 3 * n), (2, 4 * n)):
                self.tally.words[i] += words
            self._round()
            return None
        if self._pool.get((n, frac_bits, ring_bits), 0) > 0:
            self._pool[(n, frac_bits, ring_bits)] -= 1  # generated ahead (prefetch_trunc)
        else:
            self._trunc_pair(n, frac_bits, ring_bits)
        self._open(n)
        return None

    def msb(self, x: U64 | None, shape: Shape) -> U64 | None:
        raise ConfigError("comparisons without packed bits are not modelled")

    def msb_bool(self, x: U64 | None, shape: Shape) -> U64 | None:
        n = prod(shape)
        self._edabits(n)
        self._open(n)
        for _ in range(5):
            self._and_pair(n)
        self._and(n)
        return None

    def msb_bool_window(self, x: U64 | None, shape: Shape, low: int) -> U64 | None:
        n = prod(shape)
        half = (n + 1) // 2
        self._edabits(n)
        self._open(n)
        for _ in range(4):
            self._and_pair(half)
        self._and(half)
        return None

    @property
    def multi_ands(self) -> bool:
        return self.kind == "dealer" and self.fan_in == 4

    @property
    def knot_inject(self) -> bool:
        return self.kind == "dealer"

    def msb_knots_select(
        self, x: U64 | None, n: int, knots: U64, low: int, inner_low: int, y: U64 | None
    ) -> tuple[U64, U64] | None:
        self._knot_levels(n, knots)
        self._open(n, ceil(ceil((len(knots) * n) / 8) / 8))  # F = y − mask, packed bits
        return None

    def msb_knots(self, x: U64 | None, n: int, knots: U64, low: int, inner_low: int) -> U64 | None:
        self._knot_levels(n, knots)
        self._and(-(-(len(knots) - 2) * n // 64))
        return None

    def _knot_levels(self, n: int, knots: U64) -> None:
        words = n + -(-(len(knots) - 2) * n // 4)
        self._edabits(n)
        self._open(n)
        if self.multi_ands:  # two radix-4 levels: p and g opened once each per level
            for _ in range(2):
                self._open(2 * words)
        elif self.kind == "dealer":  # radix 2 with p and g opened once each per level
            for _ in range(4):
                self._open(2 * words)
        else:
            for _ in range(4):
                self._and_pair(words)
        self._and(n)

    def bit_inject(
        self, bits: U64 | None, y: U64 | None, shape: Shape, y_shape: Shape | None
    ) -> tuple[U64, U64 | None] | None:
        n = prod(shape)
        y_size = 0 if y_shape is None else prod(y_shape)
        if self.replicated:
            self._pairs(2 * n)  # daBits: two replicated products
            self._pairs(2 * n)
            if y_shape is not None:
                self._pairs(n + y_size)  # u times the mask
        elif self.kind == "ot":
            if y_shape is None:
                self._one_way(n, 8 * n)
            else:  # P0 receives 1 word and sends 2 per OT; P1 the mirror
                self._cot(0, n, 1, n, 2, 16 * n)
                self._cot(1, n, 2, n, 1, 8 * n)
                self.tally.corr_bytes[0] += 8 * n
                self.tally.corr_bytes[1] += 16 * n
        packed_words = ceil(ceil(n / 8) / 8)
        self._open(y_size, packed_words)
        return None

    def reveal(self, share: U64 | None, shape: Shape, to: str, label: str = "") -> U64 | None:
        self.roles.check_result_party(to)
        for i, p in enumerate(self.compute):
            if p != to:
                self.tally.send(i, 8 * prod(shape), kind="reveal", extra=len(label))
        return None

    # ------------------------------------------------------------------- setup / inputs

    def setup(self) -> None:
        """The provider's setup messages (base OTs; pairwise keys; the dealer's seeds)."""
        if self.kind == "ot":
            self.tally.setup_ot = True
            for i in range(2):
                self.tally.send(i, 32 + 16, offline=True, kind="base_setup")
                self.tally.send(i, otm.KAPPA * 32, offline=True, kind="base_reply")
        elif self.kind == "rss3":
            for i in range(3):
                self.tally.send(i, 32, kind="seed")
        elif self.kind == "dealer":
            dealer = self.roles.dealer or self.compute[0]
            if dealer in self.compute:
                for _ in range(self.n - 1):
                    self.tally.send(self.compute.index(dealer), 32, kind="seed")

    def share_input(self, owner: str, shape: Sequence[int]) -> None:
        """A data party secret-shares ``size`` values (:meth:`Session.share`): a seed to each
        computing party but one, the values to the last if the owner does not compute."""
        if owner in self.compute:
            i = self.compute.index(owner)
            for _ in range(self.n - 1):
                self.tally.send(i, 32, kind="input", extra=len(shape))
            for p in self.parties:  # shape headers to the parties that take no share
                if p != owner and p not in self.compute:
                    self.tally.send(i, 0, kind="header", extra=len(shape))


# ------------------------------------------------------------------------------ the session


class TracingSession(Session):
    """A :class:`~privfin.mpc.session.Session` on shapes only (every share ``None``) whose
    engine is a :class:`CostEngine`: running a program with it tallies the program's cost."""

    def __init__(
        self, roles: Mapping[str, Sequence[str]], provider: str, *, frac_bits: int = 16
    ) -> None:
        # no Session.__init__: no context, channel or provider is needed on shapes alone
        self.roles = MPCRoles.from_roles(roles)
        self.frac_bits = frac_bits
        self.tally = Tally(len(self.roles.compute))
        self.engine = CostEngine(self.roles, provider, self.tally, parties=tuple(roles))
        self.ctx = SimpleNamespace(  # type: ignore[assignment]
            party="(estimate)", progress=Progress(), cancel=CancelToken()
        )

    def plain_input(
        self,
        owner: str,
        value: Any = None,
        *,
        bits: bool = False,
        bound: float | None = None,
        shape: Sequence[int] = (),
    ) -> PlainTensor:
        """A computing data party's plaintext input of ``shape`` (its header is tallied).
        With ``bits``: its bit count from ``bound``, or, without one, :data:`ASSUMED_BOUND`
        (the owner would announce its data's own: exact only with a stated bound)."""
        assert isinstance(self.engine, CostEngine)
        i = self.roles.compute.index(owner)
        for p in self.engine.parties:
            if p != owner:
                self.tally.send(i, 0, kind="header_bits" if bits else "header", extra=len(shape))
        k = _bound_bits(ASSUMED_BOUND if bound is None else bound, self.frac_bits) if bits else None
        return PlainTensor(owner, None, tuple(shape), self.frac_bits, k)

    def input(self, owner: str, shape: Sequence[int], *, fixed: bool = True) -> SharedTensor:
        """A data party's input of ``shape`` (its sharing is tallied)."""
        assert isinstance(self.engine, CostEngine)
        self.engine.share_input(owner, shape)
        return SharedTensor(self, None, tuple(shape), self.frac_bits if fixed else 0)


# ------------------------------------------------------------------------------ calibration


@dataclass(frozen=True)
class Calibration:
    """Seconds per unit of work on this machine (one party, one core)."""

    ot_s: float  # IKNP extension per OT (PRG, transposes), average of the two roles
    hash_row_s: float  # correlation-robust hash per hashed OT row (fixed part)
    hash_word_s: float  # correlation-robust hashing + correction per 64-bit word
    word_s: float  # online ring work per opened / reshared word
    mac_s: float  # local ring matmul per multiply-add
    round_s: float  # fixed cost of one interactive step at a party (Python, hand-over)
    base_ot_s: float = 0.0  # KAPPA base OTs in each direction (OT provider setup), one party
    corr_byte_s: float = 0.0  # packing / unpacking a trimmed correction byte, and its word
    measured_at: float = 0.0
    machine: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(
            ot_s=float(data["ot_s"]),
            hash_row_s=float(data["hash_row_s"]),
            hash_word_s=float(data["hash_word_s"]),
            word_s=float(data["word_s"]),
            mac_s=float(data["mac_s"]),
            round_s=float(data["round_s"]),
            base_ot_s=float(data.get("base_ot_s", 0.0)),
            corr_byte_s=float(data.get("corr_byte_s", 0.0)),
            measured_at=float(data.get("measured_at", 0.0)),
            machine=str(data.get("machine", "")),
        )


def _best(fn: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate(*, ots: int = 1 << 15, steps: int = 40, machine: str = "") -> Calibration:
    """Measure the unit costs with a local micro-benchmark (≈ 0.3 s): an IKNP extension of
    ``ots`` OTs between two in-process instances with fixed test keys (timing only, nothing
    secret), correlated OTs 1 and 64 words wide, the ring work of Beaver multiplications and a
    ring matmul. Best of 3 runs each."""
    from privfin.mpc.ring import ring_matmul

    rng = np.random.default_rng(0)
    k0 = rng.integers(0, 256, (otm.KAPPA, otm.KEY_BYTES), dtype=np.uint8)
    k1 = rng.integers(0, 256, (otm.KAPPA, otm.KEY_BYTES), dtype=np.uint8)
    s = rng.integers(0, 2, otm.KAPPA, dtype=np.uint8)
    keys = np.where(s[:, None] == 1, k1, k0)
    recv = otm.IknpReceiver(k0, k1)
    send = otm.IknpSender(s, keys)
    h = otm.CrHash(bytes(16))
    choices = rng.integers(0, 256, ots // 8, dtype=np.uint8)
    held: dict[str, Any] = {}

    def extend() -> None:
        u, t = recv.extend(choices)
        held["t"], held["q"] = t, send.extend(u)

    t_ext = _best(extend) / (2 * ots)
    bits = np.unpackbits(choices, bitorder="little")

    def hashing(width: int) -> float:
        count = ots // width

        full = np.full(count, 64, dtype=np.int64)

        def run() -> None:  # the path the provider takes (AES-NI kernel where built)
            corr = np.zeros((count, width), dtype=np.uint64)
            _, d = otm.cot_send_trimmed(held["q"], send.delta, h, 0, corr, full)
            otm.cot_receive_trimmed(held["t"], bits[:count], h, 0, d, full, width)

        return _best(run) / (3 * count)  # per hashed row: the sender's two, the receiver's

    narrow, wide = hashing(1), hashing(64)
    t_hash_word = max((wide - narrow) / 63, 0.0)
    t_hash_row = max(narrow - t_hash_word, 0.0)
    size = 1 << 18
    x = rng.integers(0, 2**63, size, dtype=np.uint64)
    y = rng.integers(0, 2**63, size, dtype=np.uint64)

    def online() -> None:  # a Beaver product's local work on one element per word
        buf = np.empty(2 * size, dtype=np.uint64)
        np.subtract(x, y, out=buf[:size])
        np.subtract(y, x, out=buf[size:])
        buf += buf[::-1].copy()
        z = buf[:size] * y
        z += buf[size:] * x
        z += x

    t_word = _best(online) / (2 * size)
    a = rng.integers(0, 2**63, (256, 64), dtype=np.uint64)
    b = rng.integers(0, 2**63, (64, 64), dtype=np.uint64)
    t_mac = _best(lambda: ring_matmul(a, b)) / (256 * 64 * 64)
    return Calibration(
        ot_s=t_ext,
        hash_row_s=t_hash_row,
        hash_word_s=t_hash_word,
        word_s=t_word,
        mac_s=t_mac,
        round_s=_round_cost(steps),
        base_ot_s=_base_ot_cost(),
        corr_byte_s=_corr_cost(),
        measured_at=time.time(),
        machine=machine,
    )


def _corr_cost() -> float:
    """Seconds per trimmed correction byte: packing Gilboa-trimmed words for the wire and
    unpacking them (numpy path only: the AES-NI kernel trims while it hashes) and the
    receiver's pass over the words (subtract, shift, sum)."""
    widths = np.repeat(np.array(_GILBOA, dtype=np.int64), 4)
    rng = np.random.default_rng(1)
    d = rng.integers(0, 2**63, (widths.size, 256), dtype=np.uint64)

    def run() -> None:
        if otm.KERNEL:
            got = d.copy()
        else:
            got = otm.untrim_words(otm.trim_words(d, widths), widths, d.shape[1])
        got -= d
        got <<= np.uint64(1)
        np.sum(got, axis=0, dtype=np.uint64)

    return _best(run) / float(2 * int(widths.sum()) // 8 * int(d.shape[1]))


def _base_ot_cost() -> float:
    """Seconds for one party's share of the OT provider's setup: ``KAPPA`` base OTs as sender
    and as receiver (Simplest OT over ristretto255)."""
    from privfin.crypto.random import SeededRandom

    rnd = SeededRandom("privfin.mpc.cost.calibration")  # timing only: nothing secret

    def run() -> None:
        sender = otm.BaseOtSender(rnd)
        receiver = otm.BaseOtReceiver(rnd, np.zeros(otm.KAPPA, dtype=np.uint8))
        sender.keys(receiver.reply(sender.point))
        receiver.keys()

    return _best(run, repeat=2)


def _round_cost(steps: int) -> float:
    """Seconds per interactive step of tiny replicated products between 3 parties as threads
    of this process over the in-memory transport (the fixed cost of a round: message
    encoding, hand-over between threads, Python per step), best of 2."""
    from privfin.config import Settings
    from privfin.runtime.simulate import simulate

    def program(ctx: Any, params: Any, inputs: Any) -> None:
        s = Session(ctx, triples="rss3")
        x = s.public(np.ones(4))
        for _ in range(steps):
            x = s.mul(x, x)  # a product and its truncation: 3 rounds

    roles = {p: ("compute", "result") for p in ("p0", "p1", "p2")}
    settings = Settings(mode="production")
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        simulate(program, roles, settings=settings, seed=0)
        best = min(best, time.perf_counter() - t0)
    return best / (3 * steps)


# ------------------------------------------------------------------------------ estimates


@dataclass(frozen=True)
class Network:
    """What the estimate assumes of the network between computing parties."""

    latency_s: float = 0.001  # one round (a message each way, overlapped)
    bandwidth_Bps: float = 125e6  # bytes per second each party can send (1 Gbit/s)
    #: parties share one machine (an in-process simulation, a local cluster): their work adds
    #: up instead of running in parallel
    colocated: bool = False

    def describe(self) -> str:
        where = "one machine" if self.colocated else "separate machines"
        return (
            f"{self.latency_s * 1000:g} ms per round, {self.bandwidth_Bps * 8 / 1e6:g} Mbit/s, "
            f"{where}"
        )


@dataclass(frozen=True)
class Estimate:
    """A job step's predicted cost for one provider."""

    component: str
    provider: str
    rounds: int
    bytes_max: int  # bytes sent by the busiest computing party
    bytes_total: int  # sent by every computing party together
    offline_bytes_max: int
    messages_max: int
    ots_max: int
    seconds: float
    compute_seconds: float
    network: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.provider}: {self.rounds:,} rounds, {_size(self.bytes_max)} sent per "
            f"computing party ({_size(self.offline_bytes_max)} offline), ~{_secs(self.seconds)}"
        )


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _secs(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.2f} s" if s < 10 else f"{s:.0f} s"


def _finish(
    component: str, provider: str, tally: Tally, cal: Calibration, net: Network, note: str = ""
) -> Estimate:
    per_party = [
        tally.ots[i] * cal.ot_s
        + tally.hash_rows[i] * cal.hash_row_s
        + tally.hash_words[i] * cal.hash_word_s
        + tally.corr_bytes[i] * cal.corr_byte_s
        + tally.words[i] * cal.word_s
        + tally.macs[i] * cal.mac_s
        for i in range(tally.parties)
    ]
    if tally.setup_ot:
        per_party = [t + cal.base_ot_s for t in per_party]
    compute = sum(per_party) if net.colocated else max(per_party)
    wire = max(tally.sent) / net.bandwidth_Bps
    seconds = compute + tally.rounds * (net.latency_s + cal.round_s) + wire
    return Estimate(
        component=component,
        provider=provider,
        rounds=tally.rounds,
        bytes_max=max(tally.sent),
        bytes_total=sum(tally.sent),
        offline_bytes_max=max(tally.offline),
        messages_max=max(tally.messages),
        ots_max=max(tally.ots),
        seconds=seconds,
        compute_seconds=compute,
        network=net.describe(),
        note=note,
    )


def _split(rows: int, owners: Sequence[str]) -> list[tuple[str, int]]:
    """``rows`` in total split evenly among the data parties of a horizontal partition."""
    k = len(owners)
    return [(o, rows // k + (i < rows % k)) for i, o in enumerate(owners)]


def _roles_of(roles: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    return {p: tuple(r) for p, r in roles.items()}


def estimate_ss_lr(
    roles: Mapping[str, Sequence[str]],
    params: Mapping[str, Any],
    rows: int,
    *,
    provider: str,
    calibration: Calibration,
    network: Network | None = None,
) -> Estimate:
    """The cost of the ``ss_lr`` component (:func:`privfin.mpc.lr.ss_lr`) on ``rows`` rows
    with ``provider``: the real training loop on shapes (only ``vertical`` /
    ``horizontal`` feature counts and the training parameters are read)."""
    from privfin.mpc.lr import train_logistic
    from privfin.mpc.tensor import concatenate

    s = TracingSession(_roles_of(roles), provider, frac_bits=int(params.get("frac_bits", 16)))
    assert isinstance(s.engine, CostEngine)
    s.engine.fan_in = int(params.get("and_fan_in", 2))
    s.engine.setup()
    partition = params.get("partition", "vertical")
    spec = params.get("features")
    raw_bound = params.get("feature_bound")
    bound = None if raw_bound is None else float(raw_bound)
    reuse = reuse_ots_wanted(params, bound) and s.engine.plain_fixed
    if partition == "vertical":
        label = params.get("label")
        if not isinstance(spec, Mapping) or not isinstance(label, Mapping):
            raise ConfigError("vertical ss_lr needs features: {party: [columns]} and label")
        parts: list[SharedTensor | PlainTensor] = []
        for o in sorted(spec):
            shape = (rows, len(spec[o]))
            if s.engine.plain_products and str(o) in s.roles.compute:
                parts.append(s.plain_input(str(o), shape=shape, bits=reuse, bound=bound))
            else:
                parts.append(s.input(str(o), shape))
        x: SharedTensor | list[SharedTensor | PlainTensor] = parts
        y = s.input(str(label["party"]), (rows,))
    elif partition == "horizontal":
        if not isinstance(spec, Sequence) or isinstance(spec, str):
            raise ConfigError("horizontal ss_lr needs features: [columns]")
        owners = _split(rows, s.roles.data)
        x = concatenate([s.input(o, (r, len(spec))) for o, r in owners], axis=0)
        y = concatenate([s.input(o, (r,)) for o, r in owners], axis=0)
    else:
        raise ConfigError(f"partition must be 'vertical' or 'horizontal', got {partition!r}")
    sigmoid = str(params.get("sigmoid", "auto"))
    w = train_logistic(
        x,
        y,
        epochs=int(params.get("epochs", 5)),
        batch_size=int(params.get("batch_size", 256)),
        learning_rate=float(params.get("learning_rate", 0.5)),
        l2=float(params.get("l2", 0.0)),
        fit_intercept=bool(params.get("fit_intercept", True)),
        shuffle_seed=params.get("shuffle_seed"),
        sigmoid=sigmoid,
        average=bool(params.get("average", False)),
        reuse_ots=reuse,
    )
    if params.get("reveal_model", True):
        for p in s.roles.result:
            w.reveal(p)
    return _finish("ss_lr", provider, s.tally, calibration, network or Network())


def estimate_mpc_stats(
    roles: Mapping[str, Sequence[str]],
    params: Mapping[str, Any],
    rows: int,
    *,
    provider: str,
    calibration: Calibration,
    network: Network | None = None,
) -> Estimate:
    """The cost of the ``mpc_stats`` component (:func:`privfin.mpc.stats.mpc_stats`) on
    ``rows`` rows (per data party for a horizontal partition) with ``provider``."""
    from privfin.mpc.stats import compute_statistics
    from privfin.mpc.tensor import concatenate

    s = TracingSession(_roles_of(roles), provider, frac_bits=int(params.get("frac_bits", 16)))
    assert isinstance(s.engine, CostEngine)
    s.engine.setup()
    partition = params.get("partition", "vertical")
    spec = params.get("columns")
    names: list[str] = []
    if partition == "vertical":
        if not isinstance(spec, Mapping):
            raise ConfigError("vertical mpc_stats needs columns: {party: [column, ...]}")
        parts = []
        for owner in sorted(spec):
            names += [str(c) for c in spec[owner]]
            parts.append(s.input(str(owner), (rows, len(spec[owner]))))
        x = concatenate(parts, axis=1)
    elif partition == "horizontal":
        if not isinstance(spec, Sequence) or isinstance(spec, str):
            raise ConfigError("horizontal mpc_stats needs columns: [column, ...]")
        names = [str(c) for c in spec]
        x = concatenate(
            [s.input(o, (r, len(names))) for o, r in _split(rows, s.roles.data)], axis=0
        )
    else:
        raise ConfigError(f"partition must be 'vertical' or 'horizontal', got {partition!r}")

    def standardized() -> SharedTensor:
        assert isinstance(spec, Mapping)
        return concatenate([s.input(str(o), (rows, len(spec[o]))) for o in sorted(spec)], axis=1)

    def weights(owner: str) -> SharedTensor:
        return s.input(owner, (rows,))

    results = compute_statistics(s, x, params, names, standardized, weights)
    for p in s.roles.result:
        for res in results.values():
            res.reveal(p)
    return _finish("mpc_stats", provider, s.tally, calibration, network or Network())
